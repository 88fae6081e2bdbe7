"""The storage quota under concurrency, repetition and crashes (moto, versioned buckets as
onboarding makes them): after anything, the usage equals what S3 keeps.

"What S3 keeps" is read from S3 itself: every version of every file (current or noncurrent) with
its plaintext size, and the keys that have a current version.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from tenant_security.config import Settings
from tenant_security.errors import DomainError
from tenant_security.models.quotas import parse_resource_quotas
from tenant_security.quotas import StorageQuota
from tenant_security.storage import SIZE_METADATA, TenantFiles
from tenant_security.storage_ledger import LOCK_SECONDS, FileLedger, Op
from tenant_security.tenants import TenantRecord
from tests.support.clock import ManualClock
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
BUCKET = "tst-tenant-acme-data"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TenantFiles, TenantRecord, ManualClock]]:
    with mocked_aws(monkeypatch):
        settings = Settings(resource_prefix="tst", account_id="123456789012")
        s3, kms, ddb = (boto3.client(n, region_name="us-east-1") for n in ("s3", "kms", "dynamodb"))
        create_table(ddb, settings.counters_table, "pk", "sk")
        key = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=settings.tenant_key_alias("acme", "data"), TargetKeyId=key)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        quotas = parse_resource_quotas({"storage": {"max_file_size": "100KB", "max_data_size": "10MB"}})
        tenant = TenantRecord(tenant_id="acme", name="Acme", status="ACTIVE", quotas=quotas)
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
    store: tuple[TenantFiles, TenantRecord, ManualClock],
) -> None:
    files, tenant, _ = store
    files.put(tenant, "doc.bin", b"x" * 1000)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _i: _quietly(lambda: files.delete("acme", "doc.bin")), range(2)))
    assert sorted(outcomes) in (["not_found", "ok"], ["file_busy", "ok"])
    assert files.quota.usage("acme") == {"bytes": 0, "files": 0}  # never -1,000
    assert stored(files) == {"bytes": 0, "files": 0}


def test_8_concurrent_deletes_and_replaces_of_one_key_leave_usage_equal_to_what_is_stored(
    store: tuple[TenantFiles, TenantRecord, ManualClock],
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
    store: tuple[TenantFiles, TenantRecord, ManualClock],
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
    store: tuple[TenantFiles, TenantRecord, ManualClock],
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
    store: tuple[TenantFiles, TenantRecord, ManualClock],
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
    store: tuple[TenantFiles, TenantRecord, ManualClock],
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
    store: tuple[TenantFiles, TenantRecord, ManualClock],
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
    store: tuple[TenantFiles, TenantRecord, ManualClock], monkeypatch: pytest.MonkeyPatch
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
