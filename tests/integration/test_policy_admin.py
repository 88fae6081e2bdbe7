"""Changing a tenant's security policy (moto): revisions under If-Match, field-level history,
the lock-out guard, concurrent changes, and a rollout that cannot start."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tenant_security.activity import EventPublisher
from tenant_security.actors import Actor
from tenant_security.administration.policies import PolicyAdmin, PolicyChange, caller_session
from tenant_security.errors import Conflict, DomainError, NotFound, ValidationFailed
from tenant_security.models.policies import SecurityPolicies
from tenant_security.policy.lockout import WouldLockOut
from tenant_security.policy.revisions import PolicyRevisions, StaleRevision
from tenant_security.tenants import TenantProfile, TenantStatus, TenantStore
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration

ADMIN = Actor(tenant_id="acme", user="sec", platform_admin=False)


class Bus:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        with self.lock:
            self.entries.extend(Entries)
        return {"FailedEntryCount": 0}

    def alerts(self) -> list[str]:
        import json

        return [json.loads(e["Detail"])["alert"] for e in self.entries if e["DetailType"] == "Security Alert"]


class Rollouts:
    """The rollout workflow's door as PolicyAdmin sees it (the workflow itself: test_policy_rollout)."""

    def __init__(self, fail: bool = False) -> None:
        self.started: list[tuple[str, int]] = []
        self.fail = fail

    def refusals(self, tenant: TenantProfile, new: SecurityPolicies) -> list[dict[str, str]]:
        return []

    def start(self, tenant_id: str, revision: int) -> None:
        if self.fail:
            raise ConnectionError("Step Functions is unreachable")
        self.started.append((tenant_id, revision))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(ddb, "tenants", "tenant_id")
        ddb.create_table(
            TableName="policy-history",
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
        store = TenantStore(ddb, "tenants")
        store.create(TenantProfile(tenant_id="acme", name="Acme", status=TenantStatus.ACTIVE))
        bus, rollouts, spend = Bus(), Rollouts(), {"usd": 0.0}
        admin = PolicyAdmin(
            store,
            PolicyRevisions(ddb, "tenants", "policy-history"),
            rollouts,
            EventPublisher(bus, "bus", "dcisionai.tenant-security"),  # type: ignore[arg-type]
            month_spend=lambda _tenant: spend["usd"],
        )
        yield {"ddb": ddb, "store": store, "admin": admin, "bus": bus, "rollouts": rollouts, "spend": spend}


def change(
    body: Any,
    merge: bool = True,
    if_match: str | None = None,
    force: bool = False,
    ip: str = "203.0.113.9",
    amr: tuple[str, ...] = ("pwd", "otp"),
    started_at: float | None = None,
    tenant: str = "acme",
) -> PolicyChange:
    import time

    return PolicyChange(
        tenant_id=tenant,
        body=body,
        merge=merge,
        if_match=if_match,
        force=force,
        actor=ADMIN,
        caller=caller_session(ip, amr, started_at if started_at is not None else time.time() - 60),
    )


def test_a_patch_makes_a_revision_with_its_history_and_etag(world: dict[str, Any]) -> None:
    admin = world["admin"]
    assert admin.show("acme").etag == '"0"'
    reply = admin.change(change({"access_control": {"ip_whitelist": ["203.0.113.0/24"]}}, if_match='"0"'))
    assert reply.etag == '"1"'
    assert reply.document["revision"] == 1
    assert reply.document["access_control"]["ip_whitelist"] == ["203.0.113.0/24"]
    assert reply.audit_changes() == [
        {"field": "access_control.ip_whitelist", "old": [], "new": ["203.0.113.0/24"]}
    ]
    assert world["store"].get("acme").policies.access_control.ip_whitelist == ["203.0.113.0/24"]
    assert admin.show("acme").etag == '"1"'
    page = admin.history("acme", None, None)
    assert [(i["revision"], i["changed_by"]) for i in page["items"]] == [(1, "acme/sec")]
    assert page["items"][0]["changes"] == reply.audit_changes()
    assert page["next"] is None
    assert world["rollouts"].started == []  # nothing of it lives in AWS


def test_a_stale_if_match_is_412_and_changes_nothing(world: dict[str, Any]) -> None:
    admin = world["admin"]
    admin.change(change({"access_control": {"session_timeout_minutes": 60}}))
    with pytest.raises(StaleRevision) as stale:
        admin.change(change({"access_control": {"session_timeout_minutes": 30}}, if_match='"0"'))
    assert stale.value.status == 412
    assert world["store"].get("acme").policies.access_control.session_timeout_minutes == 60
    assert [i["revision"] for i in admin.history("acme", None, None)["items"]] == [1]


def test_two_changes_from_one_etag_exactly_one_wins(world: dict[str, Any]) -> None:
    admin = world["admin"]
    outcomes: list[Any] = []
    barrier = threading.Barrier(8)

    def attempt(minutes: int) -> None:
        barrier.wait()
        try:
            outcomes.append(
                admin.change(change({"access_control": {"session_timeout_minutes": minutes}}, if_match='"0"'))
            )
        except DomainError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(30 + i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(won) == 1
    assert all(isinstance(o, StaleRevision) for o in outcomes if isinstance(o, Exception))
    stored = world["store"].get("acme")
    assert stored.policy_revision == 1
    assert (
        stored.policies.access_control.session_timeout_minutes
        == won[0].document["access_control"]["session_timeout_minutes"]
    )
    assert len(admin.history("acme", None, None)["items"]) == 1


def test_changes_without_if_match_all_land_one_revision_each(world: dict[str, Any]) -> None:
    admin = world["admin"]
    patches = [
        {"access_control": {"session_timeout_minutes": 60}},
        {"access_control": {"max_sessions_per_user": 3}},
        {"rate_limiting": {"burst_size": 50}},
    ]
    barrier = threading.Barrier(len(patches))
    errors: list[Exception] = []

    def attempt(patch: dict[str, Any]) -> None:
        barrier.wait()
        try:
            admin.change(change(patch))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in patches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = world["store"].get("acme")
    assert stored.policy_revision == 3
    assert (
        stored.policies.access_control.session_timeout_minutes,
        stored.policies.access_control.max_sessions_per_user,
    ) == (60, 3)
    assert stored.policies.rate_limiting.burst_size == 50
    assert sorted(i["revision"] for i in admin.history("acme", None, None)["items"]) == [1, 2, 3]


def test_the_same_document_again_makes_no_revision(world: dict[str, Any]) -> None:
    admin = world["admin"]
    first = admin.change(change({"compliance": {"data_classification": "restricted"}}))
    again = admin.change(change({"compliance": {"data_classification": "restricted"}}))
    assert (first.etag, again.etag) == ('"1"', '"1"')
    assert again.audit_changes() == []
    whole = admin.show("acme").document
    assert admin.change(change(whole, merge=False)).etag == '"1"'  # GET's reply PUT back: the same


def test_put_replaces_the_whole_document_and_omitted_fields_take_defaults(world: dict[str, Any]) -> None:
    admin = world["admin"]
    admin.change(change({"access_control": {"session_timeout_minutes": 60, "max_sessions_per_user": 3}}))
    reply = admin.change(change({"access_control": {"session_timeout_minutes": 90}}, merge=False))
    access = reply.document["access_control"]
    assert (access["session_timeout_minutes"], access["max_sessions_per_user"]) == (90, 10)


def test_null_in_a_patch_restores_the_default(world: dict[str, Any]) -> None:
    admin = world["admin"]
    admin.change(change({"access_control": {"session_timeout_minutes": 60}}))
    reply = admin.change(change({"access_control": {"session_timeout_minutes": None}}))
    assert reply.document["access_control"]["session_timeout_minutes"] == 480


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"access_control": {"ip_whitelist": ["not-an-address"]}}, "access_control.ip_whitelist.0"),
        ({"access_control": {"session_timeout_minutes": 2}}, "access_control.session_timeout_minutes"),
        ({"access_control": {"unknown": 1}}, "access_control.unknown"),
        ({"data_protection": {"key_rotation_days": 30}}, "data_protection.key_rotation_days"),
        ({"tenant_id": "globex"}, "tenant_id"),
        (
            {"compliance": {"segregation_of_duties": [["auditor", "ghost-role"]]}},
            "compliance.segregation_of_duties.0.1",
        ),
        ([1, 2], "body"),
    ],
)
def test_an_invalid_document_is_400_naming_the_field_and_changes_nothing(
    world: dict[str, Any], body: Any, field: str
) -> None:
    with pytest.raises(ValidationFailed) as invalid:
        world["admin"].change(change(body))
    assert field in [f["field"] for f in invalid.value.body()["fields"]]
    assert world["store"].get("acme").policy_revision == 0


