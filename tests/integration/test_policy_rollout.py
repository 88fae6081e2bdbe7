"""The policy rollout on moto: a stored change's AWS side converged -- the rotation period of
every tenant key, replicas added, scheduled for deletion and restored as data_locality changes,
the audit bucket's default retention -- repeatable, in any order, and every failure recorded
and alerted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tenant_security.alerts import AlertKind
from tenant_security.config import KEY_PURPOSES, Settings
from tenant_security.models.onboarding import parse_onboarding_request
from tenant_security.models.policies import SecurityPolicies, parse_security_policies
from tenant_security.onboarding.buckets import TenantBuckets
from tenant_security.onboarding.errors import TransientError
from tenant_security.onboarding.keys import TenantKeys
from tenant_security.policy.changes import field_changes, rolled_out
from tenant_security.policy.revisions import PolicyRevisions, RolloutStatus, rollout_state
from tenant_security.policy.rollout import PolicyRollout, RolloutFailed
from tenant_security.tenants import TenantProfile, TenantStatus, TenantStore
from tests.support.moto import create_table, mocked_aws
from tests.support.settings import local_settings

pytestmark = pytest.mark.integration
TENANT = "acme"
HOME = "us-east-1"


class RecordingKms:
    """A KMS client that records each call and fails the ones a test names (by method)."""

    def __init__(self, client: Any, world: World) -> None:
        self._client = client
        self._world = world

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self._world.calls.append((self._client.meta.region_name, name, kwargs))
            hook = self._world.before.pop(name, None)
            if hook is not None:
                hook()
            code = self._world.failing.get(name)
            if code is not None:
                raise ClientError({"Error": {"Code": code, "Message": "arn:aws:kms:secret"}}, _op(name))
            return method(**kwargs)

        return call


def _op(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


class FailingS3:
    def __init__(self, client: Any, world: World) -> None:
        self._client = client
        self._world = world

    def __getattr__(self, name: str) -> Any:
        code = self._world.failing.get(name)
        if code is None:
            return getattr(self._client, name)

        def refuse(**_: Any) -> Any:
            raise ClientError({"Error": {"Code": code, "Message": "refused"}}, _op(name))

        return refuse


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, AlertKind, dict[str, Any]]] = []

    def security_alert(self, tenant_id: str, alert: AlertKind, **detail: Any) -> bool:
        self.sent.append((tenant_id, alert, detail))
        return True


@dataclass
class World:
    settings: Settings
    store: TenantStore
    revisions: PolicyRevisions
    rollout: PolicyRollout = field(init=False)
    alerts: Alerts = field(default_factory=Alerts)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)  # method -> called once before it runs

    def kms(self, region: str = HOME) -> Any:
        return boto3.client("kms", region_name=region)

    def onboard(self, tenant_id: str = TENANT, **protection: Any) -> None:
        """The tenant's keys and buckets as onboarding makes them, and its ACTIVE profile."""
        request = parse_onboarding_request(
            {
                "tenant_id": tenant_id,
                "name": "Acme",
                "admin": {"username": "owner", "email": "o@acme.example"},
                "security_policies": {"data_protection": protection},
            }
        )
        keys = TenantKeys(self.settings, self.kms(), self.kms).create(request)
        TenantBuckets(self.settings, boto3.client("s3", region_name=HOME)).create(request, keys)
        self.store.create(
            TenantProfile(
                tenant_id, "Acme", TenantStatus.ACTIVE, isolation="none", policies=request.security_policies
            )
        )

    def change(self, tenant_id: str = TENANT, **patch: Any) -> int:
        """Store a policy change as PolicyAdmin does (a new revision, its rollout pending)."""
        tenant = self.store.get(tenant_id)
        assert tenant is not None
        document = tenant.policies.model_dump(mode="json")
        for section, values in patch.items():
            document[section] = {**document[section], **values}
        new = parse_security_policies(document)
        changes = field_changes(tenant.policies.model_dump(mode="json"), new.model_dump(mode="json"))
        assert rolled_out(changes)
        revision = tenant.policy_revision + 1
        self.revisions.commit(
            tenant_id,
            new.model_dump_json(),
            tenant.policy_revision,
            "acme/sec",
            changes,
            rollout_state(RolloutStatus.PENDING, revision),
        )
        return revision

    def replicas(self, tenant_id: str = TENANT, purpose: str = "data") -> dict[str, str]:
        """KeyState of each replica of a tenant key, by region."""
        meta = self.kms().describe_key(KeyId=self.settings.tenant_key_alias(tenant_id, purpose))[
            "KeyMetadata"
        ]
        out = {}
        for replica in meta["MultiRegionConfiguration"]["ReplicaKeys"]:
            region = replica["Region"]
            out[region] = self.kms(region).describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["KeyState"]
        return out

    def rotations(self) -> list[tuple[str, int]]:
        return [
            (kw["KeyId"], kw["RotationPeriodInDays"])
            for _r, name, kw in self.calls
            if name == "enable_key_rotation"
        ]

    def retention(self, tenant_id: str = TENANT) -> dict[str, Any]:
        s3 = boto3.client("s3", region_name=HOME)
        config = s3.get_object_lock_configuration(Bucket=self.settings.audit_bucket(tenant_id))
        retention = config["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
        return {"Mode": retention.get("Mode"), "Days": retention.get("Days")}  # (moto adds Years: 0)

    def rollout_of(self, tenant_id: str = TENANT) -> dict[str, Any]:
        tenant = self.store.get(tenant_id)
        assert tenant is not None
        assert tenant.rollout is not None
        return tenant.rollout

    def mutations(self) -> list[str]:
        """The KMS calls that changed something (not DescribeKey)."""
        return [name for _r, name, _kw in self.calls if name != "describe_key"]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mocked_aws(monkeypatch):
        settings = local_settings()
        ddb = boto3.client("dynamodb", region_name=HOME)
        create_table(ddb, settings.tenants_table, "tenant_id")
        ddb.create_table(
            TableName=settings.policy_history_table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "tenant_id", "AttributeType": "S"},
                {"AttributeName": "revision", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "tenant_id", "KeyType": "HASH"},
                {"AttributeName": "revision", "KeyType": "RANGE"},
            ],
        )
        store = TenantStore(ddb, settings.tenants_table)
        found = World(
            settings, store, PolicyRevisions(ddb, settings.tenants_table, settings.policy_history_table)
        )
        kms_in = lambda region: RecordingKms(boto3.client("kms", region_name=region), found)  # noqa: E731
        found.rollout = PolicyRollout(
            settings,
            store,
            found.revisions,
            found.alerts,  # type: ignore[arg-type]
            keys=TenantKeys(settings, kms_in(HOME), kms_in),  # type: ignore[arg-type]
            retention=TenantBuckets(settings, FailingS3(boto3.client("s3", region_name=HOME), found)),  # type: ignore[arg-type]
            stepfunctions=None,
            state_machine_arn="",
        )
        yield found


