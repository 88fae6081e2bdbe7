"""The storage quota under concurrency, repetition and crashes (moto, versioned buckets as
onboarding makes them): after anything, the usage equals what S3 keeps.

"What S3 keeps" is read from S3 itself: every version of every file (current or noncurrent) with
its plaintext size, and the keys that have a current version.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from tenant_security.aws import is_transient
from tenant_security.errors import Conflict, DomainError, NotFound, ServiceUnavailable
from tenant_security.models.quotas import parse_resource_quotas
from tenant_security.onboarding.buckets import DATA_LIFECYCLE
from tenant_security.quotas.storage import StorageQuota
from tenant_security.storage.file_keys import PROTECTION_METADATA, SIZE_METADATA, STAGING_PREFIX
from tenant_security.storage.files import TenantFiles
from tenant_security.storage.ledger import FileLedger
from tenant_security.storage.ledger_states import LOCK_SECONDS, Op
from tenant_security.tenants import TenantProfile
from tests.support.clock import ManualClock
from tests.support.moto import create_table, mocked_aws
from tests.support.settings import local_settings

pytestmark = pytest.mark.integration
BUCKET = "tst-10ca1000-tenant-acme-data"
ENDPOINT = "https://s3.us-east-1.amazonaws.com"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TenantFiles, TenantProfile, ManualClock]]:
    with mocked_aws(monkeypatch):
        settings = local_settings(resource_prefix="tst", account_id="123456789012")
        s3, kms, ddb = (boto3.client(n, region_name="us-east-1") for n in ("s3", "kms", "dynamodb"))
        create_table(ddb, settings.counters_table, "pk", "sk")
        key = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=settings.tenant_key_alias("acme", "data"), TargetKeyId=key)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        quotas = parse_resource_quotas({"storage": {"max_file_size": "100KB", "max_data_size": "10MB"}})
        tenant = TenantProfile(tenant_id="acme", name="Acme", status="ACTIVE", quotas=quotas)
        clock = ManualClock()
        quota = StorageQuota(ddb, settings.counters_table)
        yield (
            TenantFiles(settings, s3, kms, quota, FileLedger(ddb, settings.counters_table, quota, clock)),
            tenant,
            clock,
        )


def stored(files: TenantFiles) -> dict[str, int]:
    """What S3 keeps: plaintext bytes of every version, and keys with a current version."""
    s3 = files.s3
    total, current = 0, set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        for version in page.get("Versions", []):
            if version["Key"].startswith(".uploads/"):
                continue
            head = s3.head_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
            total += int(head["Metadata"][SIZE_METADATA])
            if version["IsLatest"]:
                current.add(version["Key"])
    return {"bytes": total, "files": len(current)}


def _quietly(call: Any) -> str:
    try:
        call()
    except DomainError as exc:
        return exc.code
    return "ok"


def test_two_concurrent_deletes_release_the_file_once(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    files.put(tenant, "doc.bin", b"x" * 1000)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _i: _quietly(lambda: files.delete("acme", "doc.bin")), range(2)))
    assert sorted(outcomes) in (["not_found", "ok"], ["file_busy", "ok"])
    assert files.quota.usage("acme") == {"bytes": 0, "files": 0}  # never -1,000
    assert stored(files) == {"bytes": 0, "files": 0}


def test_8_concurrent_deletes_and_replaces_of_one_key_leave_usage_equal_to_what_is_stored(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    files.put(tenant, "k", b"a" * 700)

    def act(i: int) -> str:
        if i % 2:
            return _quietly(lambda: files.delete("acme", "k"))
        return _quietly(lambda: files.put(tenant, "k", bytes([65 + i]) * (100 * (i + 1))))

    for _round in range(3):
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(act, range(8)))
        assert set(outcomes) <= {"ok", "not_found", "file_busy"}
        assert files.quota.usage("acme") == stored(files)
    # replacements keep the replaced version (noncurrent, counted); a delete removes every version
    files.put(tenant, "k", b"z" * 10)
    files.put(tenant, "k", b"y" * 20)
    assert files.quota.usage("acme") == stored(files)
    files.delete("acme", "k")
    assert files.quota.usage("acme") == stored(files) == {"bytes": 0, "files": 0}


def test_concurrent_writers_of_many_keys_are_counted_exactly(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(
            pool.map(lambda i: _quietly(lambda: files.put(tenant, f"f{i % 4}", b"q" * (50 + i))), range(24))
        )
    assert set(outcomes) <= {"ok", "file_busy"}  # writers of one key take turns (409 if it takes too long)
    assert outcomes.count("ok") >= 20
    assert files.quota.usage("acme") == stored(files)
    assert stored(files)["files"] == 4


def test_a_noncurrent_version_is_released_once_lifecycle_removed_it(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    first = files.put(tenant, "r.txt", b"1" * 300)
    files.put(tenant, "r.txt", b"2" * 200)
    assert files.quota.usage("acme") == {"bytes": 500, "files": 1}
    later = time.time() + 40 * 86400
    assert files.release_expired_versions("acme", now=later) == 0  # still in S3: still counted
    files.s3.delete_object(Bucket=BUCKET, Key="r.txt", VersionId=first["version"])  # lifecycle's work
    assert files.release_expired_versions("acme", now=later) == 1
    assert files.release_expired_versions("acme", now=later) == 0  # once
    assert files.quota.usage("acme") == stored(files) == {"bytes": 200, "files": 1}


def test_a_granted_upload_is_released_once_when_its_link_expires(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    files.upload(tenant, "big.bin", 4000)
    assert files.quota.usage("acme") == {"bytes": 4000, "files": 1}
    assert files.release_expired_uploads(now=time.time()) == 0  # not expired yet
    with ThreadPoolExecutor(4) as pool:
        released = list(pool.map(lambda _i: files.release_expired_uploads(now=time.time() + 3600), range(4)))
    assert sum(released) == 1
    assert files.quota.usage("acme") == {"bytes": 0, "files": 0}


def test_a_writer_that_died_after_its_put_is_adopted_and_one_that_died_before_is_undone(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, clock = store
    files.put(tenant, "c.bin", b"o" * 100)
    ledger = files.ledger
    # a writer takes the lock, reserves 250 bytes, writes its version ... and dies
    lock = ledger.lock("acme", "c.bin")
    ledger.reserve(lock, Op.PUT, 250, 0, tenant.quotas)
    files.s3.put_object(Bucket=BUCKET, Key="c.bin", Body=b"n" * 250, Metadata={SIZE_METADATA: "250"})
    clock.now += LOCK_SECONDS + 1
    files.put(tenant, "d.bin", b"-" * 10)  # (another key: untouched by the dead lock)
    files.put(tenant, "c.bin", b"z" * 40)  # the next writer settles what the dead one left
    assert files.quota.usage("acme") == stored(files) == {"bytes": 100 + 250 + 40 + 10, "files": 2}
    # a writer that reserved and died before writing: its reservation is given back
    lock = ledger.lock("acme", "d.bin")
    ledger.reserve(lock, Op.PUT, 5000, 0, tenant.quotas)
    clock.now += LOCK_SECONDS + 1
    files.delete("acme", "d.bin")
    assert files.quota.usage("acme") == stored(files)


def test_a_delete_that_died_half_way_is_finished_by_the_next_holder(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, clock = store
    files.put(tenant, "e.bin", b"1" * 60)
    files.put(tenant, "e.bin", b"2" * 70)
    lock = files.ledger.lock("acme", "e.bin")
    files.ledger.begin_delete(lock)
    for version in files.s3.list_object_versions(Bucket=BUCKET, Prefix="e.bin")["Versions"]:
        files.s3.delete_object(Bucket=BUCKET, Key="e.bin", VersionId=version["VersionId"])
    clock.now += LOCK_SECONDS + 1  # ... and died before releasing
    assert _quietly(lambda: files.delete("acme", "e.bin")) == "not_found"  # gone, and released
    assert files.quota.usage("acme") == stored(files) == {"bytes": 0, "files": 0}


def test_s3_failing_at_the_write_gives_the_reservation_back(
    store: tuple[TenantFiles, TenantProfile, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    files, tenant, _ = store

    def unavailable(**_kw: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "PutObject")

    monkeypatch.setattr(files.s3, "put_object", unavailable)
    with pytest.raises(Exception, match="ServiceUnavailable"):
        files.put(tenant, "x.bin", b"x" * 900)
    assert files.quota.usage("acme") == {"bytes": 0, "files": 0}
    monkeypatch.undo()
    files.put(tenant, "x.bin", b"x" * 900)  # the key is not left locked
    assert files.quota.usage("acme") == stored(files)


# ---------------------------------------------------------------------- S3 failing at exact calls
class FlakyS3:
    """moto's S3 with faults at exact calls: a write whose reply is ``lost`` after it landed, one
    ``dropped`` before it reached S3, one botocore ``repeated`` (sent twice, ``RetryAttempts``
    1), one S3 ``denied`` (403); S3 ``unreachable`` for listing and reading back; versions a
    DeleteObjects reply names as kept (``refuse``, once each: HTTP 200 with ``Errors``, as S3
    does)."""

    def __init__(self, s3: Any) -> None:
        self.real = s3
        self.lost: set[str] = set()
        self.dropped: set[str] = set()
        self.repeated: set[str] = set()
        self.denied: set[str] = set()
        self.unreachable = False
        self.refuse: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def _write(self, operation: str, **kwargs: Any) -> Any:
        if operation in self.dropped:
            raise ReadTimeoutError(endpoint_url=ENDPOINT)
        if operation in self.denied:
            reply: Any = {
                "Error": {"Code": "AccessDenied", "Message": "denied"},
                "ResponseMetadata": {"HTTPStatusCode": 403},
            }
            raise ClientError(reply, operation)
        reply = getattr(self.real, operation)(**kwargs)
        if operation in self.repeated:
            reply = getattr(self.real, operation)(**kwargs)
            reply = {**reply, "ResponseMetadata": {**reply["ResponseMetadata"], "RetryAttempts": 1}}
        if operation in self.lost:
            raise ReadTimeoutError(endpoint_url=ENDPOINT)
        return reply

    def put_object(self, **kwargs: Any) -> Any:
        return self._write("put_object", **kwargs)

    def copy_object(self, **kwargs: Any) -> Any:
        return self._write("copy_object", **kwargs)

    def delete_objects(self, **kwargs: Any) -> Any:
        objects = kwargs["Delete"]["Objects"]
        kept = [o for o in objects if o["VersionId"] in self.refuse]
        self.refuse -= {o["VersionId"] for o in kept}
        rest = [o for o in objects if o not in kept]
        reply = (
            self.real.delete_objects(Bucket=kwargs["Bucket"], Delete={**kwargs["Delete"], "Objects": rest})
            if rest
            else {}
        )
        if "delete_objects" in self.lost:
            raise ReadTimeoutError(endpoint_url=ENDPOINT)
        errors = [
            {**o, "Code": "InternalError", "Message": "We encountered an internal error."} for o in kept
        ]
        return {**reply, "Errors": errors} if errors else reply

    def get_paginator(self, name: str) -> Any:
        if self.unreachable:
            raise EndpointConnectionError(endpoint_url=ENDPOINT)
        return self.real.get_paginator(name)

    def head_object(self, **kwargs: Any) -> Any:
        if self.unreachable:
            raise EndpointConnectionError(endpoint_url=ENDPOINT)
        return self.real.head_object(**kwargs)


def _flaky(files: TenantFiles) -> FlakyS3:
    flaky = FlakyS3(files.s3)
    files.s3 = flaky
    return flaky


def _post(upload: dict[str, Any], data: bytes) -> int:
    """Send a presigned POST as a browser or curl -F does; S3's status."""
    return requests.post(
        upload["url"], data=upload["fields"], files={"file": ("f", data)}, timeout=10
    ).status_code


