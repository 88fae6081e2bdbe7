"""Custom roles on moto: definitions under a revision (two at once lose neither), a role in use is
not deleted, a grant racing a deletion never leaves a user holding a deleted role (forced
interleavings both ways, and N parallel requests), repetition, forgery and AWS failing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenant_security.administration.roles import RoleAdmin, RoleInUse
from tenant_security.administration.users import UserAdmin
from tenant_security.authz.custom_roles import tenant_actions_of
from tenant_security.authz.rbac import TENANT_ACTIONS
from tenant_security.authz.role_store import RoleStore
from tenant_security.callers import TenantContext
from tenant_security.context import TenantNotActive
from tenant_security.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.users import User, UserStore
from tenant_security.models import parse_security_policies
from tenant_security.tenants import TenantProfile, TenantStatus, TenantStore
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
TENANT = "acme"


def caller(
    roles: tuple[str, ...] = ("tenant-admin",), tenant: str = TENANT, platform: bool = False
) -> TenantContext:
    return TenantContext(tenant, "boss", roles, "sid", "req", "10.0.0.1", platform)


class Cloud:
    """moto's tables and the services over them."""

    def __init__(self, ddb: Any) -> None:
        self.ddb = ddb
        self.forgotten: list[str] = []
        self.tenants = TenantStore(ddb, "tenants")
        self.users = UserStore(ddb, "users")
        self.store = RoleStore(ddb, "tenants", "users")
        self.roles = RoleAdmin(self.store, "platform", self.forgotten.append)
        self.user_admin = UserAdmin(
            self.users, SessionStore(ddb, "sessions", "counters"), "platform", self.store
        )

    def with_client(self, client: Any) -> tuple[RoleAdmin, UserAdmin]:
        """The services over another client (a wrapper that injects a race or a failure)."""
        store = RoleStore(client, "tenants", "users")
        users = UserAdmin(
            UserStore(client, "users"), SessionStore(client, "sessions", "counters"), "platform", store
        )
        return RoleAdmin(store, "platform", self.forgotten.append), users

    def profile(self) -> TenantProfile:
        profile = self.tenants.get(TENANT)
        assert profile is not None
        return profile

    def user(self, name: str, roles: list[str]) -> None:
        self.users.create(User(TENANT, name, f"{name}@x.io", roles, "h"))

    def holders_of_missing_roles(self) -> list[tuple[str, str]]:
        """(user, role) for every custom role a user holds that the tenant does not define."""
        defined = set(self.profile().custom_roles)
        return [
            (u.username, r)
            for u in self.users.list_users(TENANT)
            for r in u.roles
            if r not in defined
            and r not in ("tenant-admin", "viewer", "developer", "auditor", "security-admin")
        ]


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb")
        create_table(ddb, "tenants", "tenant_id")
        create_table(ddb, "users", "tenant_id", "username")
        create_table(ddb, "sessions", "tenant_id", "session_id")
        create_table(ddb, "counters", "pk", "sk")
        made = Cloud(ddb)
        made.tenants.create(TenantProfile(TENANT, "Acme", TenantStatus.ACTIVE))
        made.tenants.create(TenantProfile("rival", "Rival", TenantStatus.ACTIVE))
        made.user("owner", ["tenant-admin"])
        yield made


def test_define_list_redefine_and_delete(cloud: Cloud) -> None:
    made = cloud.roles.put(caller(), TENANT, "reader", ["files:Read", "records:*"])
    assert made.view is not None
    assert made.view["permissions"] == ["files:Read", "records:Read", "records:Write"]
    assert made.audit_changes() == [{"field": "roles.reader", "old": None, "new": made.view["permissions"]}]
    assert cloud.profile().custom_roles == {"reader": ["files:Read", "records:Read", "records:Write"]}
    assert cloud.forgotten == [TENANT]  # this worker's cache forgets the tenant
    listed = {r["name"]: r for r in cloud.roles.list_roles(TENANT)["items"]}
    assert "platform-admin" not in listed  # outside the platform tenant
    assert listed["reader"]["builtin"] is False
    assert "auth:Logout" in listed["reader"]["actions"]
    assert set(listed["tenant-admin"]["actions"]) >= set(TENANT_ACTIONS)
    changed = cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
    assert changed.audit_changes()[0]["old"] == ["files:Read", "records:Read", "records:Write"]
    assert cloud.roles.delete(caller(), TENANT, "reader").new is None
    assert cloud.profile().custom_roles == {}


