"""Onboarding steps against recording fakes: what KMS is asked for (moto stores no rotation
period), the request fingerprint, and validation before anything is touched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenant_security.errors import ValidationFailed
from tenant_security.models.onboarding import parse_onboarding_request
from tenant_security.onboarding.provisioner import TenantProvisioner
from tests.support.settings import local_settings


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
# a deployment with a platform database (its master secret)
DB = "arn:aws:secretsmanager:us-east-1:123456789012:secret:platform-database"


def provisioner(kms: Any, **settings: Any) -> TenantProvisioner:
    chosen = local_settings(**settings)
    return TenantProvisioner(chosen, kms, None, None, OwnedTenants(), None, None, lambda: None)  # type: ignore[arg-type]


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
        TenantProvisioner.validate_with(local_settings(region="us-east-1", database_secret_arn=DB), body)
    assert caught.value.fields == [
        {
            "field": "security_policies.data_protection.data_locality",
            "message": "must include us-east-1: this deployment stores the tenant's data there",
        }
    ]
    # fine where it is allowed
    TenantProvisioner.validate_with(local_settings(region="eu-west-1", database_secret_arn=DB), body)


def test_an_onboarding_request_from_the_bus_with_an_infinite_threshold_is_rejected() -> None:
    """Red team B: Lambda's JSON reads 1e999 in an event as infinity; it must not reach the record."""
    body = json.loads(
        '{"tenant_id": "acme", "name": "Acme", "isolation": "schema",'
        ' "admin": {"username": "owner", "email": "o@acme.example"},'
        ' "security_policies": {"rate_limiting": {"cost_threshold": 1e999}}}'
    )
    with pytest.raises(ValidationFailed) as caught:
        TenantProvisioner.validate_with(local_settings(), body)
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
        TenantProvisioner.validate_with(local_settings(resource_prefix=prefix), body)
    assert caught.value.fields
    assert caught.value.fields[0]["field"] == "tenant_id"


@pytest.mark.parametrize(
    ("database_secret_arn", "isolation", "problem"),
    [
        ("", "schema", "this deployment has no tenant databases"),
        ("", "database", "this deployment has no tenant databases"),
        (DB, None, "required"),
    ],
)
def test_isolation_is_required_with_a_database_and_refused_without_one(
    database_secret_arn: str, isolation: str | None, problem: str
) -> None:
    """Issue 16 item 6: DatabaseSecretArn="" (every samconfig profile) means no tenant databases."""
    body: dict[str, Any] = {
        "tenant_id": "acme",
        "name": "Acme",
        "admin": {"username": "owner", "email": "o@acme.example"},
    }
    if isolation is not None:
        body["isolation"] = isolation
    with pytest.raises(ValidationFailed) as caught:
        TenantProvisioner.validate_with(local_settings(database_secret_arn=database_secret_arn), body)
    assert [f["field"] for f in caught.value.fields or []] == ["isolation"]
    assert (caught.value.fields or [])[0]["message"].startswith(problem)
    # the CLI cannot know the deployment's database: it leaves the question to the API
    settings = local_settings()
    assert TenantProvisioner.validate_with(settings, body, check_database=False).isolation == isolation


@pytest.mark.parametrize(("database_secret_arn", "isolation"), [("", None), (DB, "schema"), (DB, "database")])
def test_isolation_the_deployment_can_serve_is_accepted(
    database_secret_arn: str, isolation: str | None
) -> None:
    body: dict[str, Any] = {
        "tenant_id": "acme",
        "name": "Acme",
        "admin": {"username": "owner", "email": "o@acme.example"},
    }
    if isolation is not None:
        body["isolation"] = isolation
    request = TenantProvisioner.validate_with(local_settings(database_secret_arn=database_secret_arn), body)
    assert request.database_isolation == (isolation or "none")


def test_a_request_without_isolation_creates_no_database() -> None:
    asked: list[str] = []

    def no_database() -> Any:  # services.tenant_databases() where DatabaseSecretArn is empty
        asked.append("databases")
        return None

    steps = TenantProvisioner(local_settings(), None, None, None, OwnedTenants(), None, None, no_database)  # type: ignore[arg-type]
    body = {"tenant_id": "acme", "name": "Acme", "admin": {"username": "owner", "email": "o@acme.example"}}
    assert steps.create_database(steps.validate(body), EXECUTION) == {"isolation": "none"}
    assert asked == []  # no secret read, no connection
    steps.database.drop("acme")  # the teardown of compensation and offboarding: nothing to drop
    assert asked == ["databases"]
