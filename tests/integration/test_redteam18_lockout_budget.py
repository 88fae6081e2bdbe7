"""Red team (issue 18): the lock-out guard misses a policy that refuses every request.

``rate_limiting.cost_threshold`` is the month's spend limit in force (the stricter of it and the
quota's monthly_budget, quotas/rate.py); 0 (or anything under what the month spent so far)
refuses every request of the tenant with 429 -- the security-admin's next one included, the PATCH
that would undo it too (the quota guard runs before the handler). Only a platform-admin can
repair it. "A change that would refuse the caller's own next request ... answers 409
would_lock_out unless force=true": this one is stored without a word.
"""

from __future__ import annotations

from typing import Any

import pytest

from tenant_security.models import parse_resource_quotas, parse_security_policies
from tenant_security.policy.lockout import WouldLockOut
from tenant_security.quotas.rate import RateLimits
from tests.integration.test_policy_admin import change, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def test_a_zero_cost_threshold_refuses_every_request() -> None:
    # what the quota guard makes of it: no request's cost fits a month's budget of 0
    policy = parse_security_policies({"rate_limiting": {"cost_threshold": 0}})
    assert RateLimits.of(policy, parse_resource_quotas({})).monthly_budget == 0


def test_a_policy_that_refuses_every_request_is_a_lock_out(world: dict[str, Any]) -> None:  # noqa: F811
    with pytest.raises(WouldLockOut):
        world["admin"].change(change({"rate_limiting": {"cost_threshold": 0}}))
