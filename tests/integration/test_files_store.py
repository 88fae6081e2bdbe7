"""Tenant files on moto: encryption under the tenant data key, quotas, keys, other tenants."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from tenant_security.config import Settings
from tenant_security.crypto import DecryptionRefused
from tenant_security.errors import NotFound, PayloadTooLarge, ValidationFailed
from tenant_security.models.quotas import parse_resource_quotas
from tenant_security.quotas import StorageQuota
from tenant_security.storage import TenantFiles, check_key
from tenant_security.tenants import TenantRecord
from tests.support.moto import create_table, mocked_aws


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TenantFiles, dict[str, TenantRecord]]]:
    with mocked_aws(monkeypatch):
        settings = Settings(resource_prefix="tst", account_id="123456789012")
        s3, kms, ddb = (boto3.client(n, region_name="us-east-1") for n in ("s3", "kms", "dynamodb"))
        create_table(ddb, settings.counters_table, "pk", "sk")
        records = {}
        for tenant in ("acme", "beta"):
            # multi-Region, as onboarding makes them (moto could not decrypt under such keys)
            key = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=settings.tenant_key_alias(tenant, "data"), TargetKeyId=key)
            s3.create_bucket(Bucket=settings.data_bucket(tenant))
            quotas = parse_resource_quotas({"storage": {"max_file_size": "1KB", "max_data_size": "2KB"}})
            records[tenant] = TenantRecord(tenant_id=tenant, name=tenant, status="ACTIVE", quotas=quotas)
        yield TenantFiles(settings, s3, kms, StorageQuota(ddb, settings.counters_table)), records


def test_files_round_trip_and_count_against_the_quota(
    files: tuple[TenantFiles, dict[str, TenantRecord]],
) -> None:
    store, tenants = files
    store.put(tenants["acme"], "a/b.bin", b"\x00\x01" * 200)
    assert store.get("acme", "a/b.bin") == b"\x00\x01" * 200
    assert store.quota.usage("acme") == {"bytes": 400, "files": 1}
    store.put(tenants["acme"], "a/b.bin", b"x" * 100)  # replacing counts the new size only
    assert store.quota.usage("acme") == {"bytes": 100, "files": 1}
    with pytest.raises(PayloadTooLarge):
        store.put(tenants["acme"], "big", b"x" * 1025)
    store.delete("acme", "a/b.bin")
    assert store.quota.usage("acme") == {"bytes": 0, "files": 0}
    with pytest.raises(NotFound):
        store.get("acme", "a/b.bin")


def test_a_ciphertext_of_one_tenant_or_key_is_refused_as_another(
    files: tuple[TenantFiles, dict[str, TenantRecord]],
) -> None:
    store, tenants = files
    store.put(tenants["acme"], "secret", b"acme only")
    s3 = store.s3
    body = s3.get_object(Bucket="tst-tenant-acme-data", Key="secret")["Body"].read()
    s3.put_object(Bucket="tst-tenant-beta-data", Key="secret", Body=body)
    s3.put_object(Bucket="tst-tenant-acme-data", Key="renamed", Body=body)
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
