"""The route cost table (authz/route_costs.py, authz/aws_prices.py): one row per route of
ROUTES and no other, every call priced, the arithmetic, the functions and their memory as in
template.yaml."""

from __future__ import annotations

import math
from decimal import Decimal
from functools import cache
from typing import Any

import pytest

from localcloud.template import transform_template
from tenant_security.authz.aws_prices import BILLING, FUNCTION_MEMORY_MB, PRICES, PriceKind
from tenant_security.authz.route_costs import (
    AUDIT_RECORD,
    AUTHORIZER,
    DEFAULT_COST,
    REQUEST_PATH_CALLS,
    ROUTE_CALLS,
    cost_of,
)
from tenant_security.authz.routes import ROUTES, rule_for
from tests.support.cloud import REAL_TEMPLATE


@cache
def template() -> dict[str, Any]:
    return dict(transform_template(REAL_TEMPLATE, {}, "us-east-1")[0])


def test_every_route_has_a_cost_row() -> None:
    missing = [f"{r.method} {r.resource}" for r in ROUTES if (r.method, r.resource) not in ROUTE_CALLS]
    assert not missing, (
        f"routes without a row in authz/route_costs.py ROUTE_CALLS (they cost the default, "
        f"one item read, until they get one): {missing}"
    )


def test_every_cost_row_is_a_route() -> None:
    stale = [f"{m} {r}" for m, r in ROUTE_CALLS if rule_for(m, r) is None]
    assert not stale, f"rows of ROUTE_CALLS for routes authz/routes.py does not have: {stale}"


def test_every_call_is_priced_and_every_price_named() -> None:
    rows = [*ROUTE_CALLS.values()]
    operations = {op for row in rows for op in row.calls} | set(REQUEST_PATH_CALLS)
    operations |= set(AUTHORIZER.calls) | set(AUDIT_RECORD.calls)
    for row in rows:
        for invocation in row.workflow.invocations if row.workflow else ():
            operations |= set(invocation.calls)
    assert operations - set(BILLING) == set()
    assert set(PRICES) == set(PriceKind)
    assert all(price >= 0 for price in PRICES.values())


def test_a_route_costs_its_calls_at_list_prices() -> None:
    """GET /tenants/{t}/quotas adds nothing to the request path: its cost by hand."""
    cost = cost_of("GET", "/tenants/{tenant_id}/quotas")
    million = Decimal(1_000_000)
    gb_s = Decimal("0.0000166667")
    by_hand = (
        Decimal("3.50") / million  # API Gateway
        + 3 * Decimal("0.20") / million  # authorizer, admin function, audit writer
        + (
            Decimal("0.5") * Decimal("0.05")
            + Decimal("0.5") * Decimal("0.1")
            + Decimal("0.5") * Decimal("0.1")
        )
        * gb_s  # their GB-seconds: 512 MB for 50, 100 and 100 ms
        + (2 + 3 + 2) * Decimal("0.125") / million  # reads: authorizer 2, request path 3, writer 2
        + (1 + 1 + 4) * Decimal("0.625") / million  # writes: quota with lease, release, chain (4 units)
        + Decimal("1.00") / million  # the activity event
        + Decimal("0.005") / 1000  # its write-once S3 record
    )
    assert cost.usd == by_hand
    assert cost.nanodollars == math.ceil(by_hand * 1_000_000_000)  # rounded up
    assert cost.units()[PriceKind.API_GATEWAY_REQUEST] == 1


def test_the_request_path_calls_are_shared_and_the_handlers_add_theirs() -> None:
    quotas = cost_of("GET", "/tenants/{tenant_id}/quotas").request_calls()
    secret = cost_of("GET", "/tenants/{tenant_id}/secrets/{name}").request_calls()
    assert quotas["dynamodb:UpdateItem"] == 2  # the one quota write (with the lease), the release
    assert secret - quotas == {"kms:Decrypt": 1, "secretsmanager:GetSecretValue": 1}


def test_workflows_and_heavy_routes_cost_more() -> None:
    read = cost_of("GET", "/tenants/{tenant_id}").usd
    assert cost_of("POST", "/tenants").units()[PriceKind.STEP_FUNCTIONS_TRANSITION] == 10
    assert cost_of("POST", "/tenants").usd > 10 * read
    assert cost_of("DELETE", "/tenants/{tenant_id}").units()[PriceKind.STEP_FUNCTIONS_TRANSITION] == 3
    assert cost_of("GET", "/tenants/{tenant_id}/audit/verify").usd > 10 * read
    assert cost_of("PUT", "/tenants/{tenant_id}/files/{key+}").usd > read


def test_a_route_without_a_row_costs_one_item_read() -> None:
    assert (
        cost_of("GET", "/not/a/route").usd == DEFAULT_COST.usd == cost_of("GET", "/tenants/{tenant_id}").usd
    )
    rule = rule_for("GET", "/tenants/{tenant_id}")
    assert rule is not None
    assert rule.cost.nanodollars == DEFAULT_COST.nanodollars


def _function_of(spec: dict[str, Any]) -> str:
    text = str(spec.get("x-amazon-apigateway-integration", {}))
    (name,) = [f for f in FUNCTION_MEMORY_MB if f"{f}.Arn" in text or f"'{f}'" in text]
    return name


@pytest.mark.parametrize("route", sorted(ROUTE_CALLS), ids=lambda r: f"{r[0]} {r[1]}")
def test_the_row_names_the_function_that_serves_the_route(route: tuple[str, str]) -> None:
    (api,) = [r for r in template()["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    method, resource = route
    spec = api["Properties"]["Body"]["paths"][resource][method.lower()]
    assert _function_of(spec) == ROUTE_CALLS[route].function


def test_function_memory_is_the_templates() -> None:
    resources = template()["Resources"]
    for function, memory in FUNCTION_MEMORY_MB.items():
        assert resources[function]["Properties"].get("MemorySize", 128) == memory, function