def test_repetition_changes_nothing_the_second_time(cloud: Cloud) -> None:
    cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
    revision = cloud.store.read(TENANT).revision
    again = cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
    assert again.audit_changes() == []
    assert cloud.store.read(TENANT).revision == revision  # no new revision
    cloud.roles.delete(caller(), TENANT, "reader")
    with pytest.raises(NotFound):
        cloud.roles.delete(caller(), TENANT, "reader")


def test_a_built_in_name_a_typo_and_too_much_are_refused(cloud: Cloud) -> None:
    with pytest.raises(Conflict) as builtin:
        cloud.roles.put(caller(), TENANT, "viewer", ["files:Read"])
    assert builtin.value.code == "builtin_role"
    with pytest.raises(ValidationFailed):
        cloud.roles.put(caller(), TENANT, "reader", ["files:Raed"])
    cloud.roles.put(caller(), TENANT, "role-admin", ["roles:*", "secrets:Write"])
    with pytest.raises(Forbidden):  # a custom-role admin cannot grant what it lacks
        cloud.roles.put(caller(("role-admin",)), TENANT, "peeker", ["secrets:Read"])
    cloud.roles.put(caller(("role-admin",)), TENANT, "writer", ["secrets:Write"])
    cloud.roles.put(caller(), TENANT, "big", ["secrets:*"])
    with pytest.raises(Forbidden):  # nor change a role that grants more than it holds...
        cloud.roles.put(caller(("role-admin",)), TENANT, "big", ["secrets:Write"])
    with pytest.raises(Forbidden):  # ...or delete it
        cloud.roles.delete(caller(("role-admin",)), TENANT, "big")
    assert set(cloud.profile().custom_roles) == {"role-admin", "writer", "big"}
    assert not cloud.holders_of_missing_roles()


def test_forgery_another_tenants_admin_and_a_suspended_tenant(cloud: Cloud) -> None:
    with pytest.raises(Forbidden):
        cloud.roles.put(caller(tenant="rival"), TENANT, "reader", ["files:Read"])
    cloud.roles.put(caller(("platform-admin",), tenant="platform", platform=True), TENANT, "reader", ["*"])
    assert set(cloud.profile().custom_roles["reader"]) == TENANT_ACTIONS
    cloud.tenants.set_status(TENANT, TenantStatus.SUSPENDED)
    with pytest.raises(TenantNotActive):
        cloud.roles.put(caller(), TENANT, "other", ["files:Read"])
    with pytest.raises(TenantNotActive):
        cloud.roles.delete(caller(), TENANT, "reader")


def test_a_role_in_use_is_not_deleted_and_the_reply_names_its_holders(cloud: Cloud) -> None:
    cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
    for i in range(25):
        cloud.user(f"u{i:02d}", ["reader"])
    with pytest.raises(RoleInUse) as refused:
        cloud.roles.delete(caller(), TENANT, "reader")
    assert refused.value.status == 409
    assert "25 user(s)" in refused.value.message
    assert "u00" in refused.value.message
    assert "u24" not in refused.value.message  # at most NAMED_HOLDERS of them
    assert "reader" in cloud.profile().custom_roles


def test_a_role_named_by_a_segregation_of_duties_pair_is_not_deleted(cloud: Cloud) -> None:
    cloud.roles.put(caller(), TENANT, "maker", ["records:Write"])
    policies = parse_security_policies({"compliance": {"segregation_of_duties": [["maker", "auditor"]]}})
    cloud.ddb.update_item(
        TableName="tenants",
        Key={"tenant_id": {"S": TENANT}},
        UpdateExpression="SET security_policies = :p",
        ExpressionAttributeValues={":p": {"S": policies.model_dump_json()}},
    )
    with pytest.raises(RoleInUse):
        cloud.roles.delete(caller(), TENANT, "maker")


def test_a_grant_refuses_unknown_roles_read_now(cloud: Cloud) -> None:
    stale = cloud.profile()  # the profile the middleware read...
    cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])  # ...before the role existed
    cloud.user_admin.create(caller().actor, stale, "ann", "ann@x.io", ["reader"])
    fresh = cloud.profile()
    cloud.user_admin.set_roles(caller().actor, fresh, "ann", ["viewer"])
    cloud.roles.delete(caller(), TENANT, "reader")
    with pytest.raises(ValidationFailed):  # the profile still lists it; the store does not
        cloud.user_admin.set_roles(caller().actor, fresh, "ann", ["reader"])
    with pytest.raises(ValidationFailed):
        cloud.user_admin.create(caller().actor, fresh, "bob", "bob@x.io", ["reader"])
    assert not cloud.holders_of_missing_roles()


