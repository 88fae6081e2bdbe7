"""Red team 21c: the lease invariant under races of admissions, releases, deaths and pruning."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tenant_security.quotas.rate import LeaseTerms, RateLimiter
from tests.security.test_redteam21c_leases import REQUEST, Clock, ddb, limits  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("shards", [1, 3])
def test_never_more_running_than_the_cap_with_deaths_and_pruning(ddb: Any, shards: int) -> None:  # noqa: F811
    clock = Clock()
    lock = threading.Lock()
    cap = 3
    terms = LeaseTerms(cap, 2.0)
    running: set[str] = set()
    over: list[int] = []
    errors: list[str] = []

    def worker(seed: int) -> int:
        rnd = random.Random(seed)
        limiter = RateLimiter(ddb, "counters", clock=clock)  # one Lambda worker: its own (stale) views
        admitted = 0
        for i in range(50):
            with lock:
                clock.now += 0.02
            if rnd.random() < 0.2:
                limiter = RateLimiter(ddb, "counters", clock=clock)  # a cold worker
            try:
                a = limiter.admit("acme", limits(shards), REQUEST, terms)
            except Exception as exc:
                errors.append(type(exc).__name__)
                continue
            if not a.admitted:
                continue
            admitted += 1
            me = f"{seed}-{i}"
            with lock:
                running.add(me)
                if len(running) > cap:
                    over.append(len(running))
            if rnd.random() < 0.15:  # the holder dies: it runs no more, its lease stays
                with lock:
                    running.discard(me)
                continue
            limiter.release("acme", a)
            with lock:
                running.discard(me)
        return admitted

    with ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(worker, range(8)))
    assert not over, f"{max(over)} running at once (cap {cap})"
    assert total > 0
    assert errors.count("ServiceUnavailable") <= 2, errors
