"""Quotas through the local cloud's HTTP API (template.yaml): exact limits under 8 threads,
429 with Retry-After and X-RateLimit-*, the budget alert once, domains, quota documents."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from tenant_security.authz.route_costs import cost_of
from tests.support.cloud import RunningCloud, wait_for, warm_workers
from tests.support.identity import Identity, mint_token, seed_tenant
from tests.support.tenants import event_observer

pytestmark = pytest.mark.e2e
# a request of GET /tenants/{t}/users in US dollars (its AWS calls at list prices)
USERS = cost_of("GET", "/tenants/{tenant_id}/users").nanodollars / 1e9


def set_quotas(cloud: RunningCloud, admin: Identity, tenant: str, quotas: dict[str, Any]) -> None:
    reply = cloud.http("PUT", f"/tenants/{tenant}/quotas", json=quotas, headers=admin.headers)
    assert reply.status_code == 200, reply.text


def tenant_with(cloud: RunningCloud, admin: Identity, tenant: str, quotas: dict[str, Any]) -> str:
    seed_tenant(cloud, tenant)
    set_quotas(cloud, admin, tenant, quotas)
    return mint_token(cloud, tenant, "qa", ["tenant-admin"])


def fire(cloud: RunningCloud, token: str, path: str, count: int) -> list[Any]:
    with ThreadPoolExecutor(8) as pool:
        return list(
            pool.map(
                lambda _: cloud.http("GET", path, headers={"Authorization": f"Bearer {token}"}), range(count)
            )
        )


def test_429_with_retry_after_and_rate_limit_headers(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    token = tenant_with(platform_cloud, platform_admin, "q-headers", {"api": {"requests_per_minute": 3}})
    start_of_a_fresh_minute()
    replies = [
        platform_cloud.http("GET", "/tenants/q-headers/users", headers={"Authorization": f"Bearer {token}"})
        for _ in range(4)
    ]
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    admitted, refused = replies[0], replies[-1]
    assert admitted.headers["X-RateLimit-Limit"] == "3"
    assert admitted.headers["X-RateLimit-Remaining"] == "2"
    assert 0 < int(admitted.headers["X-RateLimit-Reset"]) <= 60
    assert refused.json()["error"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def start_of_a_fresh_minute() -> None:
    """Wait for the next minute when this one is nearly over: a few requests then share one
    minute window, so the test's outcome does not depend on the clock."""
    second = datetime.now(UTC).second
    if second >= 45:
        time.sleep(60 - second + 0.5)


@pytest.mark.parametrize(
    ("quotas", "limit"),
    [
        ({"api": {"requests_per_minute": 20, "requests_per_hour": 20, "requests_per_day": 20}}, 20),
        ({"cost": {"daily_limit": 12 * USERS}}, 12),  # dollars: twelve requests' worth
    ],
)
def test_8_threads_get_exactly_the_limit(
    platform_cloud: RunningCloud, platform_admin: Identity, quotas: dict[str, Any], limit: int
) -> None:
    tenant = f"q-exact-{limit}"
    token = tenant_with(platform_cloud, platform_admin, tenant, quotas)
    # 8 warm admin-API workers first (on the platform tenant's quota, not this tenant's): the
    # threads race each other's quota writes, not 8 cold starts on a 2-core machine
    warm_workers(lambda: platform_cloud.http("GET", "/tenants/platform", headers=platform_admin.headers), 8)
    day = datetime.now(UTC).date()
    statuses = [r.status_code for r in fire(platform_cloud, token, f"/tenants/{tenant}/users", 40)]
    if datetime.now(UTC).date() != day:
        pytest.skip("the day turned during the test")
    assert statuses.count(200) == limit, sorted(statuses)
    assert statuses.count(429) == 40 - limit