def test_a_grant_never_reaches_beyond_its_grantor(cloud: Cloud) -> None:
    """users:WriteRoles alone must not make tenant-admins (its holder among them): a role is
    granted only by someone who holds everything it grants, as a role is defined."""
    cloud.roles.put(caller(), TENANT, "user-manager", ["users:*"])
    cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
    cloud.user("ann", ["viewer"])
    manager = caller(roles=("user-manager",)).actor
    profile = cloud.profile()
    for roles in (["tenant-admin"], ["security-admin"], ["viewer"], ["reader"], ["user-manager", "reader"]):
        with pytest.raises(Forbidden):
            cloud.user_admin.set_roles(manager, profile, "ann", roles)
        with pytest.raises(Forbidden):
            cloud.user_admin.create(manager, profile, "mallory", "m@x.io", roles)
    assert cloud.users.get(TENANT, "ann").roles == ["viewer"]  # type: ignore[union-attr]
    assert cloud.users.get(TENANT, "mallory") is None
    # what the grantor holds, it may grant
    assert cloud.user_admin.set_roles(manager, profile, "ann", ["user-manager"])["roles"] == ["user-manager"]
    # a tenant-admin holds every tenant action: any tenant role; platform-admin only in the platform
    assert cloud.user_admin.set_roles(caller().actor, profile, "ann", ["security-admin", "reader"])[
        "roles"
    ] == [
        "reader",
        "security-admin",
    ]
    with pytest.raises(Forbidden):
        cloud.user_admin.set_roles(caller().actor, profile, "ann", ["platform-admin"])
    # another tenant's token, whatever its roles, holds nothing here
    rival = caller(roles=("tenant-admin",), tenant="rival").actor
    with pytest.raises(Forbidden):
        cloud.user_admin.set_roles(rival, profile, "ann", ["viewer"])


class Interleaved:
    """The DynamoDB client; ``between(name, kwargs)`` runs once, right before the first call of
    ``name`` that ``when`` picks -- another request landing at the worst moment."""

    def __init__(
        self, client: Any, name: str, when: Callable[[dict[str, Any]], bool], between: Callable[[], None]
    ):
        self.client, self.name, self.when, self.between = client, name, when, between
        self.fired = False

    def __getattr__(self, attr: str) -> Any:
        real = getattr(self.client, attr)
        if attr != self.name:
            return real

        def call(**kwargs: Any) -> Any:
            if not self.fired and self.when(kwargs):
                self.fired = True
                self.between()
            return real(**kwargs)

        return call


def test_a_grant_between_the_deletions_check_and_its_write_stops_the_deletion(cloud: Cloud) -> None:
    cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
    cloud.user("ann", ["viewer"])

    def grant() -> None:
        cloud.user_admin.set_roles(caller().actor, cloud.profile(), "ann", ["reader"])

    # the deletion read the roles and found no holder; the grant lands before its write
    racing = Interleaved(cloud.ddb, "update_item", lambda kw: kw.get("TableName") == "tenants", grant)
    roles, _ = cloud.with_client(racing)
    with pytest.raises(RoleInUse) as refused:
        roles.delete(caller(), TENANT, "reader")
    assert racing.fired
    assert "ann" in refused.value.message
    assert "reader" in cloud.profile().custom_roles
    assert not cloud.holders_of_missing_roles()


def test_a_deletion_between_the_grants_check_and_its_write_stops_the_grant(cloud: Cloud) -> None:
    cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
    cloud.user("ann", ["viewer"])

    def delete() -> None:
        cloud.roles.delete(caller(), TENANT, "reader")

    # the grant read the roles (the role is there); the deletion lands before its transaction
    racing = Interleaved(cloud.ddb, "transact_write_items", lambda kw: True, delete)
    _, users = cloud.with_client(racing)
    with pytest.raises(ValidationFailed):  # judged again on the roles as they are now
        users.set_roles(caller().actor, cloud.profile(), "ann", ["reader"])
    assert racing.fired
    assert "reader" not in cloud.profile().custom_roles
    assert cloud.users.get(TENANT, "ann").roles == ["viewer"]  # type: ignore[union-attr]


