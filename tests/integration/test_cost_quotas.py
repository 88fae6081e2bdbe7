"""The quotas' cost figures are US dollars (moto): each request counts its route's estimated AWS
cost (authz/route_costs.py) in nano-dollars, daily_limit and monthly_budget (and the policy's
cost_threshold) are enforced by the one write that admits a request, exactly under concurrency."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from tenant_security.authz.routes import rule_for
from tenant_security.errors import RateLimited
from tenant_security.models import (
    ResourceQuotas,
    SecurityPolicies,
    parse_resource_quotas,
    parse_security_policies,
)
from tenant_security.quotas.guard import QuotaGuard
from tenant_security.quotas.rate import RateLimiter, RateLimits, nanodollars
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
# 01:00 UTC on the 15th of a month: days and a month can roll over under the test's clock
T0 = datetime(2027, 3, 15, 1, 0, tzinfo=UTC).timestamp()
USERS = rule_for("GET", "/tenants/{tenant_id}/users")
assert USERS is not None
COST = USERS.cost.nanodollars


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Tenant:
    tenant_id: str
    policies: SecurityPolicies
    quotas: ResourceQuotas


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mocked_aws(monkeypatch):
        client = boto3.client("dynamodb")
        create_table(client, "counters", "pk", "sk")
        yield client


def tenant(cost: dict[str, float], **rate: float) -> Tenant:
    policies = parse_security_policies({"rate_limiting": rate}) if rate else SecurityPolicies()
    return Tenant("acme", policies, parse_resource_quotas({"cost": cost}))


def requests_through(guard: QuotaGuard, who: Tenant, count: int, threads: int = 8) -> list[int]:
    """``count`` requests of GET /tenants/{t}/users through the quota guard: 200 or 429 each."""

    def one(_: int) -> int:
        try:
            guard.run(who, who, COST, {}, lambda: None)
        except RateLimited:
            return 429
        return 200

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def test_a_route_costs_dollars_not_units() -> None:
    # a read of one item: a few millionths of a dollar, so $200 a day is millions of requests
    assert 5_000 < COST < 100_000
    assert nanodollars(200) // COST > 1_000_000


def test_a_tenant_with_a_thousandth_of_a_dollar_a_day_is_refused_after_the_expected_requests(
    ddb: Any,
) -> None:
    clock = Clock()
    limiter = RateLimiter(ddb, "counters", clock=clock)
    guard = QuotaGuard(limiter)
    who = tenant({"daily_limit": 0.001, "monthly_budget": 1})
    expected = 1_000_000 // COST  # $0.001 in nano-dollars, whole requests
    statuses = [requests_through(guard, who, 1, threads=1)[0] for _ in range(expected + 3)]
    assert statuses == [200] * expected + [429] * 3
    refused = limiter.admit("acme", RateLimits.of(who.policies, who.quotas), COST)
    assert (refused.refused_by, refused.headers()["Retry-After"]) == ("cost", str(86400 - 3600))
    usage = limiter.usage("acme", RateLimits.of(who.policies, who.quotas))
    assert usage["spend"]["today"] == expected * COST / 1e9
    assert usage["spend"]["remaining_today"] == (1_000_000 - expected * COST) / 1e9
    clock.now += 86400  # the next day: admitted again
    assert requests_through(guard, who, 1) == [200]


@pytest.mark.parametrize("threads", [8, 16])
def test_parallel_requests_never_overspend(ddb: Any, threads: int) -> None:
    limiter = RateLimiter(ddb, "counters", clock=Clock())
    guard = QuotaGuard(limiter)
    who = tenant({"daily_limit": 0.0005, "monthly_budget": 1})
    statuses = requests_through(guard, who, 60, threads)
    admitted = statuses.count(200)
    assert admitted == 500_000 // COST  # exactly: not one more, not one fewer
    spent = limiter.usage("acme", RateLimits.of(who.policies, who.quotas))["spend"]["today"]
    assert spent == admitted * COST / 1e9 <= 0.0005


def test_the_monthly_budget_is_enforced_in_dollars_and_the_next_month_starts_again(ddb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(ddb, "counters", clock=clock)
    who = tenant({"daily_limit": 0.0002, "monthly_budget": 0.0003})
    rules = RateLimits.of(who.policies, who.quotas)
    per_day, per_month = 200_000 // COST, 300_000 // COST
    assert [limiter.admit("acme", rules, COST).admitted for _ in range(per_day + 1)].count(True) == per_day
    clock.now += 86400  # a new day, but the month's budget has only this much left
    admitted = [limiter.admit("acme", rules, COST) for _ in range(per_day + 1)]
    assert [a.admitted for a in admitted].count(True) == per_month - per_day
    refused = admitted[-1]
    assert refused.refused_by == "budget"
    month_end = datetime(2027, 4, 1, tzinfo=UTC).timestamp()
    assert int(refused.headers()["Retry-After"]) == int(month_end - clock.now)
    assert limiter.usage("acme", rules)["spend"]["remaining_this_month"] == (300_000 - per_month * COST) / 1e9
    clock.now = month_end + 60  # April: a new counter item, the budget is whole again
    assert limiter.admit("acme", rules, COST).admitted
    assert limiter.usage("acme", rules)["spend"]["this_month"] == COST / 1e9


def test_the_policy_cost_threshold_caps_the_month_when_stricter(ddb: Any) -> None:
    limiter = RateLimiter(ddb, "counters", clock=Clock())
    who = tenant({"daily_limit": 0.001, "monthly_budget": 0.001}, cost_threshold=0.0001)
    rules = RateLimits.of(who.policies, who.quotas)
    assert rules.monthly_budget == 100_000
    outcomes = [limiter.admit("acme", rules, COST) for _ in range(10)]
    assert [o.admitted for o in outcomes].count(True) == 100_000 // COST
    assert outcomes[-1].refused_by == "budget"


def test_a_request_dearer_than_the_limit_is_never_admitted(ddb: Any) -> None:
    limiter = RateLimiter(ddb, "counters", clock=Clock())
    rules = RateLimits.of(SecurityPolicies(), parse_resource_quotas({"cost": {"daily_limit": 0.00001}}))
    assert not limiter.admit("acme", rules, 10_001).admitted
    assert limiter.admit("acme", rules, 10_000).admitted


def test_a_sharded_tenant_splits_its_spend_and_never_overspends(ddb: Any) -> None:
    limiter = RateLimiter(ddb, "counters", clock=Clock())
    who = tenant({"daily_limit": 0.0009, "monthly_budget": 1})
    who.policies = parse_security_policies(
        {"rate_limiting": {"burst_size": 1200, "requests_per_minute": 2000, "requests_per_hour": 50000}}
    )
    assert RateLimits.of(who.policies, who.quotas).shards == 1  # the tenant's policy shards nothing
    # the platform's quota does: 90,000 a minute = 1,500 a second = 3 shards of 500
    who.quotas = who.quotas.model_copy(
        update={
            "api": who.quotas.api.model_copy(
                update={"requests_per_minute": 90_000, "requests_per_hour": 90_000}
            )
        }
    )
    rules = RateLimits.of(who.policies, who.quotas)
    assert rules.shards == 3
    assert sum(rules.share(s).daily_cost for s in range(3)) == 900_000
    with ThreadPoolExecutor(8) as pool:
        admitted = list(pool.map(lambda _: limiter.admit("acme", rules, COST).admitted, range(80)))
    # each shard admits whole requests within its third
    assert admitted.count(True) == 3 * (300_000 // COST)
    assert limiter.usage("acme", rules)["spend"]["today"] <= 0.0009


def test_the_threshold_event_reports_dollars(ddb: Any) -> None:
    events: list[tuple[float, float]] = []
    limiter = RateLimiter(
        ddb,
        "counters",
        clock=Clock(),
        on_threshold=lambda _tenant, _month, cost, budget: events.append((cost, budget)),
    )
    who = tenant({"daily_limit": 0.001, "monthly_budget": 0.001, "cost_alert_threshold": 0.5})
    rules = RateLimits.of(who.policies, who.quotas)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: limiter.admit("acme", rules, COST), range(80)))
    assert len(events) == 1
    cost, budget = events[0]
    assert budget == 0.001
    assert 0.0005 <= cost < 0.0005 + COST / 1e9
