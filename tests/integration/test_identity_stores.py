"""The DynamoDB and KMS side of identity, on moto: atomic conditional writes under concurrency,
session limits, encryption bound to tenant and purpose, KMS-signed tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from tenant_security import crypto
from tenant_security.crypto import DecryptionRefused
from tenant_security.errors import Conflict
from tenant_security.identity.session_counters import CLOCK_SKEW_SECONDS
from tenant_security.identity.sessions import SessionLimitReached, SessionStore
from tenant_security.identity.tokens import ACCESS, KmsSigner, PublicKeys, TokenIssuer, TokenVerifier
from tenant_security.identity.users import User, UserStore
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"


@pytest.fixture
def moto_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb")
        create_table(ddb, "users", "tenant_id", "username")
        create_table(ddb, "sessions", "tenant_id", "session_id")
        create_table(ddb, "counters", "pk", "sk")
        yield {"ddb": ddb, "kms": boto3.client("kms")}


def test_a_timecode_is_accepted_by_exactly_one_of_many_concurrent_requests(moto_env: dict[str, Any]) -> None:
    users = UserStore(moto_env["ddb"], "users")
    users.create(
        User(
            tenant_id="acme",
            username="alice",
            email="a@x.io",
            roles=["viewer"],
            password_hash="h",
            mfa_enrolled=True,
            mfa_last_timecode=100,
        )
    )
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: users.accept_timecode("acme", "alice", 101), range(16)))
    assert results.count(True) == 1
    assert not users.accept_timecode("acme", "alice", 100)  # an older step, too


def test_a_backup_code_is_spent_by_exactly_one_request(moto_env: dict[str, Any]) -> None:
    users = UserStore(moto_env["ddb"], "users")
    users.create(
        User(
            tenant_id="acme",
            username="bob",
            email="b@x.io",
            roles=["viewer"],
            password_hash="h",
            mfa_enrolled=True,
            backup_code_hashes={"h1", "h2"},
        )
    )
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: users.consume_backup_code("acme", "bob", "h1"), range(16)))
    assert results.count(True) == 1
    user = users.get("acme", "bob")
    assert user is not None
    assert user.backup_code_hashes == {"h2"}


def test_attempts_are_admitted_atomically_and_locked_once(moto_env: dict[str, Any]) -> None:
    users = UserStore(moto_env["ddb"], "users")
    users.create(
        User(tenant_id="acme", username="carol", email="c@x.io", roles=["viewer"], password_hash="h")
    )
    now = int(time.time())
    with ThreadPoolExecutor(8) as pool:
        attempts = list(pool.map(lambda _: users.admit_attempt("acme", "carol", now, 5), range(20)))
    assert sorted(a.count for a in attempts if a.admitted) == [1, 2, 3, 4, 5]  # five, whatever the race
    assert all(a.count == 5 for a in attempts if not a.admitted)
    with ThreadPoolExecutor(8) as pool:
        locks = list(pool.map(lambda _: users.lock("acme", "carol", now + 900, 5, now), range(8)))
    assert locks.count(True) == 1
    refused = users.admit_attempt("acme", "carol", now + 1, 5)
    assert (refused.admitted, refused.locked_until) == (False, now + 900)
    assert users.admit_attempt("acme", "carol", now + 901, 5).admitted  # the lock lifts by itself
    assert not users.admit_attempt("acme", "nobody", now, 5).admitted


def test_max_concurrent_sessions_holds_under_concurrency(moto_env: dict[str, Any]) -> None:
    sessions = SessionStore(moto_env["ddb"], "sessions", "counters")

    def sign_in(i: int) -> bool:
        try:
            sessions.create("acme", f"user{i}", ["pwd", "otp"], "full", timeout_minutes=60, max_sessions=3)
        except SessionLimitReached:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(sign_in, range(12)))
    assert results.count(True) == 3
    assert len(sessions.list_live("acme")) == 3
    victim = sessions.list_live("acme")[0]
    assert sessions.revoke("acme", victim.session_id)
    assert not sessions.revoke("acme", victim.session_id)  # once
    assert sign_in(99)  # the freed slot is usable
    assert not sign_in(100)


def test_expired_sessions_free_their_slots(moto_env: dict[str, Any]) -> None:
    now = [time.time()]
    sessions = SessionStore(moto_env["ddb"], "sessions", "counters", clock=lambda: now[0])
    for i in range(2):
        sessions.create("globex", f"u{i}", ["pwd"], "full", timeout_minutes=5, max_sessions=2)
    with pytest.raises(SessionLimitReached):
        sessions.create("globex", "u3", ["pwd"], "full", timeout_minutes=5, max_sessions=2)
    # both expired, beyond the clock skew reconciliation allows (TTL has not deleted them yet)
    now[0] += 301 + CLOCK_SKEW_SECONDS
    created = sessions.create("globex", "u3", ["pwd"], "full", timeout_minutes=5, max_sessions=2)
    assert sessions.is_live("globex", created.session_id)
    assert sessions.revoke_all("globex") == 1


def test_encryption_is_bound_to_tenant_and_purpose(moto_env: dict[str, Any]) -> None:
    kms = moto_env["kms"]
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/dcisionai-tenant-acme-secrets", TargetKeyId=key["KeyId"])
    alias_arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/dcisionai-tenant-acme-secrets"
    context = crypto.encryption_context("acme", crypto.PURPOSE_MFA_SECRET, username="alice")
    ciphertext = crypto.encrypt(b"JBSWY3DPEHPK3PXP", alias_arn, context)
    assert b"JBSWY3DPEHPK3PXP" not in ciphertext
    assert crypto.decrypt(ciphertext, context, ACCOUNT) == b"JBSWY3DPEHPK3PXP"
    for wrong in (
        crypto.encryption_context("globex", crypto.PURPOSE_MFA_SECRET, username="alice"),
        crypto.encryption_context("acme", "file", username="alice"),
        crypto.encryption_context("acme", crypto.PURPOSE_MFA_SECRET, username="mallory"),
    ):
        with pytest.raises(DecryptionRefused):
            crypto.decrypt(ciphertext, wrong, ACCOUNT)
    with pytest.raises(DecryptionRefused):
        crypto.decrypt(ciphertext[:-5] + b"xxxxx", context, ACCOUNT)
    with pytest.raises(ValueError, match="tenant_id and purpose"):
        crypto.encrypt(b"x", alias_arn, {"tenant_id": "acme"})


def test_kms_signed_tokens_verify_with_the_published_key(moto_env: dict[str, Any]) -> None:
    kms = moto_env["kms"]
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    issuer = TokenIssuer(KmsSigner(kms, key_id), "iss", "aud")
    token, _ = issuer.issue(subject="alice", tenant_id="acme", token_use=ACCESS, ttl=60, roles=["viewer"])
    keys = PublicKeys(kms, [key_id])
    assert TokenVerifier(keys, "iss", "aud").verify(token, ACCESS)["sub"] == "alice"
    jwks = keys.jwks()
    assert jwks["keys"][0]["kid"] == key_id
    assert jwks["keys"][0]["alg"] == "ES256"
    assert jwks["keys"][0]["crv"] == "P-256"
    assert "d" not in jwks["keys"][0]  # never the private part


def test_one_user_cannot_take_every_session_of_the_tenant(moto_env: dict[str, Any]) -> None:
    sessions = SessionStore(moto_env["ddb"], "sessions", "counters")

    def start(user: str) -> bool:
        try:
            sessions.create("acme", user, ["pwd"], "full", timeout_minutes=5, max_sessions=10, max_per_user=3)
        except SessionLimitReached:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        hogged = list(pool.map(lambda _i: start("hog"), range(12)))
    assert hogged.count(True) == 3  # exactly the per-user cap, however many at once
    assert start("someone-else")  # the tenant still has room for the others
    assert len(sessions.list_live("acme", "hog")) == 3
    # revoking frees the user's slot too
    victim = sessions.list_live("acme", "hog")[0]
    assert sessions.revoke("acme", victim.session_id)
    assert start("hog")


class RecordingClient:
    """The DynamoDB client, keeping every Query's arguments."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queries: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def query(self, **kwargs: Any) -> Any:
        self.queries.append(kwargs)
        return self.client.query(**kwargs)