def test_segregation_of_duties_may_name_the_tenants_custom_roles(world: dict[str, Any]) -> None:
    from dataclasses import replace

    store = world["store"]
    profile = store.get("acme")
    world["ddb"].put_item(
        TableName="tenants",
        Item=replace(profile, custom_roles={"payments-approver": ["records:Write"]}).to_item(),
    )
    reply = world["admin"].change(
        change({"compliance": {"segregation_of_duties": [["payments-approver", "auditor"]]}})
    )
    assert reply.document["compliance"]["segregation_of_duties"] == [["payments-approver", "auditor"]]


@pytest.mark.parametrize(
    ("patch", "caller", "field"),
    [
        ({"access_control": {"ip_whitelist": ["10.0.0.0/8"]}}, {}, "access_control.ip_whitelist"),
        ({"access_control": {"mfa_required": True}}, {"amr": ("pwd",)}, "access_control.mfa_required"),
        (
            {"access_control": {"session_timeout_minutes": 5}},
            {"age": 600},
            "access_control.session_timeout_minutes",
        ),
    ],
)
def test_a_change_that_locks_the_caller_out_is_409_unless_forced(
    world: dict[str, Any], patch: dict[str, Any], caller: dict[str, Any], field: str
) -> None:
    import time

    admin = world["admin"]
    if "amr" in caller:  # a caller signed in while MFA was not required
        admin.change(change({"access_control": {"mfa_required": False}}))
    before = world["store"].get("acme").policy_revision
    kwargs: dict[str, Any] = {"amr": caller.get("amr", ("pwd", "otp"))}
    if "age" in caller:
        kwargs["started_at"] = time.time() - caller["age"]
    with pytest.raises(WouldLockOut) as refused:
        admin.change(change(patch, **kwargs))
    assert refused.value.status == 409
    assert refused.value.code == "would_lock_out"
    assert [f["field"] for f in refused.value.body()["fields"]] == [field]
    assert world["store"].get("acme").policy_revision == before
    forced = admin.change(change(patch, force=True, **kwargs))
    assert forced.etag == f'"{before + 1}"'
    assert "policy_lockout_forced" in world["bus"].alerts()


