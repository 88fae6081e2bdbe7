"""README's table of what each route costs AWS per million requests (authz/route_costs.py at the
list prices of authz/aws_prices.py). ``python -m tenant_security_tools.cost_table`` prints it;
tests/unit/test_cost_table.py fails while README's copy differs."""

from __future__ import annotations

from decimal import Decimal

from tenant_security.authz.aws_prices import PRICES, PriceKind
from tenant_security.authz.route_costs import ROUTE_CALLS, cost_of

BEGIN, END = "<!-- route-costs:begin -->", "<!-- route-costs:end -->"
MILLION = Decimal(1_000_000)
# The columns besides the total: where the money goes, by service.
SERVICES = {
    "API Gateway": (PriceKind.API_GATEWAY_REQUEST,),
    "Lambda": (PriceKind.LAMBDA_REQUEST, PriceKind.LAMBDA_GB_SECOND),
    "DynamoDB": (PriceKind.DYNAMODB_WRITE_UNIT, PriceKind.DYNAMODB_READ_UNIT),
}


def _dollars(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def markdown() -> str:
    """The table, one row per route of ``ROUTE_CALLS``: US dollars per million requests, in all
    and for API Gateway, Lambda, DynamoDB and the rest (KMS, S3, EventBridge, Secrets Manager,
    Step Functions)."""
    head = ["route", "per million", *SERVICES, "other"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, resource in ROUTE_CALLS:
        cost = cost_of(method, resource)
        units = cost.units()
        by_kind = {kind: Decimal(n) * PRICES[kind] * MILLION for kind, n in units.items()}
        parts = [sum((by_kind.get(k, Decimal(0)) for k in kinds), Decimal(0)) for kinds in SERVICES.values()]
        total = cost.usd * MILLION
        other = total - sum(parts, Decimal(0))
        path = resource.replace("{tenant_id}", "{t}")
        cells = [f"{method} {path}", _dollars(total), *map(_dollars, parts), _dollars(other)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(BEGIN)
    print(markdown())
    print(END)
