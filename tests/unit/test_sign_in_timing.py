"""The timing of a failed POST /auth/login tells nothing: every failure is answered at the same
moment after the request began (the floor), whichever check refused it and whatever it did
after the password check. Throttled answers (decided before any user is looked up) are not
held. An injected timer stands for the clock, so nothing here is timed."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_security.errors import DomainError
from tenant_security.identity.passwords import hash_password
from tenant_security.identity.signin import SignInService
from tenant_security.identity.throttle import TooManyAttempts
from tenant_security.identity.tokens import TokenIssuer
from tenant_security.identity.users import User
from tenant_security.models import parse_security_policies
from tenant_security.tenants import TenantProfile
from tests.support.identity_fakes import FakeUsers, LocalSigner, RecordingPublisher

PASSWORD = "correct horse battery staple"
FLOOR = 0.3
START = 1000.0


class Timer:
    """A monotonic clock that moves only when the code under test does something (or sleeps)."""

    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class SlowUsers(FakeUsers):
    def __init__(self, timer: Timer) -> None:
        super().__init__()
        self.timer = timer

    def get(self, tenant_id: str, username: str) -> User | None:
        self.timer.now += 0.004  # a user look-up
        return super().get(tenant_id, username)


class SlowPublisher(RecordingPublisher):
    """A known user's failure puts a `User Activity` event (sealed: KMS, then EventBridge)."""

    def __init__(self, timer: Timer) -> None:
        super().__init__()
        self.timer = timer

    def activity(self, activity: Any, policies: Any = None) -> bool:
        self.timer.now += 0.031
        return super().activity(activity, policies)


class SlowRefusals:
    """An unknown user's (or a refused address's) failure is one counter update instead."""

    def __init__(self, timer: Timer) -> None:
        self.timer = timer
        self.counted: list[tuple[str, str | None]] = []

    def count(self, kind: str, source_ip: str | None, tenant_id: str | None = None, sample: str = "") -> None:
        self.timer.now += 0.052
        self.counted.append((kind, tenant_id))


class Tenants:
    record = TenantProfile(
        tenant_id="acme",
        name="Acme",
        status="ACTIVE",
        policies=parse_security_policies({"access_control": {"ip_whitelist": ["10.0.0.0/8"]}}),
    )

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.record if tenant_id == "acme" else None


@pytest.fixture
def timed() -> tuple[SignInService, Timer]:
    timer = Timer()
    users = SlowUsers(timer)
    users.create(
        User(
            tenant_id="acme",
            username="alice",
            email="a@acme.example",
            roles=["viewer"],
            password_hash=hash_password(PASSWORD),
            password_change_required=False,
            mfa_enrolled=True,
        )
    )
    service = SignInService(
        users,  # type: ignore[arg-type]
        Tenants(),
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        TokenIssuer(LocalSigner(), "iss", "aud"),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        publisher=SlowPublisher(timer),  # type: ignore[arg-type]
        refusals=SlowRefusals(timer),  # type: ignore[arg-type]
        failure_floor=FLOOR,
        timer=timer,
        sleep=timer.sleep,
    )
    return service, timer


FAILURES = {
    "unknown user": ("acme", "nobody", PASSWORD, "10.0.0.1"),
    "wrong password": ("acme", "alice", "not her password", "10.0.0.2"),
    "unknown tenant": ("nosuch", "alice", PASSWORD, "10.0.0.3"),
    "refused address": ("acme", "alice", PASSWORD, "192.0.2.1"),
}


def test_every_failed_login_is_answered_at_the_same_moment_after_it_began(
    timed: tuple[SignInService, Timer],
) -> None:
    service, timer = timed
    answered, worked, bodies = {}, {}, {}
    for case, args in FAILURES.items():
        timer.now, timer.slept = START, []
        with pytest.raises(DomainError) as caught:
            service.login(*args)
        answered[case] = timer.now - START
        worked[case] = answered[case] - sum(timer.slept)
        bodies[case] = (caught.value.status, caught.value.body(), caught.value.headers)
    assert len(set(worked.values())) > 1  # the paths do different work after the check ...
    assert answered == pytest.approx(dict.fromkeys(FAILURES, FLOOR))  # ... and answer at one deadline
    assert len(set(map(repr, bodies.values()))) == 1  # with one answer


def test_a_success_is_not_held_and_a_failure_slower_than_the_floor_is_not_held_further(
    timed: tuple[SignInService, Timer],
) -> None:
    service, timer = timed
    assert service.login("acme", "alice", PASSWORD, "10.0.0.9")["status"] == "MFA_REQUIRED"
    assert timer.slept == []
    timer.now = START
    slow = service.users.get

    def slower(tenant_id: str, username: str) -> User | None:
        timer.now += 2 * FLOOR  # e.g. a throttled dependency
        return slow(tenant_id, username)

    service.users.get = slower  # type: ignore[method-assign]
    with pytest.raises(DomainError):
        service.login("acme", "alice", "not her password", "10.0.0.9")
    assert timer.slept == []
    assert timer.now - START > FLOOR


def test_a_throttled_login_is_answered_at_once(timed: tuple[SignInService, Timer]) -> None:
    service, timer = timed

    class Closed:
        def admit_address(self, source_ip: str | None) -> None:
            raise TooManyAttempts("too many sign-in attempts", headers={"Retry-After": "5"})

    service.throttle = Closed()  # type: ignore[assignment]
    with pytest.raises(TooManyAttempts):
        service.login("acme", "alice", PASSWORD, "10.0.0.1")
    assert timer.slept == []
    assert timer.now - START < FLOOR
