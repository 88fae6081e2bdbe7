"""Red team 19b: the token endpoint is rate-limited at the edge like sign-in.

The web ACL's sign-in rule (a rate per address before Lambda runs) scopes down to URI paths that
contain ``/auth/``. POST /oauth2/token is the other unauthenticated credential check ("throttled
like every unauthenticated step", issue 19), but its path holds no ``/auth/``: a flood of guesses
reaches the auth API's Lambda (and its DynamoDB throttle counters) with no edge limit at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.template import transform_template
from tenant_security.identity.client_credentials import TOKEN_PATH
from tests.support.cloud import REAL_TEMPLATE


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return transform_template(REAL_TEMPLATE, {}, "us-east-1")[0]


def _byte_matches(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ByteMatchStatement inside ``statement`` (through Or/And/Not)."""
    found = []
    if "ByteMatchStatement" in statement:
        found.append(statement["ByteMatchStatement"])
    for combinator in ("OrStatement", "AndStatement"):
        for inner in statement.get(combinator, {}).get("Statements", []):
            found += _byte_matches(inner)
    return found


def _matches(match: dict[str, Any], path: str) -> bool:
    needle, how = str(match["SearchString"]), match["PositionalConstraint"]
    return {
        "CONTAINS": needle in path,
        "STARTS_WITH": path.startswith(needle),
        "ENDS_WITH": path.endswith(needle),
        "EXACTLY": path == needle,
    }.get(how, False)


def test_the_edge_rate_limit_covers_the_token_endpoint(cfn: dict[str, Any]) -> None:
    acl = next(r for r in cfn["Resources"].values() if r["Type"] == "AWS::WAFv2::WebACL")
    rule = next(r for r in acl["Properties"]["Rules"] if "RateBasedStatement" in r["Statement"])
    scope = rule["Statement"]["RateBasedStatement"]["ScopeDownStatement"]
    stage_path = f"/prod{TOKEN_PATH}"  # WAF sees the stage in the URI path
    assert any(_matches(m, "/prod/auth/login") for m in _byte_matches(scope))
    assert any(_matches(m, stage_path) for m in _byte_matches(scope))  # fails: only "/auth/"