def test_a_platform_admin_changing_a_tenant_is_not_guarded_by_that_tenants_rules(
    world: dict[str, Any],
) -> None:
    request = change({"access_control": {"ip_whitelist": ["10.0.0.0/8"]}})
    from dataclasses import replace

    platform = replace(request, actor=Actor("platform", "root", True), caller=None)
    assert world["admin"].change(platform).etag == '"1"'


def test_a_field_that_lives_in_aws_starts_its_rollout(world: dict[str, Any]) -> None:
    reply = world["admin"].change(change({"data_protection": {"key_rotation_days": 180}}))
    assert world["rollouts"].started == [("acme", 1)]
    assert reply.document["rollout"] == {"status": "pending", "revision": 1, "detail": ""}
    assert world["store"].get("acme").rollout == {"status": "pending", "revision": 1, "detail": ""}
    later = world["admin"].change(change({"access_control": {"max_sessions_per_user": 3}}))
    assert later.document["rollout"]["revision"] == 1  # a change without AWS fields keeps the rollout
    assert world["rollouts"].started == [("acme", 1)]


def test_a_rollout_that_cannot_start_is_failed_and_alerted_while_the_document_stands(
    world: dict[str, Any],
) -> None:
    world["rollouts"].fail = True
    reply = world["admin"].change(change({"audit_logging": {"retention_days": 3650}}))
    assert reply.document["rollout"]["status"] == "failed"
    assert "could not start" in reply.document["rollout"]["detail"]
    stored = world["store"].get("acme")
    assert stored.policies.audit_logging.retention_days == 3650
    assert stored.rollout["status"] == "failed"
    assert "policy_rollout_failed" in world["bus"].alerts()


@pytest.mark.parametrize(
    "status",
    [TenantStatus.OFFBOARDING, TenantStatus.OFFBOARDED, TenantStatus.FAILED, TenantStatus.PROVISIONING],
)
def test_a_tenant_that_is_going_or_gone_keeps_its_policy(world: dict[str, Any], status: TenantStatus) -> None:
    world["store"].set_status("acme", status)
    with pytest.raises(Conflict):
        world["admin"].change(change({"access_control": {"max_sessions_per_user": 3}}))


def test_a_suspended_tenants_policy_may_be_tightened(world: dict[str, Any]) -> None:
    world["store"].set_status("acme", TenantStatus.SUSPENDED)
    assert world["admin"].change(change({"access_control": {"max_sessions_per_user": 3}})).etag == '"1"'