def test_the_budget_threshold_is_announced_once(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    observe = event_observer(
        platform_cloud,
        "threshold-observer",
        {"detail-type": ["Quota Threshold Reached"], "detail": {"tenant_id": ["q-budget"]}},
    )
    token = tenant_with(
        platform_cloud,
        platform_admin,
        "q-budget",
        {"cost": {"monthly_budget": 10 * USERS, "daily_limit": 10 * USERS, "cost_alert_threshold": 0.5}},
    )
    assert [r.status_code for r in fire(platform_cloud, token, "/tenants/q-budget/users", 16)].count(
        200
    ) == 10
    wait_for(observe, timeout=15)
    received = observe()  # one more look: a second event would have arrived by now
    assert len(received) == 1
    detail = received[0]["detail"]
    assert detail["tenant_id"] == "q-budget"
    assert detail["monthly_budget"] == pytest.approx(10 * USERS)  # US dollars


def test_domains_the_tenant_is_not_entitled_to_are_403(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    token = tenant_with(
        platform_cloud, platform_admin, "q-domains", {"domains": {"manufacturing": True, "finance": False}}
    )
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        platform_cloud.http(
            "GET", "/tenants/q-domains/users", headers={**headers, "X-Domain": "manufacturing"}
        ).status_code
        == 200
    )
    for domain in ("finance", "pharma", "unknown"):
        reply = platform_cloud.http(
            "GET", "/tenants/q-domains/users", headers={**headers, "X-Domain": domain}
        )
        assert reply.status_code == 403
        assert reply.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"api": {"requests_per_minute": -5}}, "api.requests_per_minute"),
        ({"storage": {"max_file_count": "many"}}, "storage.max_file_count"),
        ({"compute": {"gpus": 4}}, "compute.gpus"),
        ({"cost": {"cost_alert_threshold": 2}}, "cost.cost_alert_threshold"),
    ],
)
def test_bad_quota_documents_are_400_with_fields(
    platform_cloud: RunningCloud, platform_admin: Identity, document: dict[str, Any], field: str
) -> None:
    seed_tenant_once(platform_cloud, "q-docs")
    reply = platform_cloud.http(
        "PUT", "/tenants/q-docs/quotas", json=document, headers=platform_admin.headers
    )
    assert reply.status_code == 400
    assert field in [f["field"] for f in reply.json()["fields"]]


def test_quotas_are_read_by_tenant_admins_and_set_by_platform_admins(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    token = tenant_with(platform_cloud, platform_admin, "q-read", {"compute": {"max_memory_usage": "512MB"}})
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        platform_cloud.http("GET", "/tenants/q-read/quotas", headers=headers).json()["compute"][
            "max_memory_usage"
        ]
        == "512MB"
    )
    assert platform_cloud.http("PUT", "/tenants/q-read/quotas", json={}, headers=headers).status_code == 403
    usage = platform_cloud.http("GET", "/tenants/q-read/quotas/usage", headers=headers).json()
    assert usage["requests"]["day"] >= 2
    assert usage["compute"]["max_memory_usage"] == "512MB"
    assert usage["concurrent_requests"]["active"] == 1  # this very request holds a lease
    assert usage["storage"] == {"bytes": 0, "files": 0, "max_data_size": "100GB", "max_file_count": 10000}


_seeded: set[str] = set()


def seed_tenant_once(cloud: RunningCloud, tenant: str) -> None:
    if tenant not in _seeded:
        seed_tenant(cloud, tenant)
        _seeded.add(tenant)


@pytest.mark.parametrize(
    ("tenant", "body"),
    [
        ("q-inf-json", '{"cost": {"monthly_budget": 1e999, "daily_limit": 1e999}}'),
        ("q-inf-yaml", '"cost: {monthly_budget: .inf, daily_limit: .inf}"'),  # YAML in a JSON string
    ],
)
def test_an_infinite_budget_is_a_400_and_the_tenant_stays_readable(
    platform_cloud: RunningCloud, platform_admin: Identity, tenant: str, body: str
) -> None:
    """Red team B: infinity was stored as null, and every request of the tenant was a 500 after."""
    seed_tenant(platform_cloud, tenant)
    headers = {**platform_admin.headers, "Content-Type": "application/json"}
    reply = platform_cloud.http("PUT", f"/tenants/{tenant}/quotas", data=body, headers=headers)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] in ("malformed_json", "validation_error")
    assert (
        platform_cloud.http("GET", f"/tenants/{tenant}/quotas", headers=platform_admin.headers).status_code
        == 200
    )
    assert platform_cloud.http("GET", f"/tenants/{tenant}", headers=platform_admin.headers).status_code == 200