def test_revoking_every_session_reads_them_consistently(moto_env: dict[str, Any]) -> None:
    """revoke_all must see a session created a moment ago (an eventually consistent query might
    not: it would survive the revocation meant for it)."""
    client = RecordingClient(moto_env["ddb"])
    sessions = SessionStore(client, "sessions", "counters")
    for user in ("ann", "bob", "ann"):
        sessions.create("acme", user, ["pwd"], "full", timeout_minutes=5, max_sessions=10)
    client.queries.clear()
    assert sessions.revoke_all("acme", "ann") == 2
    assert sessions.revoke_all("acme") == 1
    listings = [q for q in client.queries if q["TableName"] == "sessions"]
    assert listings
    assert all(q.get("ConsistentRead") is True for q in listings)
    assert sessions.list_live("acme") == []


def test_a_session_is_created_only_while_its_conditions_hold(moto_env: dict[str, Any]) -> None:
    from tenant_security.identity.sessions import ChangedMeanwhile

    users = UserStore(moto_env["ddb"], "users")
    users.create(User(tenant_id="acme", username="dora", email="d@x.io", roles=["viewer"], password_hash="h"))
    sessions = SessionStore(moto_env["ddb"], "sessions", "counters")
    as_read = users.get("acme", "dora")
    assert as_read is not None
    assert sessions.create(
        "acme",
        "dora",
        ["pwd"],
        "full",
        timeout_minutes=5,
        max_sessions=10,
        conditions=[users.unchanged(as_read)],
    )
    for change in (
        lambda: users.set_roles("acme", "dora", ["tenant-admin"]),
        lambda: users.set_password("acme", "dora", "h2", change_required=False),
        lambda: users.delete("acme", "dora"),
    ):
        as_read = users.get("acme", "dora")
        assert as_read is not None
        change()
        with pytest.raises(ChangedMeanwhile):
            sessions.create("acme", "dora", ["pwd"], "full", 5, 10, conditions=[users.unchanged(as_read)])
    assert len(sessions.list_live("acme", "dora")) == 1  # only the first one
    # the slots a refused creation took in its transaction were never taken
    assert sessions.create("acme", "eve", ["pwd"], "full", 5, max_sessions=2)