def test_an_unknown_tenant_is_404(world: dict[str, Any]) -> None:
    with pytest.raises(NotFound):
        world["admin"].change(change({}, tenant="ghost"))
    with pytest.raises(NotFound):
        world["admin"].show("ghost")


def test_history_pages_newest_first(world: dict[str, Any]) -> None:
    admin = world["admin"]
    for minutes in range(30, 55):
        admin.change(change({"access_control": {"session_timeout_minutes": minutes}}))
    first = admin.history("acme", "10", None)
    assert [i["revision"] for i in first["items"]] == list(range(25, 15, -1))
    second = admin.history("acme", "10", first["next"])
    assert [i["revision"] for i in second["items"]] == list(range(15, 5, -1))
    with pytest.raises(ValidationFailed):
        admin.history("acme", "0", None)
    with pytest.raises(ValidationFailed):
        admin.history("acme", None, "not-a-token")


def test_a_commit_whose_reply_was_lost_is_not_a_conflict_on_retry(world: dict[str, Any]) -> None:
    """botocore resends a transaction whose reply it lost, token and all: that is a success."""
    from tenant_security.policy.changes import FieldChange

    sent: list[dict[str, Any]] = []
    ddb = world["ddb"]

    class Recording:
        def transact_write_items(self, **kwargs: Any) -> Any:
            sent.append(kwargs)
            return ddb.transact_write_items(**kwargs)

    revisions = PolicyRevisions(Recording(), "tenants", "policy-history")  # type: ignore[arg-type]
    document = SecurityPolicies(version="2.0.0").model_dump_json()
    revisions.commit("acme", document, 0, "acme/sec", [FieldChange("version", "1.0.0", "2.0.0")], None)
    ddb.transact_write_items(**sent[0])  # the retry after a lost reply
    assert world["store"].get("acme").policy_revision == 1
    # the same change made again by someone else from the same revision is stale, not a mismatch
    with pytest.raises(StaleRevision):
        revisions.commit("acme", document, 0, "acme/other", [FieldChange("version", "1.0.0", "2.0.0")], None)


def test_a_pair_never_names_a_custom_role_deleted_while_the_change_was_checked(world: dict[str, Any]) -> None:
    """Forced interleaving: the change reads the roles (the role is there), the role is deleted,
    then the change commits -- it finds the roles changed, judges again and refuses the pair."""
    from tenant_security.administration.roles import RoleAdmin
    from tenant_security.authz.role_store import RoleStore
    from tenant_security.callers import TenantContext

    ddb = world["ddb"]
    create_table(ddb, "users", "tenant_id", "username")
    roles = RoleAdmin(RoleStore(ddb, "tenants", "users"), "platform", lambda _t: None)
    boss = TenantContext("acme", "boss", ("tenant-admin",), "sid", "req", "10.0.0.1", False)
    roles.put(boss, "acme", "payments-approver", ["records:Write"])
    store, admin = world["store"], world["admin"]
    reads = {"n": 0}
    real_get = store.get

    def get_then_delete(tenant_id: str) -> Any:
        profile = real_get(tenant_id)
        reads["n"] += 1
        if reads["n"] == 1:
            roles.delete(boss, "acme", "payments-approver")  # lands between the check and the commit
        return profile

    store.get = get_then_delete
    pair = {"compliance": {"segregation_of_duties": [["payments-approver", "auditor"]]}}
    with pytest.raises(ValidationFailed) as refused:
        admin.change(change(pair, if_match='"0"'))
    assert refused.value.body()["fields"][0]["field"] == "compliance.segregation_of_duties.0.0"
    store.get = real_get
    assert store.get("acme").policy_revision == 0
    # a grant (roles_revision moves, the policy does not) is no reason to refuse an If-Match change
    roles.put(boss, "acme", "payments-approver", ["records:Write"])
    assert admin.change(change(pair, if_match='"0"')).etag == '"1"'


def test_a_budget_below_the_months_spend_is_a_lock_out(world: dict[str, Any]) -> None:
    world["spend"]["usd"] = 12.5
    with pytest.raises(WouldLockOut) as refused:
        world["admin"].change(change({"rate_limiting": {"cost_threshold": 12.5}}))
    assert [f["field"] for f in refused.value.body()["fields"]] == ["rate_limiting.cost_threshold"]
    assert world["admin"].change(change({"rate_limiting": {"cost_threshold": 13}})).etag == '"1"'
