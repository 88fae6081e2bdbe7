"""Red team 21c: month and day rollover with skewed clocks and stale views (expected to hold)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tenant_security.quotas.rate import LeaseTerms, RateLimiter, RateLimits, nanodollars
from tests.security.test_redteam21c_leases import REQUEST, Clock, ddb  # noqa: F401

pytestmark = pytest.mark.integration
MONTH_END = datetime(2027, 2, 1, tzinfo=UTC).timestamp()


def test_a_month_rollover_with_skewed_clocks_spends_each_budget_once(ddb: Any) -> None:  # noqa: F811
    rules = RateLimits(1000, 1000, 50000, 10**6, nanodollars(200), 3 * REQUEST, 0.8, shard_count=1)
    terms = LeaseTerms(100, 30)
    ahead, behind = Clock(MONTH_END - 1), Clock(MONTH_END - 2)
    a, b = RateLimiter(ddb, "counters", clock=ahead), RateLimiter(ddb, "counters", clock=behind)
    spent_old = [a.admit("acme", rules, REQUEST, terms).admitted for _ in range(2)]
    spent_old += [b.admit("acme", rules, REQUEST, terms).admitted for _ in range(3)]
    assert spent_old.count(True) == 3
    ahead.now = MONTH_END + 0.5  # a's clock in the new month; b's still in the old one
    new = [a.admit("acme", rules, REQUEST, terms).admitted for _ in range(1)]
    new += [b.admit("acme", rules, REQUEST, terms).admitted for _ in range(5)]  # b: counts in the new month
    behind.now = MONTH_END + 1
    new += [b.admit("acme", rules, REQUEST, terms).admitted for _ in range(3)]
    new += [
        RateLimiter(ddb, "counters", clock=Clock(MONTH_END + 2)).admit("acme", rules, REQUEST, terms).admitted
    ]
    assert new.count(True) == 3