def test_the_rotation_period_changes_on_every_tenant_key(world: World) -> None:
    world.onboard()
    revision = world.change(data_protection={"key_rotation_days": 365})
    result = world.rollout.apply(TENANT, revision)
    assert result["status"] == "applied"
    keys = {
        world.kms().describe_key(KeyId=world.settings.tenant_key_alias(TENANT, p))["KeyMetadata"]["KeyId"]
        for p in KEY_PURPOSES
    }
    assert sorted(world.rotations()) == sorted((k, 365) for k in keys)
    assert world.rollout_of() == {
        "status": "applied",
        "revision": revision,
        "detail": "key rotation every 365 days; replicas: us-west-2; audit retention 2555 days",
    }
    assert world.alerts.sent == []


def test_replicas_follow_data_locality_out_and_back(world: World) -> None:
    world.onboard(data_locality=["us-east-1", "us-west-2"])
    assert world.replicas() == {"us-west-2": "Enabled"}
    # widened: a replica of every key in the new region
    wide = world.change(data_protection={"data_locality": ["us-east-1", "us-west-2", "eu-west-1"]})
    world.rollout.apply(TENANT, wide)
    for purpose in KEY_PURPOSES:
        assert world.replicas(purpose=purpose) == {"us-west-2": "Enabled", "eu-west-1": "Enabled"}
    # narrowed: the dropped region's replicas are scheduled for deletion
    narrow = world.change(data_protection={"data_locality": ["us-east-1", "eu-west-1"]})
    result = world.rollout.apply(TENANT, narrow)
    assert result["changes"]["data key"] == {"dropped": ["us-west-2"]}
    for purpose in KEY_PURPOSES:
        assert world.replicas(purpose=purpose) == {"us-west-2": "PendingDeletion", "eu-west-1": "Enabled"}
    # back again before KMS deleted them: restored (not replicated anew, which KMS refuses)
    world.calls.clear()
    back = world.change(data_protection={"data_locality": ["us-east-1", "us-west-2", "eu-west-1"]})
    result = world.rollout.apply(TENANT, back)
    assert result["changes"]["secrets key"] == {"restored": ["us-west-2"]}
    for purpose in KEY_PURPOSES:
        assert world.replicas(purpose=purpose) == {"us-west-2": "Enabled", "eu-west-1": "Enabled"}
    assert "replicate_key" not in world.mutations()
    assert [r for r, name, _ in world.calls if name in ("cancel_key_deletion", "enable_key")] == [
        "us-west-2"
    ] * 6
    # cross_region_encryption off: every replica goes
    off = world.change(data_protection={"cross_region_encryption": False})
    world.rollout.apply(TENANT, off)
    assert world.replicas() == {"us-west-2": "PendingDeletion", "eu-west-1": "PendingDeletion"}
    assert world.rollout_of()["status"] == "applied"


