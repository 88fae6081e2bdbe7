"""Red team 21c: the concurrency lease folded into the rate counter's one UpdateItem (moto)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenant_security.errors import ServiceUnavailable
from tenant_security.quotas.rate import LeaseTerms, RateLimiter, RateLimits, nanodollars
from tests.support.quotas import REQUEST, Clock, counters_table

pytestmark = pytest.mark.integration


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from counters_table(monkeypatch)


def limits(shards: int = 1, per_minute: int = 1000) -> RateLimits:
    return RateLimits(
        1000, per_minute, 50000, 10**6, nanodollars(200), nanodollars(5000), 0.8, shard_count=shards
    )


def item(ddb: Any, shard: int = 0) -> dict[str, Any]:
    key = {"pk": {"S": f"quota#acme#{shard}"}, "sk": {"S": "counts"}}
    return ddb.get_item(TableName="counters", Key=key, ConsistentRead=True).get("Item") or {}


class LostReply:
    """A client whose first UpdateItem lands but whose reply is lost (a 500 / read timeout after
    the write): botocore's standard retry mode then sends the same request again."""

    def __init__(self, real: Any, botocore_retries: bool = True) -> None:
        self.real = real
        self.retries = botocore_retries
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def update_item(self, **kwargs: Any) -> Any:
        if self.lost:
            return self.real.update_item(**kwargs)
        self.lost = True
        self.real.update_item(**kwargs)  # the write lands ...
        if self.retries:
            return self.real.update_item(**kwargs)  # ... and botocore retries the same request
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "lost"}}, "UpdateItem")


def test_a_lost_reply_retried_by_botocore_admits_once_on_the_lease_it_landed(ddb: Any) -> None:
    clock = Clock()
    terms = LeaseTerms(max_concurrent=1, lifetime_seconds=305)
    first = RateLimiter(LostReply(ddb), "counters", clock=clock).admit("acme", limits(), REQUEST, terms)
    # the request's own first (landed) write holds the only slot: the retry is refused by it
    leases = item(ddb).get("lz", {}).get("M", {})
    assert first.admitted or not leases, (
        f"refused ({first.refused_by}) by its own landed lease {list(leases)}; "
        f"counted mc={item(ddb)['mc']['N']}"
    )


def test_an_error_after_a_landed_admission_leaves_no_lease(ddb: Any) -> None:
    clock = Clock()
    terms = LeaseTerms(max_concurrent=1, lifetime_seconds=305)
    with pytest.raises(ClientError):
        RateLimiter(LostReply(ddb, botocore_retries=False), "counters", clock=clock).admit(
            "acme", limits(), REQUEST, terms
        )
    clock.now += 10  # the request failed (500) 10 s ago; no request is running
    again = RateLimiter(ddb, "counters", clock=clock).admit("acme", limits(), REQUEST, terms)
    assert again.admitted, f"refused by {again.refused_by}: a lease of a request that never ran"


def test_a_shard_count_increase_never_lets_more_than_max_concurrent_run(ddb: Any) -> None:
    """api.requests_per_minute crossing 30 000 (1 -> 2 shards) while requests are in flight."""
    clock = Clock()
    terms = LeaseTerms(max_concurrent=2, lifetime_seconds=60)
    limiter = RateLimiter(ddb, "counters", clock=clock)
    held = [limiter.admit("acme", limits(1), REQUEST, terms) for _ in range(2)]
    assert all(h.admitted for h in held)
    assert not limiter.admit("acme", limits(1), REQUEST, terms).admitted
    # the platform raises the tenant's requests_per_minute: 2 shards, the cap split 1 + 1
    more = [
        RateLimiter(ddb, "counters", clock=clock).admit("acme", limits(2), REQUEST, terms) for _ in range(4)
    ]
    running = 2 + sum(a.admitted for a in more)
    assert running <= 2, f"{running} concurrent requests with max_concurrent_requests=2"


def test_a_shard_count_decrease_never_lets_more_than_max_concurrent_run(ddb: Any) -> None:
    clock = Clock()
    terms = LeaseTerms(max_concurrent=2, lifetime_seconds=60)
    held = [
        RateLimiter(ddb, "counters", clock=clock).admit("acme", limits(2), REQUEST, terms) for _ in range(6)
    ]
    assert sum(h.admitted for h in held) == 2  # one on each shard
    more = [
        RateLimiter(ddb, "counters", clock=clock).admit("acme", limits(1), REQUEST, terms) for _ in range(4)
    ]
    running = 2 + sum(a.admitted for a in more)
    assert running <= 2, f"{running} concurrent requests with max_concurrent_requests=2"