def _admins(users: UserStore, *names: str) -> None:
    for name in names:
        users.create(
            User(
                tenant_id="acme",
                username=name,
                email=f"{name}@x.io",
                roles=["tenant-admin"],
                password_hash="x",
            )
        )


@pytest.mark.parametrize("how", ["demoted", "deleted"])
def test_the_last_tenant_admin_is_neither_demoted_nor_deleted(moto_env: dict[str, Any], how: str) -> None:
    """Red team B: the rule kept only the GDPR route; PUT roles and DELETE users removed the last one."""
    users = UserStore(moto_env["ddb"], "users")
    _admins(users, "owner")

    def remove(name: str) -> None:
        if how == "demoted":
            users.set_roles("acme", name, ["viewer"], keep_one="tenant-admin")
        else:
            users.delete("acme", name, keep_one="tenant-admin")

    with pytest.raises(Conflict) as refused:
        remove("owner")
    assert refused.value.code == "last_tenant_admin"
    assert users.get("acme", "owner").roles == ["tenant-admin"]  # type: ignore[union-attr]
    _admins(users, "second")
    remove("owner")  # with another one, fine
    assert users.get("acme", "second").roles == ["tenant-admin"]  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["demoted", "deleted", "one of each"])
def test_the_last_two_tenant_admins_removed_at_once_leave_one(moto_env: dict[str, Any], how: str) -> None:
    users = UserStore(moto_env["ddb"], "users")
    _admins(users, "ann", "ben")

    def remove(name: str) -> str:
        demote = how == "demoted" or (how == "one of each" and name == "ann")
        try:
            if demote:
                users.set_roles("acme", name, ["viewer"], keep_one="tenant-admin")
            else:
                users.delete("acme", name, keep_one="tenant-admin")
        except Conflict:
            return "refused"
        return "removed"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(remove, ["ann", "ben"]))
    left = [u.username for u in users.list_users("acme") if "tenant-admin" in u.roles]
    assert outcomes != ["removed", "removed"]
    assert len(left) == 2 - outcomes.count("removed") >= 1


