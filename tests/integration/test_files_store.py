"""Tenant files on moto: encryption under the tenant data key, quotas, keys, other tenants."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from tenant_security.crypto import DecryptionRefused
from tenant_security.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from tenant_security.models.quotas import parse_resource_quotas
from tenant_security.quotas.storage import StorageQuota, StorageQuotaExceeded
from tenant_security.storage.file_keys import check_key
from tenant_security.storage.files import TenantFiles
from tenant_security.storage.ledger import FileLedger
from tenant_security.tenants import TenantProfile
from tests.support.moto import create_table, mocked_aws
from tests.support.settings import local_settings


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TenantFiles, dict[str, TenantProfile]]]:
    with mocked_aws(monkeypatch):
        settings = local_settings(resource_prefix="tst", account_id="123456789012")
        s3, kms, ddb = (boto3.client(n, region_name="us-east-1") for n in ("s3", "kms", "dynamodb"))
        create_table(ddb, settings.counters_table, "pk", "sk")
        records = {}
        for tenant in ("acme", "beta"):
            # multi-Region, as onboarding makes them (moto could not decrypt under such keys)
            key = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=settings.tenant_key_alias(tenant, "data"), TargetKeyId=key)
            s3.create_bucket(Bucket=settings.data_bucket(tenant))
            s3.put_bucket_versioning(  # as onboarding makes them
                Bucket=settings.data_bucket(tenant), VersioningConfiguration={"Status": "Enabled"}
            )
            quotas = parse_resource_quotas({"storage": {"max_file_size": "1KB", "max_data_size": "2KB"}})
            records[tenant] = TenantProfile(tenant_id=tenant, name=tenant, status="ACTIVE", quotas=quotas)
        quota = StorageQuota(ddb, settings.counters_table)
        ledger = FileLedger(ddb, settings.counters_table, quota)
        yield TenantFiles(settings, s3, kms, quota, ledger), records


def test_files_round_trip_and_count_against_the_quota(
    files: tuple[TenantFiles, dict[str, TenantProfile]],
) -> None:
    store, tenants = files
    store.put(tenants["acme"], "a/b.bin", b"\x00\x01" * 200)
    assert store.get("acme", "a/b.bin") == b"\x00\x01" * 200
    assert store.quota.usage("acme") == {"bytes": 400, "files": 1}
    store.put(tenants["acme"], "a/b.bin", b"x" * 100)  # the replaced version stays (and counts) as noncurrent
    assert store.quota.usage("acme") == {"bytes": 500, "files": 1}
    with pytest.raises(PayloadTooLarge):
        store.put(tenants["acme"], "big", b"x" * 1025)
    store.delete("acme", "a/b.bin")  # every version of it goes, and each is released
    assert store.quota.usage("acme") == {"bytes": 0, "files": 0}
    assert store.s3.list_object_versions(Bucket="tst-10ca1000-tenant-acme-data").get("Versions", []) == []
    with pytest.raises(NotFound):
        store.get("acme", "a/b.bin")


def test_a_ciphertext_of_one_tenant_or_key_is_refused_as_another(
    files: tuple[TenantFiles, dict[str, TenantProfile]],
) -> None:
    store, tenants = files
    store.put(tenants["acme"], "secret", b"acme only")
    s3 = store.s3
    body = s3.get_object(Bucket="tst-10ca1000-tenant-acme-data", Key="secret")["Body"].read()
    s3.put_object(Bucket="tst-10ca1000-tenant-beta-data", Key="secret", Body=body)
    s3.put_object(Bucket="tst-10ca1000-tenant-acme-data", Key="renamed", Body=body)
    with pytest.raises(DecryptionRefused):
        store.get("beta", "secret")
    with pytest.raises(DecryptionRefused):
        store.get("acme", "renamed")


@pytest.mark.parametrize(
    "key", ["", "/a", "a/../b", "./a", "a//b", "a/", "a\x00b", "a\nb", "a\\b", "x" * 513]
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationFailed):
        check_key(key)


def _send(upload: dict[str, Any], data: bytes, **overrides: str) -> requests.Response:
    """What a browser or curl does with a presigned POST (fields, then the file)."""
    fields = {**upload["fields"], **overrides}
    return requests.post(upload["url"], data=fields, files={"file": ("f", data)}, timeout=10)


def test_a_presigned_upload_is_checked_counted_and_moved_to_its_key(
    files: tuple[TenantFiles, dict[str, TenantProfile]],
) -> None:
    store, tenants = files
    payload = bytes(range(256)) * 3  # 768 bytes
    upload = store.upload(tenants["acme"], "big/report.bin", len(payload))
    assert upload["fields"]["key"] == f".uploads/{upload['upload_id']}"
    assert store.quota.usage("acme") == {"bytes": 768, "files": 1}  # reserved when granted
    assert _send(upload, payload).status_code == 204
    assert store.list("acme")["items"] == []  # nothing listed before completion
    done = store.complete(tenants["acme"], upload["upload_id"])
    assert (done["key"], done["size"]) == ("big/report.bin", 768)
    assert store.quota.usage("acme") == {"bytes": 768, "files": 1}
    head = store.s3.head_object(Bucket="tst-10ca1000-tenant-acme-data", Key="big/report.bin")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == store._data_key("acme")
    assert [i["key"] for i in store.list("acme")["items"]] == ["big/report.bin"]
    assert store.get("acme", "big/report.bin") == payload
    link = store.download("acme", "big/report.bin")
    assert requests.get(link["url"], timeout=10).content == payload
    # completed once: completing it again answers with the same file, copying nothing again
    assert store.complete(tenants["acme"], upload["upload_id"]) == done
    assert (
        len(store.s3.list_object_versions(Bucket="tst-10ca1000-tenant-acme-data", Prefix="big/")["Versions"])
        == 1
    )
    store.delete("acme", "big/report.bin")
    assert store.quota.usage("acme") == {"bytes": 0, "files": 0}


@pytest.mark.parametrize(
    ("size", "overrides"),
    [
        (100, {}),  # more bytes than signed for
        (10, {}),  # fewer
        (50, {"x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:123456789012:key/other"}),
        (50, {"x-amz-server-side-encryption": "AES256"}),
        (50, {"key": ".uploads/someone-elses"}),
        (50, {"x-amz-meta-target-key": "elsewhere"}),
        (50, {"x-amz-meta-plaintext-size": "1"}),
        (50, {"x-amz-meta-extra": "unsigned field"}),
    ],
)
def test_s3_refuses_an_upload_the_policy_does_not_allow(
    files: tuple[TenantFiles, dict[str, TenantProfile]], size: int, overrides: dict[str, str]
) -> None:
    store, tenants = files
    upload = store.upload(tenants["acme"], "doc.bin", 50)
    reply = _send(upload, b"x" * size, **overrides)
    assert reply.status_code == 403, reply.text
    assert "AccessDenied" in reply.text
    with pytest.raises(NotFound):
        store.complete(tenants["acme"], upload["upload_id"])
    assert store.quota.usage("acme") == {"bytes": 50, "files": 1}  # reserved until the link expires
    assert store.release_expired_uploads(now=time.time() + 3600) == 1
    assert store.quota.usage("acme") == {"bytes": 0, "files": 0}


def test_uploads_over_the_limits_or_with_bad_ids_are_refused(
    files: tuple[TenantFiles, dict[str, TenantProfile]],
) -> None:
    store, tenants = files
    with pytest.raises(PayloadTooLarge):
        store.upload(tenants["acme"], "huge.bin", 1025)  # max_file_size is 1KB
    with pytest.raises(ValidationFailed):
        store.upload(tenants["acme"], ".uploads/sneaky", 10)  # the staging area is not a file key
    with pytest.raises(ValidationFailed):
        store.complete(tenants["acme"], "../../x")
    with pytest.raises(NotFound):
        store.complete(tenants["acme"], "0" * 32)
    # uploads are reserved when granted (max_data_size 2KB = 2,048 bytes)
    first = store.upload(tenants["beta"], "a", 1000)
    store.put(tenants["beta"], "c", b"x" * 500)
    with pytest.raises(StorageQuotaExceeded):
        store.upload(tenants["beta"], "b", 1000)  # 1,500 + 1,000 > 2,048
    with pytest.raises(StorageQuotaExceeded):
        store.put(tenants["beta"], "d", b"x" * 600)  # the granted upload holds its room
    assert _send(first, b"y" * 1000).status_code == 204
    store.complete(tenants["beta"], first["upload_id"])
    assert store.quota.usage("beta") == {"bytes": 1500, "files": 2}
    staged = store.s3.list_object_versions(Bucket="tst-10ca1000-tenant-beta-data", Prefix=".uploads/")
    assert staged.get("Versions", []) == []  # nothing staged remains


def test_a_download_link_is_only_for_uploaded_files(
    files: tuple[TenantFiles, dict[str, TenantProfile]],
) -> None:
    store, tenants = files
    store.put(tenants["acme"], "small.txt", b"hi")
    with pytest.raises(Conflict):
        store.download("acme", "small.txt")  # client-side encrypted: the API's GET decrypts it
    with pytest.raises(NotFound):
        store.download("acme", "missing.txt")
