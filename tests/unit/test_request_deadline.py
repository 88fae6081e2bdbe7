"""max_request_duration stops a request with a 503."""

from __future__ import annotations

import time

import pytest

from tenant_security.quotas import RequestTimedOut, deadline


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
