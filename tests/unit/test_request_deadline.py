"""max_request_duration stops a request with a 503."""

from __future__ import annotations

import time

import pytest

from tenant_security.quotas.deadline import (
    DEADLINE_MARGIN,
    MIN_REQUEST_SECONDS,
    RequestTimedOut,
    deadline,
    request_seconds,
)


def test_a_request_past_its_duration_is_stopped() -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimedOut) as caught, deadline(0.2):
        time.sleep(5)
    assert time.monotonic() - started < 2
    assert caught.value.status == 503
    assert "max_request_duration" in caught.value.message


def test_a_quick_request_is_untouched() -> None:
    with deadline(2):
        value = sum(range(1000))
    assert value == 499500
    time.sleep(0.05)  # no alarm left behind


def test_the_deadline_stays_inside_the_functions_own_timeout() -> None:
    # max_request_duration defaults to 300 s; the API functions' Timeout is 10 s
    assert request_seconds(300_000, 9.8) == pytest.approx(9.8 - DEADLINE_MARGIN)
    assert request_seconds(2_000, 9.8) == 2.0  # a shorter tenant limit stands
    assert request_seconds(300_000, None) == 300.0  # outside Lambda: the tenant's limit
    assert request_seconds(300_000, 0.5) == MIN_REQUEST_SECONDS  # never zero (zero means no alarm)
