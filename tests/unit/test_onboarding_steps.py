"""Onboarding steps against recording fakes: what KMS is asked for (moto stores no rotation
period), the request fingerprint, and validation before anything is touched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenant_security.config import Settings
from tenant_security.errors import ValidationFailed
from tenant_security.models.onboarding import parse_onboarding_request
from tenant_security.onboarding import TenantProvisioner


class RecordingKms:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.count = 0

    def describe_key(self, **kw: Any) -> Any:
        self.calls.append(("describe_key", kw))
        error = Exception("not found")
        error.response = {"Error": {"Code": "NotFoundException"}}  # type: ignore[attr-defined]
        raise error

    def create_key(self, **kw: Any) -> Any:
        self.calls.append(("create_key", kw))
        self.count += 1
        return {
            "KeyMetadata": {
                "KeyId": f"k{self.count}",
                "Arn": f"arn:aws:kms:us-east-1:1:key/k{self.count}",
                "MultiRegion": kw["MultiRegion"],
            }
        }

    def __getattr__(self, name: str) -> Any:
        return lambda **kw: self.calls.append((name, kw)) or {}


def request(**policy: Any) -> Any:
    return parse_onboarding_request(
        {
            "tenant_id": "acme",
            "name": "Acme",
            "isolation": "schema",
            "admin": {"username": "owner", "email": "o@acme.example"},
            "security_policies": policy,
        }
    )


class OwnedTenants:
    """A tenant store in which this test's execution owns every tenant's provisioning."""

    def owned(self, tenant_id: str, execution: str) -> Any:
        assert execution == EXECUTION
        return None


EXECUTION = "arn:aws:states:us-east-1:1:execution:onboarding:run-1"


def provisioner(kms: Any, **settings: Any) -> TenantProvisioner:
    return TenantProvisioner(Settings(**settings), kms, None, None, OwnedTenants(), None, None, lambda: None)  # type: ignore[arg-type]


def test_keys_rotate_on_the_policys_schedule_and_are_tagged() -> None:
    kms = RecordingKms()
    keys = provisioner(kms, tenant_key_users="arn:aws:iam::1:role/a").create_keys(
        request(data_protection={"key_rotation_days": 365, "cross_region_encryption": True}), EXECUTION
    )
    assert set(keys) == {"data", "secrets", "api-keys"}
    created = [kw for name, kw in kms.calls if name == "create_key"]
    assert len(created) == 3
    assert all(kw["MultiRegion"] is True for kw in created)
    assert all({"TagKey": "TenantId", "TagValue": "acme"} in kw["Tags"] for kw in created)
    rotations = [kw for name, kw in kms.calls if name == "enable_key_rotation"]
    assert [r["RotationPeriodInDays"] for r in rotations] == [365, 365, 365]
    aliases = sorted(kw["AliasName"] for name, kw in kms.calls if name == "create_alias")
    assert aliases == [
        "alias/dcisionai-tenant-acme-api-keys",
        "alias/dcisionai-tenant-acme-data",
        "alias/dcisionai-tenant-acme-secrets",
    ]
    assert '"arn:aws:iam::1:role/a"' in created[0]["Policy"]
    # cross_region_encryption: each key replicated to the other data_locality region, same policy
    replicas = [kw for name, kw in kms.calls if name == "replicate_key"]
    assert [(r["KeyId"], r["ReplicaRegion"]) for r in replicas] == [
        ("k1", "us-west-2"),
        ("k2", "us-west-2"),
        ("k3", "us-west-2"),
    ]
    assert replicas[0]["Policy"] == created[0]["Policy"]


def test_keys_without_cross_region_encryption_stay_in_one_region() -> None:
    kms = RecordingKms()
    provisioner(kms).create_keys(request(data_protection={"cross_region_encryption": False}), EXECUTION)
    assert all(kw["MultiRegion"] is False for name, kw in kms.calls if name == "create_key")
    assert not [name for name, _ in kms.calls if name == "replicate_key"]


def test_a_data_locality_without_this_region_is_refused() -> None:
    body = {
        "tenant_id": "acme",
        "name": "Acme",
        "isolation": "schema",
        "admin": {"username": "owner", "email": "o@acme.example"},
        "security_policies": {"data_protection": {"data_locality": ["eu-west-1"]}},
    }
    with pytest.raises(ValidationFailed) as caught:
        TenantProvisioner.validate_with(Settings(AWS_REGION="us-east-1"), body)
    assert caught.value.fields == [
        {
            "field": "security_policies.data_protection.data_locality",
            "message": "must include us-east-1: this deployment stores the tenant's data there",
        }
    ]
    TenantProvisioner.validate_with(Settings(AWS_REGION="eu-west-1"), body)  # fine where it is allowed


def test_an_onboarding_request_from_the_bus_with_an_infinite_threshold_is_rejected() -> None:
    """Red team B: Lambda's JSON reads 1e999 in an event as infinity; it must not reach the record."""
    body = json.loads(
        '{"tenant_id": "acme", "name": "Acme", "isolation": "schema",'
        ' "admin": {"username": "owner", "email": "o@acme.example"},'
        ' "security_policies": {"rate_limiting": {"cost_threshold": 1e999}}}'
    )
    with pytest.raises(ValidationFailed) as caught:
        TenantProvisioner.validate_with(Settings(), body)
    assert [f["field"] for f in caught.value.fields or []] == [
        "security_policies.rate_limiting.cost_threshold"
    ]


def test_the_fingerprint_tells_requests_apart() -> None:
    assert request().fingerprint() == request().fingerprint()
    assert request().fingerprint() != request(access_control={"max_concurrent_sessions": 5}).fingerprint()


@pytest.mark.parametrize(
    ("prefix", "tenant_id"), [("dcisionai", "platform"), ("a-very-long-prefix-x", "t" * 32)]
)
def test_ids_that_cannot_be_onboarded(prefix: str, tenant_id: str) -> None:
    body = {
        "tenant_id": tenant_id,
        "name": "X",
        "isolation": "database",
        "admin": {"username": "owner", "email": "o@x.example"},
    }
    with pytest.raises(ValidationFailed) as caught:
        TenantProvisioner.validate_with(Settings(resource_prefix=prefix), body)
    assert caught.value.fields
    assert caught.value.fields[0]["field"] == "tenant_id"
