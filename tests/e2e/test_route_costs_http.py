"""Route costs through the local cloud (template.yaml): the AWS calls the cost table
(authz/route_costs.py) counts for a route are the calls its requests make, spend in dollars shows
in GET /tenants/{t}/quotas/usage, and a tenant's daily_limit in dollars refuses with 429."""

from __future__ import annotations

import pytest

from tenant_security.authz.route_costs import cost_of
from tenant_security.models import parse_resource_quotas
from tenant_security.tenants import TenantStore
from tests.support.cloud import RunningCloud, aws_calls_of
from tests.support.identity import mint_token, seed_tenant

pytestmark = pytest.mark.e2e

# The request path reads a few items a worker caches for seconds (the tenant record, in the
# authorizer and the function): the table counts them, a warm request may skip them.
CACHED_READS = {"dynamodb:GetItem": 2}
# Keys a worker fetches once and keeps (the token key, data keys): a cold worker calls once more.
FETCHED_ONCE = {"kms:GetPublicKey": 1, "kms:GenerateDataKey": 1, "kms:Decrypt": 1}


def set_quotas(cloud: RunningCloud, tenant: str, document: dict[str, object]) -> None:
    """Before the tenant's first request (no worker has its record cached yet)."""
    quotas = parse_resource_quotas(document).model_copy(update={"tenant_id": tenant})
    TenantStore(cloud.client("dynamodb"), "dcisionai-tenants").set_quotas(tenant, quotas)


ROUTES = [
    ("GET", "/tenants/{tenant_id}/users", "/tenants/cost-calls/users", ["tenant-admin"], None),
    ("GET", "/tenants/{tenant_id}", "/tenants/cost-calls", ["tenant-admin"], None),
    ("GET", "/tenants/{tenant_id}/quotas", "/tenants/cost-calls/quotas", ["tenant-admin"], None),
    ("GET", "/tenants/{tenant_id}/quotas/usage", "/tenants/cost-calls/quotas/usage", ["tenant-admin"], None),
    ("PUT", "/tenants/{tenant_id}/secrets/{name}", "/tenants/cost-calls/secrets/s1", ["security-admin"], "x"),
    (
        "GET",
        "/tenants/{tenant_id}/secrets/{name}",
        "/tenants/cost-calls/secrets/s1",
        ["security-admin"],
        None,
    ),
]


@pytest.fixture(scope="module")
def cost_tenant(platform_cloud: RunningCloud) -> str:
    seed_tenant(platform_cloud, "cost-calls")
    return "cost-calls"


@pytest.mark.parametrize(("method", "resource", "path", "roles", "value"), ROUTES, ids=str)
def test_the_table_counts_the_calls_a_request_makes(
    platform_cloud: RunningCloud,
    cost_tenant: str,
    method: str,
    resource: str,
    path: str,
    roles: list[str],
    value: str | None,
) -> None:
    cost = cost_of(method, resource)
    functions = ("AuthorizerFunction", cost.row.function)
    body = {"json": {"value": value}} if value is not None else {}
    for attempt in range(3):  # the first may meet a cold worker; a PUT replaces from the second on
        token = mint_token(platform_cloud, cost_tenant, "counter", roles)  # the authorizer runs
        before = aws_calls_of(platform_cloud, *functions)
        reply = platform_cloud.http(method, path, headers={"Authorization": f"Bearer {token}"}, **body)
        assert reply.status_code == 200, reply.text
        measured = aws_calls_of(platform_cloud, *functions) - before
        if attempt == 0:
            continue
        table = cost.request_calls()
        for operation in set(table) | set(measured):
            low = table[operation] - CACHED_READS.get(operation, 0)
            high = table[operation] + FETCHED_ONCE.get(operation, 0)
            assert low <= measured[operation] <= high, (
                f"{method} {resource}: {operation} measured {measured[operation]}, the table counts "
                f"{table[operation]} (authz/route_costs.py); measured {dict(measured)}"
            )


def test_usage_shows_the_spend_of_the_requests_in_dollars(platform_cloud: RunningCloud) -> None:
    seed_tenant(platform_cloud, "cost-usage")
    token = mint_token(platform_cloud, "cost-usage", "spender", ["tenant-admin"])
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(3):
        assert platform_cloud.http("GET", "/tenants/cost-usage/users", headers=headers).status_code == 200
    usage = platform_cloud.http("GET", "/tenants/cost-usage/quotas/usage", headers=headers)
    assert usage.status_code == 200, usage.text
    spend = usage.json()["spend"]
    users = cost_of("GET", "/tenants/{tenant_id}/users").nanodollars
    # the usage request is counted when it is admitted, before its handler reads the counters
    expected = 3 * users + cost_of("GET", "/tenants/{tenant_id}/quotas/usage").nanodollars
    assert spend["currency"] == "USD"
    assert round(spend["today"] * 1e9) == round(spend["this_month"] * 1e9) == expected
    assert (spend["daily_limit"], spend["monthly_budget"], spend["monthly_limit"]) == (200, 5000, 5000)
    assert round(spend["remaining_today"] * 1e9) == 200 * 10**9 - expected
    assert spend["alert_at"] == 4000
    assert usage.json()["requests"]["day"] == 4  # never removed: the request windows stay


def test_a_daily_limit_in_dollars_refuses_with_429(platform_cloud: RunningCloud) -> None:
    seed_tenant(platform_cloud, "cost-limit")
    set_quotas(platform_cloud, "cost-limit", {"cost": {"daily_limit": 0.0001, "monthly_budget": 1}})
    token = mint_token(platform_cloud, "cost-limit", "spender", ["tenant-admin"])
    expected = 100_000 // cost_of("GET", "/tenants/{tenant_id}/users").nanodollars
    statuses = [
        platform_cloud.http(
            "GET", "/tenants/cost-limit/users", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        for _ in range(expected + 2)
    ]
    assert statuses == [200] * expected + [429] * 2