def _s3_versions(files: TenantFiles, prefix: str) -> list[dict[str, Any]]:
    return list(files.s3.real.list_object_versions(Bucket=BUCKET, Prefix=prefix).get("Versions", []))


# ---------------------------------------------------------------------- a write's unknown outcome
def test_a_write_whose_reply_was_lost_after_it_landed_is_counted_and_answered_as_written(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    flaky = _flaky(files)
    flaky.lost = {"put_object"}
    written = files.put(tenant, "secret.bin", b"x" * 5000)
    assert (written["size"], bool(written["version"])) == (5000, True)
    assert files.quota.usage("acme") == stored(files) == {"bytes": 5000, "files": 1}
    flaky.lost.clear()
    files.put(tenant, "secret.bin", b"y" * 10)  # a later writer finds nothing to settle
    assert files.quota.usage("acme") == stored(files) == {"bytes": 5010, "files": 1}
    files.delete("acme", "secret.bin")  # and the file can be deleted
    assert files.quota.usage("acme") == stored(files) == {"bytes": 0, "files": 0}


def test_a_write_that_never_reached_s3_gives_its_reservation_back(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    flaky = _flaky(files)
    flaky.dropped = {"put_object"}
    with pytest.raises(ServiceUnavailable, match="nothing was stored") as caught:
        files.put(tenant, "never.bin", b"n" * 3000)
    assert isinstance(caught.value.__cause__, ReadTimeoutError)
    assert files.quota.usage("acme") == stored(files) == {"bytes": 0, "files": 0}
    flaky.dropped.clear()
    files.put(tenant, "never.bin", b"n" * 3000)  # the key is not left locked
    assert files.quota.usage("acme") == stored(files) == {"bytes": 3000, "files": 1}


@pytest.mark.parametrize("landed", [True, False])
def test_an_outcome_s3_cannot_tell_keeps_the_reservation_for_the_sweep(
    store: tuple[TenantFiles, TenantProfile, ManualClock], landed: bool
) -> None:
    files, tenant, clock = store
    flaky = _flaky(files)
    (flaky.lost if landed else flaky.dropped).add("put_object")
    flaky.unreachable = True  # ... and S3 cannot be asked what it keeps either
    with pytest.raises(ServiceUnavailable, match="cannot tell") as caught:
        files.put(tenant, "unsure.bin", b"u" * 4000)
    assert caught.value.headers == {"Retry-After": str(LOCK_SECONDS)}
    assert files.quota.usage("acme") == {"bytes": 4000, "files": 1}  # not given back on a guess
    flaky.unreachable = False
    flaky.lost.clear()
    flaky.dropped.clear()
    assert files.settle_unsettled() == 0  # the key's lock has not expired yet
    clock.now += LOCK_SECONDS + 1
    assert files.settle_unsettled() == 1
    assert files.settle_unsettled() == 0  # once
    expected = {"bytes": 4000, "files": 1} if landed else {"bytes": 0, "files": 0}
    assert files.quota.usage("acme") == stored(files) == expected
    if landed:
        files.delete("acme", "unsure.bin")
        assert files.quota.usage("acme") == stored(files) == {"bytes": 0, "files": 0}


def test_a_write_botocore_sent_twice_counts_every_version_s3_keeps(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    flaky = _flaky(files)
    flaky.repeated = {"put_object"}
    written = files.put(tenant, "twice.bin", b"t" * 700)
    assert len(_s3_versions(files, "twice.bin")) == 2  # both attempts landed
    assert files.get("acme", "twice.bin") == b"t" * 700
    assert [v["VersionId"] for v in _s3_versions(files, "twice.bin") if v["IsLatest"]] == [written["version"]]
    assert files.quota.usage("acme") == stored(files) == {"bytes": 1400, "files": 1}
    files.delete("acme", "twice.bin")
    assert files.quota.usage("acme") == stored(files) == {"bytes": 0, "files": 0}


# ---------------------------------------------------------------------- deletes S3 only partly did
@pytest.mark.parametrize("refused", ["oldest", "newest"])
def test_a_delete_s3_only_partly_did_releases_what_went_and_answers_503(
    store: tuple[TenantFiles, TenantProfile, ManualClock], refused: str
) -> None:
    files, tenant, _ = store
    first = files.put(tenant, "report.txt", b"old confidential v1")
    second = files.put(tenant, "report.txt", b"new v2")
    flaky = _flaky(files)
    flaky.refuse = {first["version"] if refused == "oldest" else second["version"]}
    with pytest.raises(ServiceUnavailable) as caught:
        files.delete("acme", "report.txt")
    assert (caught.value.status, caught.value.headers) == (503, {"Retry-After": "1"})
    # what S3 kept is the file now, counted and deletable
    kept = b"old confidential v1" if refused == "oldest" else b"new v2"
    assert files.get("acme", "report.txt") == kept
    assert files.quota.usage("acme") == stored(files) == {"bytes": len(kept), "files": 1}
    files.delete("acme", "report.txt")  # the retry finishes the job
    assert files.quota.usage("acme") == stored(files) == {"bytes": 0, "files": 0}
    with pytest.raises(NotFound):
        files.get("acme", "report.txt")


def test_a_delete_whose_reply_was_lost_releases_what_s3_removed(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    files.put(tenant, "gone.txt", b"1" * 40)
    files.put(tenant, "gone.txt", b"2" * 50)
    flaky = _flaky(files)
    flaky.lost = {"delete_objects"}
    with pytest.raises(ServiceUnavailable):
        files.delete("acme", "gone.txt")
    assert files.quota.usage("acme") == stored(files) == {"bytes": 0, "files": 0}
    flaky.lost.clear()
    with pytest.raises(NotFound):
        files.delete("acme", "gone.txt")
    files.put(tenant, "gone.txt", b"3" * 60)  # the key is not left locked
    assert files.quota.usage("acme") == stored(files) == {"bytes": 60, "files": 1}


# ---------------------------------------------------------------------- presigned uploads
def test_a_presigned_post_sent_again_after_completion_is_never_counted_or_kept(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, _, _ = store
    quotas = parse_resource_quotas(
        {"storage": {"max_data_size": "10KB", "max_file_size": "8KB", "max_file_count": 5}}
    )
    tenant = TenantProfile(tenant_id="acme", name="Acme", status="ACTIVE", quotas=quotas)
    files.s3 = FlakyS3(files.s3)  # (no fault: _s3_versions reads the real client)
    upload = files.upload(tenant, "big.bin", 8000)
    assert _post(upload, b"A" * 8000) == 204
    done = files.complete(tenant, upload["upload_id"])
    for i in range(5):  # S3 accepts the presigned POST until it expires
        assert _post(upload, bytes([66 + i]) * 8000) == 204
    assert files.complete(tenant, upload["upload_id"]) == done  # never copied (or counted) again
    assert files.get("acme", "big.bin") == b"A" * 8000
    assert len(_s3_versions(files, "big.bin")) == 1
    assert files.release_expired_uploads(now=time.time()) == 0  # its link has not expired
    assert len(_s3_versions(files, STAGING_PREFIX)) == 5
    assert files.release_expired_uploads(now=time.time() + 3600) == 0  # completed: nothing to give back
    assert _s3_versions(files, STAGING_PREFIX) == []  # every version posted again is gone
    assert files.quota.usage("acme") == stored(files) == {"bytes": 8000, "files": 1}
    with pytest.raises(NotFound):  # forgotten once expired
        files.complete(tenant, upload["upload_id"])


def test_an_upload_retried_under_its_idempotent_id_is_the_same_upload_reserved_once(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    files.s3 = FlakyS3(files.s3)
    upload_id = str(uuid.uuid4())  # what an Idempotency-Key gives the request (creation_id)
    first = files.upload(tenant, "keyed.bin", 700, upload_id)
    assert first["upload_id"] == uuid.UUID(upload_id).hex
    # the first reply was lost (a deadline after the reservation): the retry gets the same upload
    again = files.upload(tenant, "keyed.bin", 700, upload_id)
    assert again["upload_id"] == first["upload_id"]
    assert again["fields"]["key"] == first["fields"]["key"]
    assert abs(
        datetime.fromisoformat(again["expires_at"]) - datetime.fromisoformat(first["expires_at"])
    ) < timedelta(seconds=1)
    assert files.quota.usage("acme") == {"bytes": 700, "files": 1}  # reserved once
    with pytest.raises(Conflict):  # the id granted for another file
        files.upload(tenant, "other.bin", 700, upload_id)
    assert _post(again, b"K" * 700) == 204
    files.complete(tenant, again["upload_id"])
    with pytest.raises(Conflict):  # completed: no new link for it
        files.upload(tenant, "keyed.bin", 700, upload_id)
    assert files.quota.usage("acme") == stored(files) == {"bytes": 700, "files": 1}
    # without an id, each upload is its own
    ids = {files.upload(tenant, "free.bin", 10)["upload_id"] for _ in range(2)}
    assert len(ids) == 2


def test_a_presigned_upload_sent_many_times_and_never_completed_leaves_nothing(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    files.s3 = FlakyS3(files.s3)
    upload = files.upload(tenant, "never.bin", 600)
    for i in range(3):
        assert _post(upload, bytes([70 + i]) * 600) == 204
    assert files.release_expired_uploads(now=time.time() + 3600) == 1
    assert _s3_versions(files, STAGING_PREFIX) == []
    assert files.quota.usage("acme") == stored(files) == {"bytes": 0, "files": 0}


def test_the_data_buckets_lifecycle_expires_noncurrent_staging_versions_within_a_day(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, _, _ = store
    files.s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=DATA_LIFECYCLE)
    rules = files.s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    staging = [r for r in rules if r.get("Filter", {}).get("Prefix") == STAGING_PREFIX]
    assert len(staging) == 1
    assert staging[0]["Expiration"]["Days"] <= 1
    assert staging[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] <= 1


def test_parallel_completes_of_one_upload_answer_as_the_winner_and_count_it_once(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    files.s3 = FlakyS3(files.s3)
    for trial in range(3):
        key, size = f"race{trial}.bin", 1000 + trial
        upload = files.upload(tenant, key, size)
        assert _post(upload, b"r" * size) == 204

        def complete(_i: int, upload: dict[str, Any] = upload) -> Any:
            try:
                return files.complete(tenant, upload["upload_id"])
            except DomainError as exc:  # anything else (NoSuchKey: a 500) fails the test
                return exc.code

        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(complete, range(12)))
        answers = [o for o in outcomes if isinstance(o, dict)]
        assert answers, outcomes
        assert all(a == answers[0] for a in answers)
        assert (answers[0]["key"], answers[0]["size"]) == (key, size)
        assert {o for o in outcomes if not isinstance(o, dict)} <= {"file_busy"}
        assert files.complete(tenant, upload["upload_id"]) == answers[0]
        assert len(_s3_versions(files, key)) == 1
    assert files.quota.usage("acme") == stored(files) == {"bytes": 3003, "files": 3}


def test_a_completion_whose_copy_reply_was_lost_is_counted_and_answered(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    flaky = _flaky(files)
    upload = files.upload(tenant, "up.bin", 2000)
    assert _post(upload, b"p" * 2000) == 204
    flaky.lost = {"copy_object"}
    done = files.complete(tenant, upload["upload_id"])
    assert (done["key"], done["size"], bool(done["version"])) == ("up.bin", 2000, True)
    flaky.lost.clear()
    assert files.complete(tenant, upload["upload_id"]) == done
    assert files.quota.usage("acme") == stored(files) == {"bytes": 2000, "files": 1}


def test_a_completion_whose_copy_never_reached_s3_can_be_completed_again(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    flaky = _flaky(files)
    upload = files.upload(tenant, "up.bin", 2000)
    assert _post(upload, b"p" * 2000) == 204
    flaky.dropped = {"copy_object"}
    with pytest.raises(ServiceUnavailable, match="nothing was stored"):
        files.complete(tenant, upload["upload_id"])
    assert files.quota.usage("acme") == {"bytes": 2000, "files": 1}  # the upload's reservation again
    flaky.dropped.clear()
    done = files.complete(tenant, upload["upload_id"])
    assert (done["key"], done["size"]) == ("up.bin", 2000)
    assert files.quota.usage("acme") == stored(files) == {"bytes": 2000, "files": 1}


def test_a_completion_s3_refused_gives_the_reservation_back_to_the_upload(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    files.put(tenant, "up.bin", b"o" * 100)  # (replacing a file: the upload's file is given back)
    flaky = _flaky(files)
    upload = files.upload(tenant, "up.bin", 2000)
    assert _post(upload, b"p" * 2000) == 204
    flaky.denied = {"copy_object"}
    with pytest.raises(ClientError):
        files.complete(tenant, upload["upload_id"])
    assert files.quota.usage("acme") == {"bytes": 2100, "files": 2}  # still the upload's
    flaky.denied.clear()
    files.complete(tenant, upload["upload_id"])  # it can be completed again
    assert files.quota.usage("acme") == stored(files) == {"bytes": 2100, "files": 1}


@pytest.mark.parametrize("landed", [True, False])
def test_a_completion_that_died_is_settled_by_the_next(
    store: tuple[TenantFiles, TenantProfile, ManualClock], landed: bool
) -> None:
    files, tenant, clock = store
    files.s3 = FlakyS3(files.s3)
    upload = files.upload(tenant, "big.bin", 3000)
    assert _post(upload, b"d" * 3000) == 204
    granted = files.ledger.upload("acme", upload["upload_id"])
    assert granted is not None
    # a completion takes the key's lock, claims the upload, maybe copies it ... and dies
    lock = files.ledger.lock("acme", "big.bin")
    assert files.ledger.claim_upload(lock, granted)
    if landed:
        files.s3.copy_object(
            Bucket=BUCKET,
            Key="big.bin",
            CopySource={"Bucket": BUCKET, "Key": f"{STAGING_PREFIX}{upload['upload_id']}"},
            MetadataDirective="REPLACE",
            Metadata={SIZE_METADATA: "3000", PROTECTION_METADATA: "sse-kms"},
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=files._data_key("acme"),
        )
    clock.now += LOCK_SECONDS + 1
    done = files.complete(tenant, upload["upload_id"])
    assert (done["key"], done["size"]) == ("big.bin", 3000)
    assert len(_s3_versions(files, "big.bin")) == 1
    assert files.quota.usage("acme") == stored(files) == {"bytes": 3000, "files": 1}


class _ContendedOnce:
    """The DynamoDB client, the next transaction cancelled for contention on its first item (the
    tenant's storage counter, written by every upload at once), as DynamoDB reports it."""

    def __init__(self, client: Any) -> None:
        self.client, self.armed = client, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            codes = ["TransactionConflict"] + ["None"] * (len(kwargs["TransactItems"]) - 1)
            response: Any = {
                "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                "CancellationReasons": [{"Code": c} for c in codes],
            }
            raise ClientError(response, "TransactWriteItems")
        return self.client.transact_write_items(**kwargs)


def test_an_upload_meeting_another_write_is_a_transient_error_not_a_full_quota(
    store: tuple[TenantFiles, TenantProfile, ManualClock],
) -> None:
    files, tenant, _ = store
    files.ledger.client = _ContendedOnce(files.ledger.client)
    with pytest.raises(ClientError) as contended:
        files.upload(tenant, "big.bin", 4000)
    assert is_transient(contended.value)  # a 503 with Retry-After, not 413 storage_quota_exceeded
    assert files.quota.usage("acme") == {"bytes": 0, "files": 0}
    files.upload(tenant, "big.bin", 4000)  # the retry
    assert files.quota.usage("acme") == {"bytes": 4000, "files": 1}
