"""The shape of the sign-in throttles on moto: one IPv6 /64 is one caller, and no minute's boundary
lets twice the limit through (the window slides)."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import boto3
import pytest

from tenant_security.identity.throttle import WINDOW_SECONDS, SignInThrottle, TooManyAttempts
from tests.support.clock import ManualClock
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
LIMIT = 30


@pytest.fixture
def throttle(monkeypatch: pytest.MonkeyPatch) -> Iterator[SignInThrottle]:
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb")
        create_table(ddb, "counters", "pk", "sk")
        clock = ManualClock()
        clock.now = 1_800_000_000.0  # the start of a minute
        yield SignInThrottle(ddb, "counters", per_address=LIMIT, per_account=10, clock=clock)


def _admitted(throttle: SignInThrottle, address: str, attempts: int) -> int:
    admitted = 0
    for _ in range(attempts):
        try:
            throttle.admit(address)
        except TooManyAttempts:
            continue
        admitted += 1
    return admitted


def _clock(throttle: SignInThrottle) -> ManualClock:
    assert isinstance(throttle.clock, ManualClock)
    return throttle.clock


def test_the_addresses_of_one_ipv6_64_share_one_budget(throttle: SignInThrottle) -> None:
    one_host = sum(_admitted(throttle, f"2001:db8:1:2::{i:x}", LIMIT) for i in range(1, 11))
    assert one_host == LIMIT  # not ten fresh budgets
    assert _admitted(throttle, "2001:db8:1:3::1", LIMIT) == LIMIT  # the next /64 is someone else
    assert _admitted(throttle, "198.51.100.7", LIMIT) == LIMIT  # IPv4 addresses count alone
    assert _admitted(throttle, "198.51.100.8", 1) == 1
    assert _admitted(throttle, "::ffff:198.51.100.7", 1) == 0  # the same IPv4 address, mapped


def test_wrong_passwords_from_one_64_slow_the_whole_64(throttle: SignInThrottle) -> None:
    throttle.admit_password("acme", "alice", "2001:db8:1:2::1")
    throttle.password_failed("acme", "alice", "2001:db8:1:2::1")
    with pytest.raises(TooManyAttempts):
        throttle.admit_password("acme", "alice", "2001:db8:1:2::2")  # another address, same /64
    throttle.admit_password("acme", "alice", "2001:db8:1:3::2")  # another /64 is not held up


def test_two_seconds_around_a_minutes_boundary_admit_the_limit_not_twice_it(
    throttle: SignInThrottle,
) -> None:
    clock = _clock(throttle)
    clock.now += WINDOW_SECONDS - 1  # the last second of a minute
    before = _admitted(throttle, "198.51.100.7", 40)
    clock.now += 1.0  # the first second of the next
    after = _admitted(throttle, "198.51.100.7", 40)
    assert (before, after) == (LIMIT, 0)
    clock.now += WINDOW_SECONDS / 2  # half of that burst has slid out of the last 60 seconds
    assert _admitted(throttle, "198.51.100.7", 40) == pytest.approx(LIMIT / 2, abs=1)


def test_a_caller_trying_all_the_time_gets_the_limit_in_every_60_seconds(throttle: SignInThrottle) -> None:
    clock = _clock(throttle)
    start, admitted = clock.now, []
    for step in range(4 * 60 * 2):  # twice a second for four minutes
        clock.now = start + step / 2
        if _admitted(throttle, "203.0.113.5", 1):
            admitted.append(clock.now)
    most = max(bisect.bisect_left(admitted, t + WINDOW_SECONDS) - i for i, t in enumerate(admitted))
    assert most <= LIMIT
    assert len(admitted) >= 4 * LIMIT - 1  # and no less: the sustained rate is the limit


def test_a_burst_at_a_minutes_end_does_not_raise_the_sustained_rate(throttle: SignInThrottle) -> None:
    """The sliding window's estimate spreads the previous minute evenly: a caller who bursts at a
    minute's end and then paces itself gets the limit again over the next minute (about twice the
    limit in the worst 60 seconds), but never more than the limit a minute on average."""
    clock = _clock(throttle)
    clock.now += WINDOW_SECONDS - 0.5
    assert _admitted(throttle, "203.0.113.9", LIMIT) == LIMIT
    start, total = clock.now, LIMIT
    for step in range(4 * 60 * 2):  # then twice a second for four minutes
        clock.now = start + 0.5 + step / 2
        total += _admitted(throttle, "203.0.113.9", 1)
    assert total <= 5 * LIMIT  # four minutes and a half: at most the limit in each minute it touched


def test_retry_after_says_when_the_window_admits_again(throttle: SignInThrottle) -> None:
    clock = _clock(throttle)
    clock.now += 20.25
    assert _admitted(throttle, "198.51.100.20", LIMIT) == LIMIT
    with pytest.raises(TooManyAttempts) as caught:
        throttle.admit("198.51.100.20")
    wait = int(caught.value.headers["Retry-After"])
    assert 1 <= wait <= WINDOW_SECONDS
    clock.now += wait - 1
    with pytest.raises(TooManyAttempts):
        throttle.admit("198.51.100.20")  # not a second sooner ...
    clock.now += 1
    throttle.admit("198.51.100.20")  # ... but then
