"""Exact quotas under concurrency (moto): rate windows, cost, the budget alert, shards, leases, storage."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tenant_security.errors import PayloadTooLarge
from tenant_security.models import parse_resource_quotas, parse_security_policies
from tenant_security.quotas.leases import LeaseTerms
from tenant_security.quotas.rate import Admission, RateLimiter, RateLimits, Refusal, nanodollars
from tenant_security.quotas.storage import StorageQuota, StorageQuotaExceeded
from tests.support.quotas import REQUEST, T0, Clock, counters_table

pytestmark = pytest.mark.integration


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from counters_table(monkeypatch)


def limits(
    per_second: int = 1000,
    per_minute: int = 1000,
    per_hour: int = 50000,
    per_day: int = 1000000,
    daily_cost: float = 200,
    budget: float = 5000,
    threshold: float = 0.8,
) -> RateLimits:
    """Limits with the cost figures in US dollars, as the quotas document states them."""
    return RateLimits(
        per_second, per_minute, per_hour, per_day, nanodollars(daily_cost), nanodollars(budget), threshold
    )


def hammer(
    limiter: RateLimiter, tenant: str, rules: RateLimits, requests: int, weight: int = REQUEST
) -> list[bool]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: limiter.admit(tenant, rules, weight).admitted, range(requests)))


@pytest.mark.parametrize("window", ["second", "minute", "hour", "day"])
def test_exactly_the_limit_is_admitted_by_8_threads(ddb: Any, window: str) -> None:
    limiter = RateLimiter(ddb, "counters", clock=Clock())
    rules = limits(**{f"per_{window}": 25})
    assert hammer(limiter, f"t-{window}", rules, 60).count(True) == 25


def test_a_new_window_admits_again(ddb: Any) -> None:
    clock = Clock(T0 + 50)
    limiter = RateLimiter(ddb, "counters", clock=clock)
    rules = limits(per_minute=10, per_hour=15)
    assert hammer(limiter, "acme", rules, 30).count(True) == 10
    refused = limiter.admit("acme", rules, REQUEST)
    assert (refused.admitted, refused.refused_by, refused.reset_seconds) == (False, "m", 10)
    assert refused.headers()["Retry-After"] == "10"
    clock.now += 10  # the next minute: 5 more before the hour's 15
    assert hammer(limiter, "acme", rules, 30).count(True) == 5
    assert limiter.admit("acme", rules, REQUEST).refused_by == "h"
    clock.now += 3600
    assert hammer(limiter, "acme", rules, 30).count(True) == 10


def test_the_daily_cost_limit_is_exact(ddb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(ddb, "counters", clock=clock)
    rules = limits(daily_cost=0.00003)  # US dollars: ten requests of $0.000003
    assert hammer(limiter, "acme", rules, 40, weight=3000).count(True) == 10
    assert limiter.admit("acme", rules, 3000).refused_by == "cost"
    assert limiter.usage("acme", rules)["day_cost"] == 0.00003
    clock.now += 86400
    assert limiter.admit("acme", rules, 3000).admitted


def test_exactly_one_threshold_event_per_month(ddb: Any) -> None:
    events: list[tuple[str, str]] = []
    limiter = RateLimiter(
        ddb,
        "counters",
        clock=Clock(),
        on_threshold=lambda tenant, month, cost, budget: events.append((tenant, month)),
    )
    # the alert at $0.0005, 50 % of a $0.001 budget: about 28 requests of 80 admitted cross it
    rules = limits(budget=0.001, threshold=0.5, daily_cost=0.001)
    assert hammer(limiter, "acme", rules, 80).count(True) == 1_000_000 // REQUEST  # the budget stops the rest
    assert len(events) == 1


def test_a_sharded_tenant_is_never_over_admitted(ddb: Any) -> None:
    rules = limits(per_second=1200, per_minute=2000)
    assert rules.shards == 3
    assert sum(rules.share(s).per_minute for s in range(3)) == 2000
    small = limits(per_second=1200, per_minute=40)
    limiter = RateLimiter(ddb, "counters", clock=Clock())
    assert hammer(limiter, "big", small, 100).count(True) == 40  # every shard full before a refusal
    assert limiter.usage("big", small)["minute"] == 40


def test_limits_come_from_the_stricter_document() -> None:
    rules = RateLimits.of(
        parse_security_policies(
            {"rate_limiting": {"requests_per_minute": 50, "requests_per_hour": 600, "burst_size": 7}}
        ),
        parse_resource_quotas(
            {"api": {"requests_per_minute": 80, "requests_per_hour": 500, "requests_per_day": 900}}
        ),
    )
    assert (rules.per_second, rules.per_minute, rules.per_hour, rules.per_day) == (7, 50, 500, 900)


def test_leases_are_exact_released_and_expire(ddb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(ddb, "counters", clock=clock)
    terms = LeaseTerms(max_concurrent=3, lifetime_seconds=30)

    def take(_: int) -> Admission | None:
        admission = limiter.admit("acme", limits(), REQUEST, terms)
        if not admission.admitted:
            assert admission.refused_by is Refusal.CONCURRENCY
            return None
        return admission

    with ThreadPoolExecutor(8) as pool:
        held = [h for h in pool.map(take, range(10)) if h]
    assert len(held) == 3
    assert limiter.usage("acme", limits())["concurrent_requests"] == 3
    assert limiter.usage("acme", limits())["minute"] == 3  # a refused request counts nothing
    limiter.release("acme", held[0])
    assert take(0) is not None  # a released lease is free again
    assert take(0) is None
    clock.now += 31  # every lease has expired (their holders died)
    assert limiter.usage("acme", limits())["concurrent_requests"] == 0
    assert take(0) is not None  # the full item's expired leases are pruned by the next admission
    key = {"pk": {"S": "quota#acme#0"}, "sk": {"S": "counts"}}
    item = ddb.get_item(TableName="counters", Key=key)["Item"]
    assert len(item["lz"]["M"]) <= 3


def test_a_cold_worker_sees_the_leases_a_warm_one_took(ddb: Any) -> None:
    clock = Clock()
    terms = LeaseTerms(max_concurrent=2, lifetime_seconds=30)
    warm = RateLimiter(ddb, "counters", clock=clock)
    assert warm.admit("acme", limits(), REQUEST, terms).admitted
    assert warm.admit("acme", limits(), REQUEST, terms).admitted
    for _ in range(3):  # each a new worker: no view of the item, or a stale one
        refused = RateLimiter(ddb, "counters", clock=clock).admit("acme", limits(), REQUEST, terms)
        assert refused.refused_by is Refusal.CONCURRENCY
    assert warm.usage("acme", limits())["minute"] == 2


def test_leases_split_between_shards_never_exceed_the_limit(ddb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(ddb, "counters", clock=clock)
    sharded = RateLimits(1000, 60000, 10**6, 10**7, nanodollars(200), nanodollars(5000), 0.8, shard_count=4)
    terms = LeaseTerms(max_concurrent=6, lifetime_seconds=30)

    def take(_: int) -> bool:
        return RateLimiter(ddb, "counters", clock=clock).admit("acme", sharded, REQUEST, terms).admitted

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(take, range(24))) == 6  # refused only when every shard's part is held
    assert limiter.usage("acme", sharded)["concurrent_requests"] == 6


def test_storage_reservations_are_exact(ddb: Any) -> None:
    storage = StorageQuota(ddb, "counters")
    quotas = parse_resource_quotas(
        {"storage": {"max_data_size": "1000B", "max_file_count": 50, "max_file_size": "300B"}}
    )
    with pytest.raises(PayloadTooLarge):
        storage.reserve("acme", 301, quotas)

    def put(_: int) -> bool:
        try:
            storage.reserve("acme", 100, quotas)
        except StorageQuotaExceeded:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(put, range(30))).count(True) == 10
    assert storage.usage("acme") == {"bytes": 1000, "files": 10}
    storage.release("acme", 100)
    assert put(0)
    assert not put(0)


def test_an_error_in_the_handler_releases_the_lease(ddb: Any) -> None:
    from dataclasses import dataclass

    from tenant_security.models import ResourceQuotas, SecurityPolicies
    from tenant_security.quotas.guard import QuotaGuard

    @dataclass
    class Tenant:
        tenant_id: str
        policies: SecurityPolicies
        quotas: ResourceQuotas

    tenant = Tenant(
        "acme", SecurityPolicies(), parse_resource_quotas({"compute": {"max_concurrent_requests": 1}})
    )
    limiter = RateLimiter(ddb, "counters")
    guard = QuotaGuard(limiter)

    def active() -> int:
        usage = limiter.usage("acme", RateLimits.of(tenant.policies, tenant.quotas))
        return int(usage["concurrent_requests"])

    def failing() -> None:
        assert active() == 1  # held while the handler runs
        raise RuntimeError("handler bug")

    for _ in range(3):  # with one slot, a leaked lease would refuse the second request
        with pytest.raises(RuntimeError, match="handler bug"):
            guard.run(tenant, tenant, REQUEST, {}, failing)
    assert active() == 0
    result, headers = guard.run(tenant, tenant, REQUEST, {}, lambda: "ok")
    assert result == "ok"
    assert headers["X-RateLimit-Limit"] == "1000"
