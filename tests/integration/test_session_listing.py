"""Listing and ending sessions on moto (the real stores): a user's own sessions, a tenant's in
pages, ending one's own (never another user's or another tenant's), ending one user's; N parallel
ends of one session end it once and leave the counters exact; a failing DynamoDB leaves the
session and its counters as they were; a password change ends every other session."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pyotp
import pytest
from botocore.exceptions import ClientError

from tenant_security.actors import Actor
from tenant_security.administration.sessions import SessionAdmin
from tenant_security.aws import is_transient
from tenant_security.errors import DomainError, NotFound, ValidationFailed
from tenant_security.identity.mfa import MfaService
from tenant_security.identity.passwords import hash_password
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.signin import SignInService
from tenant_security.identity.tokens import TokenIssuer, TokenVerifier
from tenant_security.identity.users import User, UserStore
from tenant_security.models import parse_security_policies
from tenant_security.tenants import TenantProfile, TenantStore
from tests.support.clock import ManualClock
from tests.support.identity_fakes import LocalKeys, LocalSigner, PlainCipher, RecordingPublisher
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
ALICE, BOB = Actor("acme", "alice", False), Actor("acme", "bob", False)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb")
        create_table(ddb, "users", "tenant_id", "username")
        create_table(ddb, "sessions", "tenant_id", "session_id")
        create_table(ddb, "counters", "pk", "sk")
        create_table(ddb, "tenants", "tenant_id")
        users = UserStore(ddb, "users")
        for tenant, name in (("acme", "alice"), ("acme", "bob"), ("globex", "alice")):
            users.create(
                User(
                    tenant_id=tenant,
                    username=name,
                    email=f"{name}@{tenant}.example",
                    roles=["viewer"],
                    password_hash="-",
                )
            )
        sessions = SessionStore(ddb, "sessions", "counters")
        yield {"ddb": ddb, "users": users, "sessions": sessions, "admin": SessionAdmin(sessions, users)}


def _start(world: dict[str, Any], tenant: str, user: str, agent: str | None = "pytest/1") -> str:
    session = world["sessions"].create(
        tenant, user, ["pwd", "otp"], "full", 60, 1000, 1000, source_ip="203.0.113.9", user_agent=agent
    )
    return str(session.session_id)


def _counter(ddb: Any, tenant: str, user: str | None = None) -> int:
    key = {"pk": {"S": f"sessions#{tenant}"}, "sk": {"S": f"user#{user}" if user else "active"}}
    item = ddb.get_item(TableName="counters", Key=key, ConsistentRead=True).get("Item", {})
    return int(item.get("active", {}).get("N", "0"))


def test_a_user_lists_their_own_live_sessions_with_where_they_came_from(world: dict[str, Any]) -> None:
    first = _start(world, "acme", "alice", "Firefox/125")
    second = _start(world, "acme", "alice", "tenant-security-cli/0.1")
    _start(world, "acme", "bob")
    _start(world, "globex", "alice")  # the same name in another tenant is another user
    ended = _start(world, "acme", "alice")
    world["sessions"].revoke("acme", ended)

    listed = world["admin"].own_sessions(ALICE, current_session=second)["items"]
    assert [s["session_id"] for s in listed] in ([first, second], [second, first])
    assert {s["session_id"]: s["current"] for s in listed} == {first: False, second: True}
    assert {s["user_agent"] for s in listed} == {"Firefox/125", "tenant-security-cli/0.1"}
    assert {s["source_ip"] for s in listed} == {"203.0.113.9"}
    assert {s["username"] for s in listed} == {"alice"}


def test_an_ended_session_keeps_nothing_of_its_client(world: dict[str, Any]) -> None:
    sid = _start(world, "acme", "alice")
    world["admin"].end_own(ALICE, sid)
    item = world["ddb"].get_item(
        TableName="sessions", Key={"tenant_id": {"S": "acme"}, "session_id": {"S": sid}}, ConsistentRead=True
    )["Item"]
    assert item["revoked"] == {"BOOL": True}
    assert "source_ip" not in item
    assert "user_agent" not in item


def test_a_session_stored_before_the_client_fields_is_listed_with_nulls(world: dict[str, Any]) -> None:
    sid = world["sessions"].create("acme", "alice", ["pwd"], "full", 60, 1000).session_id
    (listed,) = world["admin"].own_sessions(ALICE, current_session=sid)["items"]
    assert (listed["source_ip"], listed["user_agent"], listed["current"]) == (None, None, True)


def test_ending_one_of_ones_own_sessions_leaves_the_others_and_counts_exactly(world: dict[str, Any]) -> None:
    keep, end = _start(world, "acme", "alice"), _start(world, "acme", "alice")
    world["admin"].end_own(ALICE, end)
    assert not world["sessions"].is_live("acme", end)
    assert world["sessions"].is_live("acme", keep)
    assert (_counter(world["ddb"], "acme"), _counter(world["ddb"], "acme", "alice")) == (1, 1)


@pytest.mark.parametrize(
    ("owner", "caller"),
    [
        (("acme", "bob"), ALICE),  # another user of the tenant
        (("globex", "alice"), ALICE),  # another tenant's session (its user even has the same name)
        (("acme", "alice"), Actor("globex", "alice", False)),
    ],
)
def test_another_users_or_tenants_session_is_404_and_stays_live(
    world: dict[str, Any], owner: tuple[str, str], caller: Actor
) -> None:
    sid = _start(world, *owner)
    counters = (_counter(world["ddb"], owner[0]), _counter(world["ddb"], *owner))
    with pytest.raises(NotFound):
        world["admin"].end_own(caller, sid)
    assert world["sessions"].is_live(owner[0], sid)
    assert (_counter(world["ddb"], owner[0]), _counter(world["ddb"], *owner)) == counters


def test_ending_a_session_again_or_an_unknown_or_malformed_id_is_404(world: dict[str, Any]) -> None:
    sid = _start(world, "acme", "alice")
    world["admin"].end_own(ALICE, sid)
    for again in (sid, "x" * 32, "../../etc", "", "a" * 500):
        with pytest.raises(NotFound):
            world["admin"].end_own(ALICE, again)
    assert (_counter(world["ddb"], "acme"), _counter(world["ddb"], "acme", "alice")) == (0, 0)


def test_n_parallel_ends_of_one_session_end_it_exactly_once(world: dict[str, Any]) -> None:
    sid = _start(world, "acme", "alice")
    others = [_start(world, "acme", "alice"), _start(world, "acme", "bob")]

    def end() -> str:
        try:
            world["admin"].end_own(ALICE, sid)
        except DomainError as exc:
            return exc.code
        return "ended"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(lambda _: end(), range(12)))
    assert sorted(outcomes) == ["ended"] + ["not_found"] * 11
    assert not world["sessions"].is_live("acme", sid)
    assert all(world["sessions"].is_live("acme", o) for o in others)
    assert _counter(world["ddb"], "acme") == 2
    assert (_counter(world["ddb"], "acme", "alice"), _counter(world["ddb"], "acme", "bob")) == (1, 1)


def test_the_tenants_sessions_come_in_pages_of_live_ones_only(world: dict[str, Any]) -> None:
    started = {_start(world, "acme", f"u{i % 4}") for i in range(23)}
    ended = sorted(started)[::5]
    for sid in ended:
        world["sessions"].revoke("acme", sid)
    _start(world, "globex", "alice")
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = world["admin"].tenant_sessions("acme", BOB, "none", limit=4, after=after)
        assert len(page["items"]) <= 4
        seen += [s["session_id"] for s in page["items"]]
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert seen == sorted(started - set(ended))  # in session-id order, each once, none ended
    assert pages == -(-len(seen) // 4)  # no empty page at the end
    assert world["admin"].tenant_sessions("globex", BOB, "none", limit=50)["next"] is None


def test_the_callers_own_session_is_marked_only_in_the_callers_tenant(world: dict[str, Any]) -> None:
    mine = _start(world, "acme", "alice")
    own = world["admin"].tenant_sessions("acme", ALICE, mine, limit=10)["items"]
    assert [s["current"] for s in own] == [True]
    operator = Actor("platform", "root", True)
    assert [s["current"] for s in world["admin"].tenant_sessions("acme", operator, mine, 10)["items"]] == [
        False
    ]


def test_a_forged_page_token_is_400(world: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        world["admin"].tenant_sessions("acme", ALICE, "x", limit=10, after="Li4vLi4v")


def test_ending_one_users_sessions_leaves_the_rest_and_an_unknown_user_is_404(world: dict[str, Any]) -> None:
    for _ in range(3):
        _start(world, "acme", "alice")
    bobs = _start(world, "acme", "bob")
    elsewhere = _start(world, "globex", "alice")
    assert world["admin"].end_user_sessions("acme", "alice") == 3
    assert world["admin"].end_user_sessions("acme", "alice") == 0  # again: nothing left to end
    assert [s.session_id for s in world["sessions"].list_live("acme")] == [bobs]
    assert world["sessions"].is_live("globex", elsewhere)
    assert (_counter(world["ddb"], "acme"), _counter(world["ddb"], "acme", "alice")) == (1, 0)
    with pytest.raises(NotFound):
        world["admin"].end_user_sessions("acme", "mallory")


def test_parallel_ends_of_one_users_sessions_count_each_once(world: dict[str, Any]) -> None:
    for i in range(30):
        _start(world, "acme", "alice" if i % 3 else "bob")
    with ThreadPoolExecutor(6) as pool:
        ended = sum(pool.map(lambda _: world["admin"].end_user_sessions("acme", "alice"), range(6)))
    assert ended == 20
    assert (_counter(world["ddb"], "acme"), _counter(world["ddb"], "acme", "alice")) == (10, 0)
    assert _counter(world["ddb"], "acme", "bob") == 10


class Failing:
    """The real client whose TransactWriteItems fails as DynamoDB does when it is throttling."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "TransactWriteItems"
        )


