"""Red team (issue 18): the tenant's own security-admin lifts the platform's spending limits.

quotas/rate.py: "a request is admitted only if both stay within their limit after it, so spend
never exceeds a limit, whatever runs at once". The limits are split over counter shards, and the
shard count is derived from ``rate_limiting.burst_size`` -- a field of the *security policy*,
which the tenant's security-admin (or tenant-admin) PATCHes at will (1 to 1,000,000), while the
daily_limit/monthly_budget are platform quotas (quotas:Write is platform-only). Spend on the old
shards is not counted against the new ones: each raise of burst_size that adds shards hands out
fresh budget. Raising it step by step (1, 2, 3, ... shards) sums to the harmonic series: the
monthly budget (and the daily limit) can be overspent many times over, by a tenant role.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from tenant_security.models import parse_resource_quotas, parse_security_policies
from tenant_security.quotas.rate import WRITES_PER_SHARD, RateLimiter, RateLimits, nanodollars
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
T0 = datetime(2027, 3, 15, 1, 0, tzinfo=UTC).timestamp()
DAILY_USD = 0.001  # small enough to exhaust in ten requests
COST = nanodollars(0.0001)  # each request: a tenth of the daily limit


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mocked_aws(monkeypatch):
        client = boto3.client("dynamodb")
        create_table(client, "counters", "pk", "sk")
        yield client


def limits(burst_size: int) -> RateLimits:
    """The limits in force once the tenant's security policy says ``burst_size``."""
    policies = parse_security_policies(
        {
            "rate_limiting": {
                "burst_size": burst_size,
                "requests_per_minute": 10_000,
                "requests_per_hour": 100_000,
            }
        }
    )
    quotas = parse_resource_quotas({"cost": {"daily_limit": DAILY_USD, "monthly_budget": 1.0}})
    return RateLimits.of(policies, quotas)


def spend_until_refused(limiter: RateLimiter, in_force: RateLimits) -> int:
    for admitted in range(1000):
        if not limiter.admit("acme", in_force, COST).admitted:
            return admitted
    raise AssertionError("never refused")


def test_raising_burst_size_does_not_hand_out_a_new_daily_budget(ddb: Any) -> None:
    clock = {"now": T0}
    limiter = RateLimiter(ddb, "counters", clock=lambda: clock["now"])
    total = 0
    for shards in (1, 2, 3, 4, 5):  # each a PATCH of rate_limiting.burst_size by a security-admin
        in_force = limits(WRITES_PER_SHARD * shards)
        assert in_force.shards == 1  # the fix: the tenant's policy no longer sets the count
        total += spend_until_refused(limiter, in_force)
        clock["now"] += 1  # a second later (another burst window)
    spent = total * COST
    assert spent <= nanodollars(DAILY_USD), (
        f"spent ${spent / 1e9:.6f} in one day against a daily limit of ${DAILY_USD}"
    )


class CountingClient:
    """The DynamoDB client, counting UpdateItem calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.updates = 0

    def __getattr__(self, name: str) -> Any:
        if name == "update_item":
            self.updates += 1
        return getattr(self._client, name)


def test_a_large_burst_size_neither_refuses_an_affordable_request_nor_multiplies_its_writes(
    ddb: Any,
) -> None:
    """burst_size 50,000 (the policy allows 1,000,000) makes 100 counter shards: the daily limit is
    split 100 ways, a request costing a tenth of it exceeds every shard's share and is refused by
    each in turn -- one request, 100 conditional writes, 429, with nothing spent today."""
    counting = CountingClient(ddb)
    limiter = RateLimiter(counting, "counters", clock=lambda: T0)  # type: ignore[arg-type]
    in_force = limits(50_000)
    assert in_force.shards == 1  # the fix: the shard count is the platform quota's, not burst_size
    outcome = limiter.admit("acme", in_force, COST)
    found = (outcome.admitted, counting.updates)
    assert found[0], f"a request costing a tenth of an unspent daily limit was refused ({found[1]} writes)"
    assert found[1] <= 4, f"one request made {found[1]} conditional writes"