def test_the_audit_buckets_default_retention_follows_retention_days(world: World) -> None:
    world.onboard()
    assert world.retention() == {"Mode": "COMPLIANCE", "Days": 2555}
    # a trail with records already (S3 changes the default of a locked bucket that holds objects)
    s3, bucket = boto3.client("s3", region_name=HOME), world.settings.audit_bucket(TENANT)
    s3.delete_bucket_policy(Bucket=bucket)  # (its TLS-only statement: moto here sees no TLS)
    s3.put_object(Bucket=bucket, Key="records/1.json", Body=b"{}")
    revision = world.change(audit_logging={"retention_days": 3650})
    world.rollout.apply(TENANT, revision)
    assert world.retention() == {"Mode": "COMPLIANCE", "Days": 3650}


def test_applying_again_changes_nothing(world: World) -> None:
    world.onboard()
    revision = world.change(data_protection={"data_locality": ["us-east-1", "us-west-2", "eu-west-1"]})
    first = world.rollout.apply(TENANT, revision)
    assert first["changes"]
    world.calls.clear()
    again = world.rollout.apply(TENANT, revision)
    assert again["status"] == "applied"
    assert again["changes"] == {}
    # only the rotation period is set again (to the same value): no replica added, dropped or restored
    assert set(world.mutations()) == {"enable_key_rotation"}
    assert world.replicas() == {"us-west-2": "Enabled", "eu-west-1": "Enabled"}


def test_two_revisions_applied_out_of_order_leave_the_latest(world: World) -> None:
    world.onboard()
    older = world.change(data_protection={"key_rotation_days": 180})
    newer = world.change(data_protection={"key_rotation_days": 365, "data_locality": ["us-east-1"]})
    assert world.rollout.apply(TENANT, newer)["status"] == "applied"
    late = world.rollout.apply(TENANT, older)
    assert late["status"] == "superseded"  # converged to the newest policy, records nothing
    assert {days for _k, days in world.rotations()} == {365}
    assert world.replicas() == {"us-west-2": "PendingDeletion"}
    assert world.rollout_of()["revision"] == newer
    assert world.rollout_of()["status"] == "applied"


def test_a_change_stored_during_an_apply_is_converged_to_before_it_ends(world: World) -> None:
    world.onboard()
    older = world.change(data_protection={"key_rotation_days": 180})
    newer: list[int] = []
    # the newer revision lands while the older one's apply is at work (and its own apply ran first)
    world.before["enable_key_rotation"] = lambda: newer.append(
        world.change(data_protection={"key_rotation_days": 400})
    )
    late = world.rollout.apply(TENANT, older)
    assert late["status"] == "superseded"
    assert world.rotations()[-3:] == [(k, 400) for k, _ in world.rotations()[-3:]]
    assert world.rollout.apply(TENANT, newer[0])["status"] == "applied"