class CountingTransactions(RecordingClient):
    """The DynamoDB client, counting TransactWriteItems calls and their sizes."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.transactions: list[int] = []

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.transactions.append(len(kwargs["TransactItems"]))
        return self.client.transact_write_items(**kwargs)


def _counter(ddb: Any, tenant_id: str, username: str | None = None) -> int:
    key = {"pk": {"S": f"sessions#{tenant_id}"}, "sk": {"S": f"user#{username}" if username else "active"}}
    item = ddb.get_item(TableName="counters", Key=key, ConsistentRead=True).get("Item", {})
    return int(item.get("active", {}).get("N", "0"))


def _sign_in_many(sessions: SessionStore, tenant_id: str, count: int, users: int) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: sessions.create(
                    tenant_id, f"u{i % users}", ["pwd"], "full", timeout_minutes=5, max_sessions=10_000
                ),
                range(count),
            )
        )


def test_ending_every_session_of_a_large_tenant_takes_a_few_transactions(moto_env: dict[str, Any]) -> None:
    """An incident's "end every session" must fit in the function's time for a tenant with
    hundreds of sessions: one transaction per session (433 in the attack matrix) did not."""
    client = CountingTransactions(moto_env["ddb"])
    sessions = SessionStore(client, "sessions", "counters")
    _sign_in_many(sessions, "acme", 250, users=30)
    client.transactions.clear()
    assert sessions.revoke_all("acme") == 250
    assert sessions.list_live("acme") == []
    assert len(client.transactions) <= 4  # 250 sessions, 30 users: batches of <= 100 items
    assert max(client.transactions) <= 100
    assert _counter(moto_env["ddb"], "acme") == 0
    assert all(_counter(moto_env["ddb"], "acme", f"u{u}") == 0 for u in range(30))


def test_parallel_revocations_end_each_session_exactly_once(moto_env: dict[str, Any]) -> None:
    """Two "end every session" and single revocations at once: every session is counted once,
    and the counters end at zero (not below, not above)."""
    sessions = SessionStore(moto_env["ddb"], "sessions", "counters")
    _sign_in_many(sessions, "acme", 120, users=7)
    live = sessions.list_live("acme")
    singles = [s.session_id for s in live[::3]]
    with ThreadPoolExecutor(8) as pool:
        alls = [pool.submit(sessions.revoke_all, "acme") for _ in range(3)]
        ones = [pool.submit(sessions.revoke, "acme", sid) for sid in singles]
        revoked = sum(f.result() for f in alls) + sum(bool(f.result()) for f in ones)
    assert revoked == 120
    assert sessions.list_live("acme") == []
    assert _counter(moto_env["ddb"], "acme") == 0
    assert all(_counter(moto_env["ddb"], "acme", f"u{u}") == 0 for u in range(7))


def test_a_counter_that_counts_too_few_never_keeps_a_session_alive(moto_env: dict[str, Any]) -> None:
    ddb = moto_env["ddb"]
    sessions = SessionStore(ddb, "sessions", "counters")
    _sign_in_many(sessions, "acme", 5, users=2)
    ddb.put_item(
        TableName="counters", Item={"pk": {"S": "sessions#acme"}, "sk": {"S": "active"}, "active": {"N": "1"}}
    )
    first = sessions.list_live("acme")[0]
    assert sessions.revoke("acme", first.session_id)
    assert not sessions.is_live("acme", first.session_id)
    assert sessions.revoke_all("acme") == 4
    assert sessions.list_live("acme") == []
    assert _counter(ddb, "acme") == 0
