"""Concurrency leases folded into the rate counter's write (moto): exact under parallel workers,
released once, freed when their holder died, refused without counting, and the earlier layout's
counts carried over once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenant_security.models import SecurityPolicies, parse_resource_quotas
from tenant_security.quotas.guard import QuotaGuard
from tenant_security.quotas.leases import LEASES, ConcurrencyLimitReached, LeaseTerms
from tenant_security.quotas.rate import (
    COUNTER_SK,
    Admission,
    RateLimiter,
    RateLimits,
    Refusal,
    month_of,
    nanodollars,
)
from tests.support.quotas import REQUEST, T0, Clock, counters_table

pytestmark = pytest.mark.integration
WINDOW_SIZES = (("s", 1), ("m", 60), ("h", 3600), ("d", 86400))


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from counters_table(monkeypatch)


def limits(per_minute: int = 1000, budget: float = 5000, shards: int = 1) -> RateLimits:
    return RateLimits(1000, per_minute, 50_000, 10**6, nanodollars(200), nanodollars(budget), 0.8, shards)


def counter_item(ddb: Any, tenant: str, shard: int = 0) -> dict[str, Any]:
    key = {"pk": {"S": f"quota#{tenant}#{shard}"}, "sk": {"S": COUNTER_SK}}
    return dict(ddb.get_item(TableName="counters", Key=key, ConsistentRead=True).get("Item") or {})


def test_parallel_workers_hold_at_most_the_cap_and_refusals_count_nothing(ddb: Any) -> None:
    clock = Clock()
    terms = LeaseTerms(max_concurrent=4, lifetime_seconds=30)
    barrier = threading.Barrier(16)

    def one(_: int) -> Admission:
        worker = RateLimiter(ddb, "counters", clock=clock)  # a Lambda worker of its own
        barrier.wait()
        return worker.admit("acme", limits(), REQUEST, terms)

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(one, range(16)))
    admitted = [o for o in outcomes if o.admitted]
    assert len(admitted) == 4
    assert {o.refused_by for o in outcomes if not o.admitted} == {Refusal.CONCURRENCY}
    limiter = RateLimiter(ddb, "counters", clock=clock)
    usage = limiter.usage("acme", limits())
    assert (usage["concurrent_requests"], usage["minute"]) == (4, 4)  # the 12 refused counted nothing
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda a: limiter.release("acme", a), admitted))
    assert limiter.usage("acme", limits())["concurrent_requests"] == 0
    assert counter_item(ddb, "acme")[LEASES] == {"M": {}}


def test_a_lease_released_twice_or_after_pruning_frees_one_slot_and_leaves_no_stub(ddb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(ddb, "counters", clock=clock)
    terms = LeaseTerms(max_concurrent=2, lifetime_seconds=10)
    first = limiter.admit("acme", limits(), REQUEST, terms)
    second = limiter.admit("acme", limits(), REQUEST, terms)
    limiter.release("acme", first)
    limiter.release("acme", first)  # again: the other request's lease stays
    assert limiter.usage("acme", limits())["concurrent_requests"] == 1
    clock.now += 11  # the second's holder died; the next two admissions prune it
    assert limiter.admit("acme", limits(), REQUEST, terms).admitted
    assert limiter.admit("acme", limits(), REQUEST, terms).admitted
    assert limiter.admit("acme", limits(), REQUEST, terms).refused_by is Refusal.CONCURRENCY
    limiter.release("acme", second)  # its lease was pruned: nothing else is freed
    assert limiter.usage("acme", limits())["concurrent_requests"] == 2
    # a release for a tenant without a counter item makes none
    limiter.release("other", Admission(True, 1, 1, 1, lease_id="0123456789abcdef"))
    assert counter_item(ddb, "other") == {}


def test_dead_holders_leases_are_pruned_exactly_by_parallel_workers(ddb: Any) -> None:
    clock = Clock()
    terms = LeaseTerms(max_concurrent=5, lifetime_seconds=10)
    dead = RateLimiter(ddb, "counters", clock=clock)
    assert all(dead.admit("acme", limits(), REQUEST, terms).admitted for _ in range(5))
    clock.now += 11  # all five holders died without releasing
    barrier = threading.Barrier(12)

    def one(_: int) -> bool:
        worker = RateLimiter(ddb, "counters", clock=clock)
        barrier.wait()
        return worker.admit("acme", limits(), REQUEST, terms).admitted

    with ThreadPoolExecutor(12) as pool:
        assert sum(pool.map(one, range(12))) == 5
    assert len(counter_item(ddb, "acme")[LEASES]["M"]) == 5  # the dead ones gone, the live ones kept


def test_a_lost_release_holds_the_slot_only_until_the_lease_expires(ddb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(ddb, "counters", clock=clock)
    compute = {"max_concurrent_requests": 1, "max_request_duration": 100}
    tenant = _Tenant(parse_resource_quotas({"compute": compute}))
    guard = QuotaGuard(limiter)
    real_update = ddb.update_item

    def failing_release(**kwargs: Any) -> Any:
        if kwargs["UpdateExpression"].startswith("REMOVE"):
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "down"}}, "UpdateItem")
        return real_update(**kwargs)

    ddb.update_item = failing_release
    try:  # the request's work is done: it is answered, not failed, and its lease is left to expire
        assert guard.run(tenant, tenant, REQUEST, {}, lambda: "done")[0] == "done"
    finally:
        ddb.update_item = real_update
    with pytest.raises(ConcurrencyLimitReached) as refused:
        guard.run(tenant, tenant, REQUEST, {}, lambda: "done")
    assert refused.value.headers == {"Retry-After": "1"}
    clock.now += 106  # its deadline (100 s) + 5 s
    assert guard.run(tenant, tenant, REQUEST, {}, lambda: "done")[0] == "done"


class _Tenant:
    def __init__(self, quotas: Any) -> None:
        self.tenant_id = "acme"
        self.policies = SecurityPolicies()
        self.quotas = quotas


def test_the_earlier_monthly_counts_are_carried_over_once(ddb: Any) -> None:
    clock = Clock()
    rules = limits(per_minute=10, budget=0.001)
    monthly = {
        "pk": {"S": "quota#acme#0"},
        "sk": {"S": month_of(T0)},
        **{name: {"N": str(int(T0 // size))} for name, size in WINDOW_SIZES},
        "sc": {"N": "1"},
        "mc": {"N": "7"},
        "hc": {"N": "7"},
        "dc": {"N": "7"},
        "dspend": {"N": "100"},
        "mspend": {"N": str(nanodollars(0.001) - 3 * REQUEST)},  # room for three more of the month
    }
    ddb.put_item(TableName="counters", Item=monthly)
    barrier = threading.Barrier(8)

    def one(_: int) -> bool:
        worker = RateLimiter(ddb, "counters", clock=clock)
        barrier.wait()
        return worker.admit("acme", rules, REQUEST).admitted

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(one, range(8))) == 3  # the month's budget, not spent anew
    usage = RateLimiter(ddb, "counters", clock=clock).usage("acme", rules)
    assert (usage["minute"], usage["month_cost"]) == (10, 0.001)


def test_a_new_month_starts_the_spend_again_and_keeps_the_leases(ddb: Any) -> None:
    end_of_month = datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    clock = Clock(end_of_month)
    rules = limits(budget=0.0001)
    terms = LeaseTerms(max_concurrent=1, lifetime_seconds=30)
    limiter = RateLimiter(ddb, "counters", clock=clock)
    held = limiter.admit("acme", rules, REQUEST, terms)
    assert held.admitted
    while limiter.admit("acme", rules, REQUEST).admitted:
        pass
    assert limiter.admit("acme", rules, REQUEST).refused_by is Refusal.BUDGET
    clock.now += 2  # February: the budget is the new month's, the lease still held
    assert limiter.admit("acme", rules, REQUEST, terms).refused_by is Refusal.CONCURRENCY
    assert limiter.admit("acme", rules, REQUEST).admitted
    assert limiter.usage("acme", rules)["month_cost"] == REQUEST / 1e9
    limiter.release("acme", held)
    assert limiter.admit("acme", rules, REQUEST, terms).admitted


def test_a_sharded_tenants_leases_are_all_on_its_first_item(ddb: Any) -> None:
    """Every lease of a tenant is on one item, whatever its shard count: a change of the count
    never splits the leases held, and a shard's share of a small cap is never 0."""
    clock = Clock()
    terms = LeaseTerms(max_concurrent=3, lifetime_seconds=30)
    worker = RateLimiter(ddb, "counters", clock=clock)
    held = [worker.admit("acme", limits(shards=4), REQUEST, terms) for _ in range(3)]
    assert all(h.admitted for h in held)
    for shards in (1, 2, 4):  # the platform's quota changes the count while the three run
        refused = RateLimiter(ddb, "counters", clock=clock).admit(
            "acme", limits(shards=shards), REQUEST, terms
        )
        assert refused.refused_by is Refusal.CONCURRENCY
    assert len(counter_item(ddb, "acme", 0)[LEASES]["M"]) == 3
    for shard in (1, 2, 3):
        assert counter_item(ddb, "acme", shard).get(LEASES, {"M": {}}) == {"M": {}}
    assert worker.usage("acme", limits(shards=4))["minute"] == 3  # the refused counted nothing
    for h in held:
        worker.release("acme", h)
    one_slot = LeaseTerms(max_concurrent=1, lifetime_seconds=30)
    for _ in range(40):  # one at a time: the whole rate, never a shard without a slot
        admission = worker.admit("beta", limits(per_minute=40, shards=4), REQUEST, one_slot)
        assert admission.admitted
        worker.release("beta", admission)
    assert worker.usage("beta", limits(per_minute=40, shards=4))["minute"] == 40
