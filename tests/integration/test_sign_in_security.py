"""Sign-in under attack, on moto (the real stores): parallel guesses against the lockout, the
throttles, and a stranger who knows only a user name.

- 32 parallel wrong codes get at most 5 evaluations per lockout, and the right code is refused
  while the user is locked.
- Every unauthenticated step is throttled per source address and per account (429 with
  Retry-After) before any work; wrong passwords slow only that (account, address) pair and never
  lock the account.
- The tenant's allow-list is checked before the user is looked up, and a refused address is
  answered as a wrong password and never spends the account's budget; where the user signed in
  before, a stranger who fills the account's window does not keep them out.
- A session starts only while the user is still as the sign-in read them and the tenant is
  active: a demotion, password change or suspension landing meanwhile leaves no stale session.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pyotp
import pytest

from tenant_security.actors import Actor
from tenant_security.administration.users import UserAdmin
from tenant_security.alerts import AlertKind
from tenant_security.errors import DomainError, Forbidden, Locked, Unauthorized
from tenant_security.identity.mfa import MAX_FAILURES, MfaService
from tenant_security.identity.passwords import hash_password
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.signin import SignInService
from tenant_security.identity.signin_steps import AddressRefused
from tenant_security.identity.throttle import SignInThrottle, TooManyAttempts, pair_delay
from tenant_security.identity.tokens import TokenIssuer, TokenVerifier
from tenant_security.identity.users import User, UserStore
from tenant_security.models import parse_security_policies
from tenant_security.refusals import RefusalCounter, RefusalKind
from tenant_security.tenants import TenantProfile, TenantStore
from tests.support.clock import ManualClock
from tests.support.identity_fakes import LocalKeys, LocalSigner, PlainCipher, RecordingPublisher
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery staple"


class CountingCipher(PlainCipher):
    """Counts decryptions: each evaluated second-factor attempt decrypts the TOTP secret once."""

    def __init__(self) -> None:
        self.decrypted = 0
        self.mutex = threading.Lock()

    def decrypt(self, tenant_id: str, username: str, ciphertext: bytes) -> bytes:
        with self.mutex:
            self.decrypted += 1
        return super().decrypt(tenant_id, username, ciphertext)


class Tenants:
    def __init__(self, **policy: Any) -> None:
        self.record = TenantProfile(
            tenant_id="acme", name="Acme", status="ACTIVE", policies=parse_security_policies(policy)
        )

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.record if tenant_id == "acme" else None


class CountingUsers(UserStore):
    """The real store, counting look-ups (a refused address must cause none)."""

    lookups = 0

    def get(self, tenant_id: str, username: str) -> User | None:
        CountingUsers.lookups += 1
        return super().get(tenant_id, username)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb")
        for table, keys in (("users", ("tenant_id", "username")), ("sessions", ("tenant_id", "session_id"))):
            create_table(ddb, table, *keys)
        create_table(ddb, "counters", "pk", "sk")
        create_table(ddb, "tenants", "tenant_id")
        clock = ManualClock()
        users = CountingUsers(ddb, "users")
        cipher, publisher = CountingCipher(), RecordingPublisher()
        secret = pyotp.random_base32()
        users.create(
            User(
                tenant_id="acme",
                username="alice",
                email="a@acme.example",
                roles=["viewer"],
                password_hash=hash_password(PASSWORD),
                password_change_required=False,
                mfa_enrolled=True,
                mfa_secret=cipher.encrypt("acme", "alice", secret.encode()),
            )
        )
        signer = LocalSigner()
        mfa = MfaService(users, cipher, publisher, clock=clock)  # type: ignore[arg-type]
        throttle = SignInThrottle(ddb, "counters", per_address=1000, per_account=1000, clock=clock)
        tenants = Tenants(access_control={"ip_whitelist": ["10.0.0.0/8"]})
        TenantStore(ddb, "tenants").create(tenants.record)  # the record of record, for session starts

        def service(throttle: SignInThrottle = throttle, **options: Any) -> SignInService:
            return SignInService(
                users,
                tenants,
                SessionStore(ddb, "sessions", "counters"),
                mfa,
                TokenIssuer(signer, "iss", "aud"),  # type: ignore[arg-type]
                TokenVerifier(LocalKeys(signer), "iss", "aud"),  # type: ignore[arg-type]
                publisher=publisher,  # type: ignore[arg-type]
                throttle=throttle,
                **options,
            )

        yield {
            "ddb": ddb,
            "users": users,
            "cipher": cipher,
            "publisher": publisher,
            "secret": secret,
            "clock": clock,
            "service": service,
        }


def _outcome(call: Any) -> str:
    try:
        call()
    except DomainError as exc:
        return exc.code
    return "ok"


def test_32_parallel_wrong_codes_get_at_most_5_evaluations_and_the_right_code_waits(
    world: dict[str, Any],
) -> None:
    signin: SignInService = world["service"]()
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    right = pyotp.TOTP(world["secret"]).at(world["clock"]())
    wrong = "000000" if right != "000000" else "111111"
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(
            pool.map(
                lambda _i: _outcome(lambda: signin.verify(challenge, wrong, None, "10.0.0.1")), range(32)
            )
        )
    assert world["cipher"].decrypted <= MAX_FAILURES  # at most five guesses were evaluated
    assert outcomes.count("unauthorized") <= MAX_FAILURES
    assert set(outcomes) <= {"unauthorized", "locked"}
    assert "locked" in outcomes
    assert world["publisher"].alerts().count("user_locked_out") == 1
    evaluated = world["cipher"].decrypted
    with pytest.raises(Locked) as caught:
        signin.verify(challenge, right, None, "10.0.0.1")  # the right code, while locked
    assert int(caught.value.headers["Retry-After"]) > 0
    assert world["cipher"].decrypted == evaluated  # not even evaluated
    world["clock"].now += 15 * 60 + 1  # the lock lifts by itself
    fresh = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    assert "access_token" in signin.verify(
        fresh, pyotp.TOTP(world["secret"]).at(world["clock"]()), None, "10.0.0.1"
    )


def test_parallel_backup_codes_are_admitted_the_same_way(world: dict[str, Any]) -> None:
    signin: SignInService = world["service"]()
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(
            pool.map(
                lambda i: _outcome(lambda: signin.verify(challenge, None, f"AAAA-BBBB-{i:04d}", "10.0.0.1")),
                range(24),
            )
        )
    assert outcomes.count("unauthorized") <= MAX_FAILURES
    user = world["users"].get("acme", "alice")
    assert user.locked_until > world["clock"]()


def test_wrong_passwords_slow_the_pair_down_and_never_lock(world: dict[str, Any]) -> None:
    signin: SignInService = world["service"]()
    clock: ManualClock = world["clock"]
    for failure in range(1, 13):
        with pytest.raises(Unauthorized):
            signin.login("acme", "alice", "wrong password!", "10.0.0.1")
        # the pair waits; another address does not
        with pytest.raises(TooManyAttempts) as caught:
            signin.login("acme", "alice", PASSWORD, "10.0.0.1")
        assert int(caught.value.headers["Retry-After"]) == pair_delay(failure)
        clock.now += pair_delay(failure)
    user = world["users"].get("acme", "alice")
    assert (user.failed_attempts, user.locked_until) == (0, 0)  # no lockout from passwords
    assert signin.login("acme", "alice", PASSWORD, "10.0.0.2")["status"] == "MFA_REQUIRED"
    assert signin.login("acme", "alice", PASSWORD, "10.0.0.1")["status"] == "MFA_REQUIRED"


def test_parallel_wrong_passwords_of_one_pair_are_taken_one_at_a_time(world: dict[str, Any]) -> None:
    signin: SignInService = world["service"]()
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(
            pool.map(
                lambda _i: _outcome(lambda: signin.login("acme", "alice", "guess", "10.0.0.9")), range(8)
            )
        )
    assert outcomes.count("unauthorized") == 1
    assert outcomes.count("too_many_attempts") == 7


def test_an_unknown_user_a_wrong_password_and_a_locked_account_answer_alike(world: dict[str, Any]) -> None:
    signin: SignInService = world["service"]()
    now = int(world["clock"]())
    world["users"]._update("acme", "alice", "SET locked_until = :u", {":u": now + 600})
    answers = []
    for address, (username, password) in enumerate(
        [("nobody", PASSWORD), ("alice", "wrong password!"), ("alice", "another wrong one")], start=1
    ):
        with pytest.raises(DomainError) as caught:
            signin.login("acme", username, password, f"10.0.1.{address}")
        answers.append((caught.value.status, caught.value.body(), caught.value.headers))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 401


@pytest.mark.parametrize("kind", ["address", "account"])
def test_every_step_is_throttled_per_address_and_per_account(world: dict[str, Any], kind: str) -> None:
    throttle = SignInThrottle(world["ddb"], "counters", per_address=6, per_account=4, clock=world["clock"])
    signin: SignInService = world["service"](throttle)
    limit = 6 if kind == "address" else 4
    for i in range(limit):
        address = "10.0.2.1" if kind == "address" else f"10.0.3.{i}"
        username = f"user{i}" if kind == "address" else "alice"
        with pytest.raises(Unauthorized):
            signin.login("acme", username, "wrong password!", address)
    lookups = CountingUsers.lookups
    with pytest.raises(TooManyAttempts) as caught:
        signin.login(
            "acme", "alice", PASSWORD, "10.0.2.1" if kind == "address" else "10.0.3.99"
        )  # even the right password
    assert caught.value.status == 429
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 60
    assert CountingUsers.lookups == lookups  # refused before any work
    world["clock"].now += 60  # the next window
    assert signin.login("acme", "alice", PASSWORD, "10.0.4.1")["status"] == "MFA_REQUIRED"


def test_the_mfa_step_is_throttled_for_the_account_too(world: dict[str, Any]) -> None:
    throttle = SignInThrottle(world["ddb"], "counters", per_address=1000, per_account=3, clock=world["clock"])
    signin: SignInService = world["service"](throttle)
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]  # step 1
    with pytest.raises(Unauthorized):
        signin.verify(challenge, "000001", None, "10.0.5.1")  # step 2
    with pytest.raises(Unauthorized):
        signin.verify(challenge, "000002", None, "10.0.5.2")  # step 3
    with pytest.raises(TooManyAttempts):
        signin.verify(challenge, "000003", None, "10.0.5.3")  # over the account's limit, any address


def test_the_allow_list_is_checked_before_the_user_is_looked_up(world: dict[str, Any]) -> None:
    signin: SignInService = world["service"]()
    lookups = CountingUsers.lookups
    with pytest.raises(AddressRefused):
        signin.login("acme", "alice", PASSWORD, "192.0.2.10")
    assert CountingUsers.lookups == lookups


def test_a_refused_address_is_answered_as_a_wrong_password_and_still_recorded(world: dict[str, Any]) -> None:
    """Which tenants exist: a real tenant refusing the address and a tenant that does not exist
    answer alike (as a wrong password does); the tenant's trail still learns why."""
    refusals = RefusalCounter(world["ddb"], "counters", world["clock"])
    signin: SignInService = world["service"](refusals=refusals)
    answers = []
    for tenant_id, username, password, address in (
        ("acme", "alice", PASSWORD, "192.0.2.10"),  # the right password, from a refused address
        ("acme", "anyone", "whatever it is", "192.0.2.11"),
        ("no-such-tenant", "anyone", "whatever it is", "192.0.2.12"),
        ("acme", "alice", "wrong password!", "10.0.0.1"),  # admitted, wrong password
    ):
        with pytest.raises(DomainError) as caught:
            signin.login(tenant_id, username, password, address)
        answers.append((caught.value.status, caught.value.body(), caught.value.headers))
    assert answers[0] == answers[1] == answers[2] == answers[3]
    assert answers[0][0] == 401
    minute = int(world["clock"]() // 60)
    counted = {(c.tenant_id, c.source_ip): c for c in refusals.of_minute(minute)}
    refused = counted[("acme", "192.0.2.10")]
    assert (refused.kind, refused.attempts) == (RefusalKind.UNKNOWN_ACCOUNT, 1)
    assert refused.sample == f"auth:Login: {AlertKind.SOURCE_IP_NOT_ALLOWED}"


def test_a_stranger_at_a_refused_address_spends_nothing_of_the_accounts_budget(
    world: dict[str, Any],
) -> None:
    throttle = SignInThrottle(world["ddb"], "counters", per_address=1000, per_account=4, clock=world["clock"])
    signin: SignInService = world["service"](throttle)
    outcomes = [
        _outcome(lambda i=i: signin.login("acme", "alice", f"guess {i}", f"192.0.2.{i % 3}"))  # type: ignore[misc]
        for i in range(12)
    ]
    # alice, at an address the tenant admits (one she never signed in from), is not held up
    assert signin.login("acme", "alice", PASSWORD, "10.0.0.1")["status"] == "MFA_REQUIRED"
    assert set(outcomes) <= {"unauthorized", "too_many_attempts"}  # never a 403 that tells
    assert "too_many_attempts" in outcomes  # the stranger is throttled all the same


def test_where_the_user_signed_in_before_a_full_account_window_does_not_keep_them_out(
    world: dict[str, Any],
) -> None:
    throttle = SignInThrottle(world["ddb"], "counters", per_address=1000, per_account=4, clock=world["clock"])
    signin: SignInService = world["service"](throttle)
    clock: ManualClock = world["clock"]
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    signin.verify(challenge, pyotp.TOTP(world["secret"]).at(clock()), None, "10.0.0.1")  # completed here
    clock.now += 120  # two minutes on: the window holds only what the stranger does
    for i in range(4):  # a stranger inside the allow-list fills alice's window
        with pytest.raises(Unauthorized):
            signin.login("acme", "alice", "wrong password!", f"10.0.9.{i}")
    with pytest.raises(TooManyAttempts):
        signin.login("acme", "alice", PASSWORD, "10.0.7.7")  # what remains: a brand-new address
    clock.now += 31  # the next TOTP step
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    reply = signin.verify(challenge, pyotp.TOTP(world["secret"]).at(clock()), None, "10.0.0.1")
    assert "access_token" in reply  # both steps, from where she signed in before


def test_a_session_starts_only_for_a_tenant_active_now_whatever_a_cache_says(world: dict[str, Any]) -> None:
    from dataclasses import replace

    signin: SignInService = world["service"]()
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    cached = signin.tenants.record  # type: ignore[attr-defined]

    class JustSuspended(TenantStore):
        def get(self, tenant_id: str) -> TenantProfile | None:
            return replace(cached, status="SUSPENDED")

    signin.tenant_of_record = JustSuspended(world["ddb"], "tenants")
    with pytest.raises(Forbidden):
        signin.verify(challenge, pyotp.TOTP(world["secret"]).at(world["clock"]()), None, "10.0.0.1")
    live = SessionStore(world["ddb"], "sessions", "counters").list_live("acme", "alice")
    assert live == []  # no session was created


def test_a_new_password_ends_every_other_session_of_the_user(world: dict[str, Any]) -> None:
    signin: SignInService = world["service"]()
    sessions = SessionStore(world["ddb"], "sessions", "counters")
    tokens = []
    for step in range(2):
        world["clock"].now += 31 * step  # each code its own time step
        challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
        tokens.append(
            signin.verify(challenge, pyotp.TOTP(world["secret"]).at(world["clock"]()), None, "10.0.0.1")
        )
    assert len(sessions.list_live("acme", "alice")) == 2
    changed = signin.change_password(
        tokens[0]["access_token"], PASSWORD, "a brand new passphrase", "10.0.0.1"
    )
    live = sessions.list_live("acme", "alice")
    assert [s.session_id for s in live] == [changed["session_id"]]  # the other one (and the old) ended
    assert tokens[1]["session_id"] not in {s.session_id for s in live}


def _claims(token: str) -> dict[str, Any]:
    import base64
    import json

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _meanwhile(world: dict[str, Any], change: Any) -> None:
    """``change`` lands between the MFA step reading the user and the session starting."""
    users: UserStore = world["users"]
    original = users.accept_timecode

    def then_the_change(*args: Any) -> bool:
        accepted = original(*args)
        change()
        return accepted

    users.accept_timecode = then_the_change  # type: ignore[method-assign]


def test_a_demotion_during_the_mfa_step_leaves_no_session_with_the_old_roles(world: dict[str, Any]) -> None:
    signin: SignInService = world["service"]()
    users: UserStore = world["users"]
    users.set_roles("acme", "alice", ["tenant-admin"])
    users.create(
        User(tenant_id="acme", username="bob", email="b@x.io", roles=["tenant-admin"], password_hash="x")
    )
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    admin = UserAdmin(users, signin.sessions, "platform")
    caller = Actor(tenant_id="acme", user="bob", platform_admin=False, roles=("tenant-admin",))
    _meanwhile(world, lambda: admin.set_roles(caller, world["service"]().tenants.record, "alice", ["viewer"]))
    reply = signin.verify(challenge, pyotp.TOTP(world["secret"]).at(world["clock"]()), None, "10.0.0.1")
    assert _claims(reply["access_token"])["roles"] == ["viewer"]  # the roles of now, not of before
    live = signin.sessions.list_live("acme", "alice")
    assert [s.session_id for s in live] == [reply["session_id"]]


def test_a_password_change_during_the_mfa_step_starts_no_session(world: dict[str, Any]) -> None:
    signin: SignInService = world["service"]()
    users: UserStore = world["users"]
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]

    def new_password() -> None:
        users.set_password("acme", "alice", hash_password("someone else's new one"), change_required=False)
        signin.sessions.revoke_all("acme", "alice")

    _meanwhile(world, new_password)
    with pytest.raises(Unauthorized):
        signin.verify(challenge, pyotp.TOTP(world["secret"]).at(world["clock"]()), None, "10.0.0.1")
    assert signin.sessions.list_live("acme", "alice") == []


def test_a_suspension_just_before_the_session_is_created_starts_no_session(world: dict[str, Any]) -> None:
    """The session start read the tenant ACTIVE; the suspension (status, then revoke_all) lands
    before the session is created: the creation fails, nothing outlives the revocation."""
    store = TenantStore(world["ddb"], "tenants")
    signin: SignInService = world["service"](tenant_of_record=store)
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    sessions = signin.sessions
    create = sessions.create

    def suspended_first(*args: Any, **kwargs: Any) -> Any:
        if store.get("acme").status == "ACTIVE":  # type: ignore[union-attr]
            store.set_status("acme", "SUSPENDED", reason="incident", allowed_from=("ACTIVE",))
            sessions.revoke_all("acme")
        return create(*args, **kwargs)

    sessions.create = suspended_first  # type: ignore[method-assign]
    with pytest.raises(Forbidden):
        signin.verify(challenge, pyotp.TOTP(world["secret"]).at(world["clock"]()), None, "10.0.0.1")
    assert sessions.list_live("acme") == []
