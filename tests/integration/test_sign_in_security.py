"""Sign-in under attack, on moto (the real stores): parallel guesses against the lockout, the
throttles, and a stranger who knows only a user name.

- 32 parallel wrong codes get at most 5 evaluations per lockout, and the right code is refused
  while the user is locked.
- Every unauthenticated step is throttled per source address and per account (429 with
  Retry-After) before any work; wrong passwords slow only that (account, address) pair and never
  lock the account.
- The tenant's allow-list is checked before the user is looked up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pyotp
import pytest

from tenant_security.errors import DomainError, Forbidden, Locked, Unauthorized
from tenant_security.identity.mfa import MAX_FAILURES, MfaService
from tenant_security.identity.passwords import hash_password
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.signin import SignInService
from tenant_security.identity.throttle import SignInThrottle, TooManyAttempts, pair_delay
from tenant_security.identity.tokens import TokenIssuer, TokenVerifier
from tenant_security.identity.users import User, UserStore
from tenant_security.models import parse_security_policies
from tenant_security.tenants import TenantRecord
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
        self.record = TenantRecord(
            tenant_id="acme", name="Acme", status="ACTIVE", policies=parse_security_policies(policy)
        )

    def get(self, tenant_id: str) -> TenantRecord | None:
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

        def service(throttle: SignInThrottle = throttle) -> SignInService:
            return SignInService(
                users,
                tenants,
                SessionStore(ddb, "sessions", "counters"),
                mfa,
                TokenIssuer(signer, "iss", "aud"),  # type: ignore[arg-type]
                TokenVerifier(LocalKeys(signer), "iss", "aud"),  # type: ignore[arg-type]
                publisher=publisher,  # type: ignore[arg-type]
                throttle=throttle,
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
    with pytest.raises(Forbidden):
        signin.login("acme", "alice", PASSWORD, "192.0.2.10")
    assert CountingUsers.lookups == lookups


def test_a_session_starts_only_for_a_tenant_active_now_whatever_a_cache_says(world: dict[str, Any]) -> None:
    from dataclasses import replace

    signin: SignInService = world["service"]()
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    cached = signin.tenants.record  # type: ignore[attr-defined]

    class JustSuspended:
        def get(self, tenant_id: str) -> TenantRecord | None:
            return replace(cached, status="SUSPENDED")

    signin.tenant_of_record = JustSuspended()
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
