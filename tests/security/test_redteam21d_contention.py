"""Red team 21d: many workers at the concurrency cap on the real clock (windows rolling every
second): a busy tenant gets 429s, never 503s."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tenant_security.errors import ServiceUnavailable
from tenant_security.quotas.rate import LeaseTerms, RateLimiter, RateLimits, nanodollars
from tests.support.quotas import counters_table

pytestmark = pytest.mark.integration


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from counters_table(monkeypatch)


@pytest.mark.parametrize("shards", [1, 2])
def test_busy_workers_at_the_cap_get_no_503(ddb: Any, shards: int) -> None:
    rules = RateLimits(10**5, 10**6, 10**7, 10**8, nanodollars(10**6), nanodollars(10**6), 0.8, shards)
    terms = LeaseTerms(max_concurrent=3, lifetime_seconds=30)
    running = [0]
    peak = [0]
    lock = threading.Lock()
    errors: list[str] = []
    stop = time.time() + 6

    def worker(_: int) -> tuple[int, int]:
        limiter = RateLimiter(ddb, "counters")
        ok = refused = 0
        while time.time() < stop:
            try:
                outcome = limiter.admit("acme", rules, 1000, terms)
            except ServiceUnavailable as exc:
                errors.append(str(exc))
                continue
            if not outcome.admitted:
                refused += 1
                continue
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.002)
            with lock:
                running[0] -= 1
            limiter.release("acme", outcome)
            ok += 1
        return ok, refused

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(worker, range(12)))
    admitted = sum(r[0] for r in results)
    assert peak[0] <= 3
    assert not errors, f"{len(errors)} 503s beside {admitted} admitted: {errors[:2]}"
