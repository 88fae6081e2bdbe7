"""Red team 21d: the folded concurrency lease -- the sharded lease path, the earlier layout's
carry-over, and errors after a landed admission (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenant_security.errors import ServiceUnavailable
from tenant_security.quotas.rate import (
    LeaseTerms,
    RateLimiter,
    RateLimits,
    month_of,
    nanodollars,
)
from tests.support.quotas import REQUEST, T0, Clock, counters_table

pytestmark = pytest.mark.integration
WINDOW_SIZES = (("s", 1), ("m", 60), ("h", 3600), ("d", 86400))
TERMS = LeaseTerms(max_concurrent=10, lifetime_seconds=35)


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from counters_table(monkeypatch)


def limits(shards: int = 1, budget: float = 5000) -> RateLimits:
    return RateLimits(
        1000, 1000, 50000, 10**6, nanodollars(200), nanodollars(budget), 0.8, shard_count=shards
    )


def item(ddb: Any, shard: int = 0) -> dict[str, Any]:
    key = {"pk": {"S": f"quota#acme#{shard}"}, "sk": {"S": "counts"}}
    return ddb.get_item(TableName="counters", Key=key, ConsistentRead=True).get("Item") or {}


def test_a_sharded_tenant_keeps_its_earlier_monthly_spend_on_shard_0(ddb: Any) -> None:
    """Before the deploy the tenant spent its whole month's budget (earlier layout: one monthly item
    per shard). After it, every request must be refused on the budget. The sharded lease path
    writes a stub {lz: {}} on shard 0 before the rate write's _load, so _load sees an item and
    never copies shard 0's earlier counts: shard 0's share of the budget is spent anew."""
    clock = Clock()
    rules = limits(shards=2, budget=0.001)
    for shard in range(2):
        ddb.put_item(
            TableName="counters",
            Item={
                "pk": {"S": f"quota#acme#{shard}"},
                "sk": {"S": month_of(T0)},
                **{name: {"N": str(int(T0 // size) - 1)} for name, size in WINDOW_SIZES[:1]},
                **{name: {"N": str(int(T0 // size))} for name, size in WINDOW_SIZES[1:]},
                "sc": {"N": "1"},
                "mc": {"N": "1"},
                "hc": {"N": "1"},
                "dc": {"N": "1"},
                "dspend": {"N": str(rules.share(shard).monthly_budget)},
                "mspend": {"N": str(rules.share(shard).monthly_budget)},  # the month's share: all spent
            },
        )
    admitted = []
    for _ in range(20):
        outcome = RateLimiter(ddb, "counters", clock=clock).admit("acme", rules, REQUEST, TERMS)
        if outcome.admitted:
            admitted.append(outcome.shard)
    assert not admitted, (
        f"{len(admitted)} requests admitted on shards {sorted(set(admitted))} over a month's budget "
        f"spent before the deploy; shard 0 item now: mspend={item(ddb).get('mspend')}"
    )


def test_usage_of_a_sharded_tenant_reports_its_earlier_monthly_spend(ddb: Any) -> None:
    """Same root cause, read side: once the lease stub exists on shard 0, usage() reads the stub
    and not the earlier monthly item, so the month's spend shown drops by shard 0's part."""
    clock = Clock()
    rules = limits(shards=2, budget=0.001)
    spent = 0
    for shard in range(2):
        share = rules.share(shard).monthly_budget // 2
        spent += share
        ddb.put_item(
            TableName="counters",
            Item={
                "pk": {"S": f"quota#acme#{shard}"},
                "sk": {"S": month_of(T0)},
                **{name: {"N": str(int(T0 // size))} for name, size in WINDOW_SIZES},
                "sc": {"N": "1"},
                "mc": {"N": "1"},
                "hc": {"N": "1"},
                "dc": {"N": "1"},
                "dspend": {"N": str(share)},
                "mspend": {"N": str(share)},
            },
        )
    before = RateLimiter(ddb, "counters", clock=clock).usage("acme", rules)["month_cost"]
    limiter = RateLimiter(ddb, "counters", clock=clock)
    # a refused-on-rate request is enough: weight over the daily limit -> refused, lease given back
    limiter.admit("acme", rules, nanodollars(300), TERMS)
    after = RateLimiter(ddb, "counters", clock=clock).usage("acme", rules)["month_cost"]
    assert after >= before, f"the month's spend went from {before} to {after} after one refused request"


class FailingAlertPut:
    """A client whose conditional put of the budget-alert marker fails (a throttle botocore gave
    up on): the admission's UpdateItem has landed already."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def put_item(self, **kwargs: Any) -> Any:
        if kwargs["Item"]["pk"]["S"].endswith("#alert"):
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "PutItem",
            )
        return self.real.put_item(**kwargs)


def test_a_failed_alert_put_after_a_landed_admission_leaves_no_lease(ddb: Any) -> None:
    """One counter item: the lease is folded into the admission's write, then _maybe_alert's
    put_item raises. admit() raises, the guard never gets an Admission to release, and the
    lease stays for its whole lifetime (max_request_duration + 5 s) with no request running."""
    clock = Clock()
    terms = LeaseTerms(max_concurrent=1, lifetime_seconds=305)
    rules = limits(budget=REQUEST * 1.25 / 1e9)  # the first request crosses the 80 % alert
    limiter = RateLimiter(FailingAlertPut(ddb), "counters", clock=clock, on_threshold=lambda *a: None)
    admission = limiter.admit("acme", rules, REQUEST, terms)  # the alert's failure is logged, not raised
    assert admission.admitted
    limiter.release("acme", admission)  # so the guard gets its admission and releases the lease
    leases = item(ddb).get("lz", {}).get("M", {})
    assert not leases, f"a request that failed holds the tenant's only slot: {leases}"


def test_a_warm_worker_whose_lease_item_vanished_is_not_503_forever(ddb: Any) -> None:
    """A sharded tenant's warm worker keeps its view of the lease item. If the item is gone (TTL
    after 40 idle days, a tenant purge), _take_lease sees old={} -> held={} and writes
    size(lz) < cap on a missing item: it fails every attempt, and the view is never dropped."""
    clock = Clock()
    rules = limits(shards=2)
    worker = RateLimiter(ddb, "counters", clock=clock)
    first = worker.admit("acme", rules, REQUEST, TERMS)
    worker.release("acme", first)
    for shard in range(2):
        ddb.delete_item(TableName="counters", Key={"pk": {"S": f"quota#acme#{shard}"}, "sk": {"S": "counts"}})
    clock.now += 1
    failures = 0
    for _ in range(3):
        try:
            outcome = worker.admit("acme", rules, REQUEST, TERMS)
            worker.release("acme", outcome)
        except ServiceUnavailable:
            failures += 1
    assert failures == 0, f"{failures}/3 requests 503 on a quiet tenant whose counter items had expired"