def test_dynamodb_failing_to_end_a_session_leaves_it_and_its_counters_as_they_were(
    world: dict[str, Any],
) -> None:
    sid = _start(world, "acme", "alice")
    failing = SessionAdmin(SessionStore(Failing(world["ddb"]), "sessions", "counters"), world["users"])
    for attempt in (lambda: failing.end_own(ALICE, sid), lambda: failing.end_user_sessions("acme", "alice")):
        with pytest.raises(ClientError) as raised:
            attempt()
        assert is_transient(raised.value)  # the API answers 503, nothing half-done
    assert world["sessions"].is_live("acme", sid)
    assert (_counter(world["ddb"], "acme"), _counter(world["ddb"], "acme", "alice")) == (1, 1)
    world["admin"].end_own(ALICE, sid)  # once DynamoDB is back, the retry ends it
    assert (_counter(world["ddb"], "acme"), _counter(world["ddb"], "acme", "alice")) == (0, 0)


def test_a_password_change_ends_every_other_session_and_the_new_one_keeps_its_client(
    world: dict[str, Any],
) -> None:
    ddb, clock, signer = world["ddb"], ManualClock(), LocalSigner()
    cipher, secret = PlainCipher(), pyotp.random_base32()
    users: UserStore = world["users"]
    users.create(
        User(
            tenant_id="acme",
            username="carol",
            email="carol@acme.example",
            roles=["viewer"],
            password_hash=hash_password(PASSWORD),
            mfa_enrolled=True,
            mfa_secret=cipher.encrypt("acme", "carol", secret.encode()),
        )
    )
    tenant = TenantProfile(
        tenant_id="acme", name="Acme", status="ACTIVE", policies=parse_security_policies({})
    )
    TenantStore(ddb, "tenants").create(tenant)

    class Tenants:
        def get(self, tenant_id: str) -> TenantProfile | None:
            return tenant if tenant_id == "acme" else None

    signin = SignInService(
        users,
        Tenants(),
        world["sessions"],
        MfaService(users, cipher, RecordingPublisher(), clock=clock),  # type: ignore[arg-type]
        TokenIssuer(signer, "iss", "aud"),  # type: ignore[arg-type]
        TokenVerifier(LocalKeys(signer), "iss", "aud"),  # type: ignore[arg-type]
        clock=clock,
    )
    replies = []
    for step, agent in enumerate(("Laptop/1", "Phone/2")):
        clock.now += 31 * step  # each code its own time step
        challenge = signin.login("acme", "carol", PASSWORD, "198.51.100.4")["challenge_token"]
        code = pyotp.TOTP(secret).at(clock())
        replies.append(signin.verify(challenge, code, None, "198.51.100.4", agent))
    carol = Actor("acme", "carol", False)
    listed = world["admin"].own_sessions(carol, replies[0]["session_id"])["items"]
    assert {s["user_agent"] for s in listed} == {"Laptop/1", "Phone/2"}

    changed = signin.change_password(
        replies[0]["access_token"], PASSWORD, "a brand new passphrase", "198.51.100.5", "Laptop/1"
    )
    (only,) = world["admin"].own_sessions(carol, changed["session_id"])["items"]
    assert only["session_id"] == changed["session_id"]  # both earlier sessions ended
    assert (only["source_ip"], only["user_agent"], only["current"]) == ("198.51.100.5", "Laptop/1", True)
    assert (_counter(ddb, "acme", "carol"), world["sessions"].counters.live_count("acme", "carol")) == (1, 1)
