"""Each route's budget of AWS calls (authz/route_costs.py, ``RouteCost.warm_calls``), measured
exactly through the local cloud: a warm request of the route makes exactly the calls its budget
holds, by operation."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import requests

from tenant_security.authz.route_costs import cost_of
from tests.support.cloud import RunningCloud, aws_calls_of
from tests.support.identity import mint_token, seed_tenant

pytestmark = pytest.mark.e2e

FUNCTIONS = ("AuthorizerFunction", "AdminApiFunction", "DataApiFunction", "ComplianceApiFunction")
# The test stack runs with FaultInjection=enabled: each request reads its tenant's fault item (one
# GetItem on the counters table, which no route reads otherwise). A deployed stack does not.
FAULT_CHECK = "GetItem|dcisionai-counters"
WARM_ATTEMPTS = 4


def _fault_checks(cloud: RunningCloud) -> int:
    counts = requests.get(cloud.api_url + "/__localcloud/stats", timeout=10).json()["dynamodb_tables"]
    callers = {f"localcloud-{function}|{FAULT_CHECK}" for function in FUNCTIONS}
    return sum(n for key, n in counts.items() if key in callers)


def _measured(cloud: RunningCloud, method: str, path: str, **request: Any) -> tuple[int, Counter[str]]:
    before, faults = aws_calls_of(cloud, *FUNCTIONS), _fault_checks(cloud)
    reply = cloud.http(method, path, **request)
    spent = aws_calls_of(cloud, *FUNCTIONS) - before
    spent["dynamodb:GetItem"] -= _fault_checks(cloud) - faults
    return reply.status_code, +spent


@pytest.fixture(scope="module")
def budget_tenant(platform_cloud: RunningCloud) -> str:
    seed_tenant(platform_cloud, "budget-calls", database="schema")
    platform_cloud.client("s3").create_bucket(Bucket="dcisionai-10ca1000-tenant-budget-calls-data")
    return "budget-calls"


ROUTES = [
    ("GET", "/tenants/{tenant_id}", "/tenants/{t}", None),
    ("GET", "/tenants/{tenant_id}/users", "/tenants/{t}/users", None),
    ("PUT", "/tenants/{tenant_id}/files/{key+}", "/tenants/{t}/files/budget/{n}.bin", "file"),
    ("POST", "/tenants/{tenant_id}/records", "/tenants/{t}/records", "record"),
    ("GET", "/tenants/{tenant_id}/records/{record_id}", "/tenants/{t}/records/{record}", None),
]


def test_every_route_makes_exactly_the_calls_of_its_budget(
    platform_cloud: RunningCloud, budget_tenant: str
) -> None:
    tenant = budget_tenant
    token = mint_token(platform_cloud, tenant, "budget", ["tenant-admin", "developer"])
    headers = {"Authorization": f"Bearer {token}"}
    record = platform_cloud.http(
        "POST", f"/tenants/{tenant}/records", json={"data": {"n": 0}}, headers=headers
    ).json()["id"]
    wrong: list[str] = []
    for method, resource, template, body in ROUTES:
        budget = cost_of(method, resource).warm_calls()
        measured: list[dict[str, int]] = []
        # The first request warms the function (keys, the tenant record, its view of the rate
        # counter); of the warm ones after it, one must make exactly the budget's calls. A request
        # may still re-read what a warm function keeps for seconds (on a loaded machine the 5 s
        # tenant record runs out, another function's write leaves this one's view of the counter
        # behind), so more than one is tried -- a route that calls AWS more than its budget does
        # so on every one.
        for n in range(WARM_ATTEMPTS + 1):
            path = template.format(t=tenant, n=n, record=record)
            request: dict[str, Any] = {"headers": headers}
            if body == "file":
                request = {
                    "data": os.urandom(2048),
                    "headers": {**headers, "Content-Type": "application/octet-stream"},
                }
            elif body == "record":
                request["json"] = {"data": {"n": n}}
            status, spent = _measured(platform_cloud, method, path, **request)
            assert status < 300, (method, path, status)
            if n == 0:
                continue
            if spent == budget:
                break
            measured.append(dict(spent))
        else:
            wrong.append(f"{method} {resource}: measured {measured}, budget {dict(budget)}")
    assert not wrong, "\n".join(wrong)