def test_a_fresh_shard_with_no_lease_share_is_a_refusal_not_a_crash(
    ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 shards (requests_per_minute > 30 000) and max_concurrent_requests=1: shard 1's share is 0.
    A request that tries the (absent) shard 1 first must go on to shard 0."""
    monkeypatch.setattr(random, "shuffle", lambda order: order.reverse())
    terms = LeaseTerms(max_concurrent=1, lifetime_seconds=60)
    admission = RateLimiter(ddb, "counters", clock=Clock()).admit("acme", limits(2), REQUEST, terms)
    assert admission.admitted
    assert admission.lease_id in item(ddb, 0)["lz"]["M"]  # every lease on the tenant's first item


def test_dead_leases_over_a_lowered_cap_are_pruned_and_admit_again(ddb: Any) -> None:
    """50 holders died (OOM, crash) with max_concurrent_requests=100; the platform then lowers it
    to 10. Once the leases have expired, requests must be admitted again."""
    clock = Clock()
    big = LeaseTerms(max_concurrent=100, lifetime_seconds=30)
    limiter = RateLimiter(ddb, "counters", clock=clock)
    for _ in range(50):
        assert limiter.admit("acme", limits(), REQUEST, big).admitted  # never released: dead
    clock.now += 60  # every one of them expired
    small = LeaseTerms(max_concurrent=10, lifetime_seconds=30)
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(
                RateLimiter(ddb, "counters", clock=clock).admit("acme", limits(), REQUEST, small).admitted
            )
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes == [True, True, True], f"{outcomes}; {len(item(ddb)['lz']['M'])} dead leases stay"


def test_dead_leases_are_pruned_before_the_item_is_full(ddb: Any) -> None:
    """The module promises 'well under 1 KB at ordinary limits' and that a dead holder's lease
    frees itself; a write's WCUs are the item's size in KB (before or after, the larger)."""
    clock = Clock()
    terms = LeaseTerms(max_concurrent=100, lifetime_seconds=30)  # the default max_concurrent_requests
    limiter = RateLimiter(ddb, "counters", clock=clock)
    for _ in range(99):
        limiter.admit("acme", limits(), REQUEST, terms)  # holders that died (OOM, crash, lost reply)
    clock.now += 3600
    for _ in range(20):  # an hour later: ordinary requests, each released
        limiter.release("acme", limiter.admit("acme", limits(), REQUEST, terms))
    stored = item(ddb)
    size = _item_size(stored)
    assert len(stored["lz"]["M"]) < 99, f"{len(stored['lz']['M'])} expired leases kept"
    assert size < 1024, f"{size} B"


def _item_size(value: Any) -> int:
    """DynamoDB's item size rules (names + values; a number ~ 1 byte per 2 digits + 1; a map 3
    + 1 per entry)."""

    def of(v: dict[str, Any]) -> int:
        ((kind, inner),) = v.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return (len(inner.replace(".", "").replace("-", "")) + 1) // 2 + 1
        if kind == "M":
            return 3 + sum(len(k.encode()) + of(x) + 1 for k, x in inner.items())
        return 1

    return sum(len(k.encode()) + of(v) for k, v in value.items())


def test_a_lost_reply_with_room_left_takes_one_lease_that_the_release_frees(ddb: Any) -> None:
    clock = Clock()
    terms = LeaseTerms(max_concurrent=3, lifetime_seconds=305)
    limiter = RateLimiter(LostReply(ddb), "counters", clock=clock)
    admission = limiter.admit("acme", limits(), REQUEST, terms)
    assert admission.admitted
    limiter.release("acme", admission)  # the request is over
    usage = RateLimiter(ddb, "counters", clock=clock).usage("acme", limits())
    # (the one request is also counted twice: minute == 2 -- conservative, but a limit spent)
    assert usage["concurrent_requests"] == 0, (
        f"{usage['concurrent_requests']} leases held, minute={usage['minute']}"
    )


class FailingRelease:
    """DynamoDB throttling (or down) for the release's REMOVE, after the handler ran."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def update_item(self, **kwargs: Any) -> Any:
        if kwargs["UpdateExpression"].startswith("REMOVE"):
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "UpdateItem",
            )
        return self.real.update_item(**kwargs)