@pytest.mark.parametrize(
    ("method", "where"),
    [
        ("enable_key_rotation", "data key: EnableKeyRotation"),
        ("replicate_key", "data key: ReplicateKey"),
        ("schedule_key_deletion", "data key: ScheduleKeyDeletion"),
        ("cancel_key_deletion", "data key: CancelKeyDeletion"),
        ("enable_key", "data key: EnableKey"),
        ("describe_key", "data key: DescribeKey"),
        ("put_object_lock_configuration", "audit bucket: PutObjectLockConfiguration"),
    ],
)
def test_an_aws_refusal_at_each_step_is_a_failed_rollout_and_an_alert(
    world: World, method: str, where: str
) -> None:
    world.onboard()
    if method in ("cancel_key_deletion", "enable_key"):  # a region that comes back
        world.rollout.apply(TENANT, world.change(data_protection={"data_locality": ["us-east-1"]}))
        revision = world.change(data_protection={"data_locality": ["us-east-1", "us-west-2"]})
    elif method == "schedule_key_deletion":
        revision = world.change(data_protection={"data_locality": ["us-east-1"]})
    elif method == "replicate_key":
        revision = world.change(data_protection={"data_locality": ["us-east-1", "us-west-2", "eu-west-1"]})
    else:
        revision = world.change(
            data_protection={"key_rotation_days": 200}, audit_logging={"retention_days": 99}
        )
    world.failing[method] = "AccessDeniedException"
    with pytest.raises(RolloutFailed):
        world.rollout.apply(TENANT, revision)
    rollout = world.rollout_of()
    assert rollout["status"] == "failed"
    assert rollout["revision"] == revision
    assert rollout["detail"] == f"{where} answered AccessDeniedException"
    assert "arn:" not in rollout["detail"]  # the AWS message never reaches the tenant
    assert world.alerts.sent == [
        (TENANT, AlertKind.POLICY_ROLLOUT_FAILED, {"revision": revision, "reason": rollout["detail"]})
    ]
    # fixed: the same revision's rollout (the workflow again) converges and records applied
    world.failing.clear()
    assert world.rollout.apply(TENANT, revision)["status"] == "applied"


def test_a_transient_error_is_left_to_the_workflows_retries_then_recorded(world: World) -> None:
    world.onboard()
    revision = world.change(data_protection={"key_rotation_days": 200})
    world.failing["enable_key_rotation"] = "ThrottlingException"
    with pytest.raises(ClientError):
        world.rollout.apply(TENANT, revision)
    assert world.rollout_of()["status"] == "pending"  # not failed yet: the state machine retries
    assert world.alerts.sent == []
    # the retries ran out: the workflow's fail step
    world.rollout.fail(
        TENANT, revision, {"Error": "TransientError", "Cause": "enable_key_rotation: arn:aws:kms:..."}
    )
    assert world.rollout_of() == {
        "status": "failed",
        "revision": revision,
        "detail": "the rollout failed after retries: TransientError",
    }
    assert [a[1] for a in world.alerts.sent] == [AlertKind.POLICY_ROLLOUT_FAILED]


def test_a_replica_kms_is_still_creating_is_waited_for(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.onboard()
    revision = world.change(data_protection={"data_locality": ["us-east-1"]})
    keys = world.rollout.keys
    assert isinstance(keys, TenantKeys)
    monkeypatch.setattr(keys, "replica_states", lambda meta: {"us-west-2": "Creating"})
    with pytest.raises(TransientError):
        world.rollout.apply(TENANT, revision)
    assert world.rollout_of()["status"] == "pending"


def test_a_single_region_tenant_turning_cross_region_encryption_on_is_refused(world: World) -> None:
    world.onboard(cross_region_encryption=False, data_locality=["us-east-1", "us-west-2"])
    tenant = world.store.get(TENANT)
    assert tenant is not None
    wanted: SecurityPolicies = parse_security_policies(
        {"data_protection": {"cross_region_encryption": True, "data_locality": ["us-east-1", "us-west-2"]}}
    )
    problems = world.rollout.refusals(tenant, wanted)
    assert [p["field"] for p in problems] == ["data_protection.cross_region_encryption"]
    assert "single-Region" in problems[0]["message"]
    # a multi-Region tenant may widen
    world.onboard("multi")
    multi = world.store.get("multi")
    assert multi is not None
    wider = parse_security_policies(
        {"data_protection": {"data_locality": ["us-east-1", "us-west-2", "eu-west-1"]}}
    )
    assert world.rollout.refusals(multi, wider) == []
    # and an apply that meets single-Region keys anyway fails, alerted, touching nothing
    world.revisions.commit(
        TENANT, wanted.model_dump_json(), 0, "acme/sec", [], rollout_state(RolloutStatus.PENDING, 1)
    )
    with pytest.raises(RolloutFailed):
        world.rollout.apply(TENANT, 1)
    assert "single-Region" in world.rollout_of()["detail"]
    assert "replicate_key" not in world.mutations()


def test_an_offboarding_tenants_keys_are_left_alone(world: World) -> None:
    world.onboard()
    revision = world.change(data_protection={"key_rotation_days": 200})
    world.store.client.update_item(
        TableName=world.settings.tenants_table,
        Key={"tenant_id": {"S": TENANT}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "OFFBOARDING"}},
    )
    result = world.rollout.apply(TENANT, revision)
    assert result["status"] == "failed"
    assert world.rollout_of()["detail"] == "not rolled out: the tenant is OFFBOARDING"
    assert world.mutations() == []
    assert world.alerts.sent == []