def test_parallel_grants_and_a_deletion_never_leave_a_deleted_role_held(cloud: Cloud) -> None:
    for i in range(8):
        cloud.user(f"u{i}", ["viewer"])
    outcomes: list[str] = []
    for round_ in range(4):
        cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
        for i in range(8):
            cloud.user_admin.set_roles(caller().actor, cloud.profile(), f"u{i}", ["viewer"])
        start = threading.Barrier(9)

        def grant(i: int, start: threading.Barrier = start) -> str:
            start.wait()
            try:
                cloud.user_admin.set_roles(caller().actor, cloud.profile(), f"u{i}", ["reader"])
            except ValidationFailed:
                return "grant refused"
            return "granted"

        def delete(start: threading.Barrier = start) -> str:
            start.wait()
            try:
                cloud.roles.delete(caller(), TENANT, "reader")
            except RoleInUse:
                return "delete refused"
            return "deleted"

        with ThreadPoolExecutor(9) as pool:
            futures = [pool.submit(grant, i) for i in range(8)] + [pool.submit(delete)]
            results = [f.result() for f in futures]
        outcomes.extend(results)
        assert not cloud.holders_of_missing_roles(), (round_, results)
        granted = results.count("granted")
        if results[-1] == "deleted":
            assert granted == 0  # a grant that landed first would have stopped the deletion
        else:
            assert granted >= 1  # refused only because someone held it
    assert "granted" in outcomes


def test_parallel_definitions_lose_none(cloud: Cloud) -> None:
    start = threading.Barrier(8)

    def define(i: int) -> None:
        start.wait()
        cloud.roles.put(caller(), TENANT, f"team-{i}", ["files:Read"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(define, range(8)))
    assert set(cloud.profile().custom_roles) == {f"team-{i}" for i in range(8)}
    assert cloud.store.read(TENANT).revision == 8


class Failing:
    """The DynamoDB client, failing ``name`` as AWS does when it is down."""

    def __init__(self, client: Any, name: str) -> None:
        self.client, self.name = client, name

    def __getattr__(self, attr: str) -> Any:
        if attr == self.name:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "down"}}, attr)
        return getattr(self.client, attr)


@pytest.mark.parametrize("step", ["get_item", "update_item", "query"])
def test_aws_failing_at_a_step_changes_nothing(cloud: Cloud, step: str) -> None:
    cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
    before = cloud.store.read(TENANT)
    roles, _ = cloud.with_client(Failing(cloud.ddb, step))
    with pytest.raises(ClientError):  # a 503 at the API (tenant_security.http)
        roles.delete(caller(), TENANT, "reader")
    if step != "query":
        with pytest.raises(ClientError):
            roles.put(caller(), TENANT, "writer", ["files:Write"])
    after = cloud.store.read(TENANT)
    assert (after.roles, after.revision) == (before.roles, before.revision)


def test_contention_on_a_grant_is_retried(cloud: Cloud) -> None:
    cloud.roles.put(caller(), TENANT, "reader", ["files:Read"])
    cloud.user("ann", ["viewer"])

    class Contended:
        def __init__(self, client: Any) -> None:
            self.client, self.left = client, 2

        def __getattr__(self, attr: str) -> Any:
            return getattr(self.client, attr)

        def transact_write_items(self, **kwargs: Any) -> Any:
            if self.left:
                self.left -= 1
                codes = ["None"] * (len(kwargs["TransactItems"]) - 1) + ["TransactionConflict"]
                raise ClientError(
                    {
                        "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                        "CancellationReasons": [{"Code": c} for c in codes],
                    },
                    "TransactWriteItems",
                )
            return self.client.transact_write_items(**kwargs)

    _, users = cloud.with_client(Contended(cloud.ddb))
    users.set_roles(caller().actor, cloud.profile(), "ann", ["reader"])
    assert cloud.users.get(TENANT, "ann").roles == ["reader"]  # type: ignore[union-attr]


ACTIONS = sorted(TENANT_ACTIONS)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    author=st.sets(st.sampled_from(ACTIONS), max_size=10),
    requested=st.lists(
        st.sampled_from([*ACTIONS, "*", "files:*", "secrets:*", "tenants:*"]), min_size=1, max_size=5
    ),
)
def test_the_stored_role_is_within_its_author_through_the_store(
    cloud: Cloud, author: set[str], requested: list[str]
) -> None:
    """The bound again, end to end through the store: an author holding a random custom role."""
    cloud.ddb.update_item(
        TableName="tenants",
        Key={"tenant_id": {"S": TENANT}},
        UpdateExpression="SET custom_roles = :r REMOVE roles_revision",
        ExpressionAttributeValues={":r": {"S": json.dumps({"author": sorted(author)})}},
    )
    try:
        cloud.roles.put(caller(("author", "viewer")), TENANT, "made", requested)
    except (ValidationFailed, Forbidden):
        assert "made" not in cloud.profile().custom_roles
        return
    stored = set(cloud.profile().custom_roles["made"])
    assert (
        stored <= (author | tenant_actions_of(["files:Read", "files:List", "records:Read"])) & TENANT_ACTIONS
    )