def test_a_failed_release_does_not_turn_a_done_request_into_an_error(ddb: Any) -> None:
    """The handler's write happened; the lease expires by itself. A 5xx here is recorded (and
    answered) as a failure of a write that was made, and invites the client to make it again."""
    from dataclasses import dataclass

    from tenant_security.models import ResourceQuotas, SecurityPolicies, parse_resource_quotas
    from tenant_security.quotas.guard import QuotaGuard

    @dataclass
    class Tenant:
        tenant_id: str
        policies: SecurityPolicies
        quotas: ResourceQuotas

    tenant = Tenant("acme", SecurityPolicies(), parse_resource_quotas({}))
    done: list[str] = []
    guard = QuotaGuard(RateLimiter(FailingRelease(ddb), "counters", clock=Clock()))
    try:
        result, _ = guard.run(tenant, tenant, REQUEST, {}, lambda: done.append("written") or "ok")
    except Exception as exc:
        result = f"{type(exc).__name__} after {done}"
    assert result == "ok"


class SlowReply:
    """DynamoDB answers the admission's UpdateItem after ``seconds`` (within read_timeout=10 s)."""

    def __init__(self, real: Any, clock: Clock, seconds: float) -> None:
        self.real, self.clock, self.seconds = real, clock, seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def update_item(self, **kwargs: Any) -> Any:
        reply = self.real.update_item(**kwargs)
        if "SET" in kwargs["UpdateExpression"]:
            self.clock.now += self.seconds
        return reply


def test_a_slow_admission_reply_is_503_before_its_lease_could_expire(ddb: Any) -> None:
    """The lease expires lifetime (deadline + 5 s) after it was *written*; the guard's deadline
    starts when admit returns. An 8 s reply (read_timeout is 10 s) leaves the request running
    for its whole deadline with an expired lease that the next admission prunes."""
    from dataclasses import dataclass

    from tenant_security.models import ResourceQuotas, SecurityPolicies, parse_resource_quotas
    from tenant_security.quotas.guard import QuotaGuard

    @dataclass
    class Tenant:
        tenant_id: str
        policies: SecurityPolicies
        quotas: ResourceQuotas

    clock = Clock()
    quotas = parse_resource_quotas({"compute": {"max_concurrent_requests": 1, "max_request_duration": 2000}})
    tenant = Tenant("acme", SecurityPolicies(), quotas)
    guard = QuotaGuard(RateLimiter(SlowReply(ddb, clock, 8), "counters", clock=clock))
    other = RateLimiter(ddb, "counters", clock=clock)  # another worker, the same (true) time
    rules = RateLimits.of(tenant.policies, tenant.quotas)

    ran: list[bool] = []

    def handler() -> bool:  # would run within its 2 s deadline, but its lease is all but gone
        ran.append(other.admit("acme", rules, REQUEST, LeaseTerms(1, 7)).admitted)
        return True

    with pytest.raises(ServiceUnavailable):  # answered 503 before its lease could be taken from it
        guard.run(tenant, tenant, REQUEST, {}, handler)
    assert ran == []
    assert other.admit("acme", rules, REQUEST, LeaseTerms(1, 7)).admitted  # and its lease given back


def test_a_sharded_tenant_with_few_concurrent_slots_gets_its_whole_rate(ddb: Any) -> None:
    """4 shards, max_concurrent_requests=1: shards 1-3 have no lease share, so every request runs
    on shard 0 and the tenant gets a quarter of its per-minute limit (sequential requests)."""
    clock = Clock()
    terms = LeaseTerms(max_concurrent=1, lifetime_seconds=30)
    limiter = RateLimiter(ddb, "counters", clock=clock)
    rules = limits(shards=4, per_minute=40)
    admitted = 0
    for _ in range(40):
        a = limiter.admit("acme", rules, REQUEST, terms)
        if a.admitted:
            admitted += 1
            limiter.release("acme", a)
    assert admitted == 40, f"{admitted} of 40 sequential requests admitted within a 40/minute limit"


class Counting:
    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if callable(attr):

            def call(*a: Any, **kw: Any) -> Any:
                self.calls.append(name)
                return attr(*a, **kw)

            return call
        return attr


def test_a_refused_request_costs_one_write_per_shard_and_no_reads_once_warm(ddb: Any) -> None:
    """Issue 21 is about calls per request: a warm worker refusing a tenant over its limit reads
    the counter item again (GetItem) on every refused request, as it keeps no view of a refusal."""
    clock = Clock()
    counting = Counting(ddb)
    limiter = RateLimiter(counting, "counters", clock=clock)
    rules = limits(per_minute=2)
    terms = LeaseTerms(10, 30)
    for _ in range(3):
        limiter.admit("acme", rules, REQUEST, terms)
    counting.calls.clear()
    for _ in range(5):
        assert not limiter.admit("acme", rules, REQUEST, terms).admitted
    assert counting.calls.count("get_item") == 0, counting.calls
