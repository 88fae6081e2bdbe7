"""Roles, permissions and the one route table."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.template import transform_template
from tenant_security.authz.decision import policy_resource
from tenant_security.authz.rbac import BUILTIN_ROLES, SELF_SERVICE, TENANT_ACTIONS, is_allowed, permissions
from tenant_security.authz.routes import ROUTES, rule_for
from tests.support.cloud import REAL_TEMPLATE


def template_routes() -> list[tuple[str, str, bool]]:
    cfn = transform_template(REAL_TEMPLATE, {}, "us-east-1")[0]
    (api,) = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    out = []
    for path, methods in api["Properties"]["Body"]["paths"].items():
        for method, spec in methods.items():
            protected = spec.get("security") != [{"NONE": []}]
            out.append((method.upper(), path, protected))
    return out


def test_every_protected_route_of_the_template_has_an_action() -> None:
    missing = [(m, p) for m, p, protected in template_routes() if protected and rule_for(m, p) is None]
    assert not missing, f"routes without an entry in tenant_security.authz.routes: {missing}"


def test_the_route_table_names_exactly_the_routes_handlers_serve_behind_the_authorizer() -> None:
    # Both ways: a handler route without a rule has no decided caller, and a rule without a
    # handler is a permission nobody can use (or a route someone forgot to write).
    from tenant_security_tools.openapi import build_openapi

    document = build_openapi(REAL_TEMPLATE)
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "security" in operation
    }
    table = {(r.method, r.resource.replace("+}", "}")) for r in ROUTES}
    assert not served - table, f"served behind the authorizer, no rule in the route table: {served - table}"
    assert not table - served, f"in the route table, served by no handler: {table - served}"


def test_the_route_table_has_no_duplicates() -> None:
    keys = [(r.method, r.resource) for r in ROUTES]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        ("viewer", "files:Read", True),
        ("viewer", "files:Write", False),
        ("developer", "records:Write", True),
        ("developer", "users:Create", False),
        ("auditor", "audit:Verify", True),
        ("auditor", "secrets:Read", False),
        ("security-admin", "policies:Write", True),
        ("security-admin", "users:Create", False),
        ("tenant-admin", "users:Create", True),
        ("tenant-admin", "policies:Write", True),
        ("tenant-admin", "tenants:Create", False),
        ("tenant-admin", "tenants:Suspend", False),
        ("tenant-admin", "quotas:Write", False),
        ("platform-admin", "tenants:Create", True),
        ("nobody", "files:Read", False),
    ],
)
def test_builtin_roles(role: str, action: str, allowed: bool) -> None:
    assert is_allowed(action, permissions([role], {})) is allowed


def test_custom_roles_never_reach_platform_actions() -> None:
    custom = {"everything": ["*"], "files-only": ["files:*"]}
    granted = permissions(["everything"], custom)
    assert "*" not in granted
    assert is_allowed("users:Create", granted)
    assert not is_allowed("tenants:Create", granted)
    assert not is_allowed("quotas:Write", granted)
    assert set(permissions(["files-only"], custom)) == {
        "files:Read",
        "files:Write",
        "files:Delete",
        "files:List",
        *SELF_SERVICE,  # what every holder of a role does about their own sessions
    }


def test_every_role_may_log_out() -> None:
    assert all(is_allowed("auth:Logout", permissions([role], {})) for role in BUILTIN_ROLES)


@pytest.mark.parametrize("action", SELF_SERVICE)
def test_every_role_custom_ones_too_may_see_and_end_its_own_sessions(action: str) -> None:
    custom = {"nothing-much": ["files:Read"], "no-match": ["no-such:Action"]}
    for role in [*BUILTIN_ROLES, *custom]:
        assert is_allowed(action, permissions([role], custom)), role
    assert not is_allowed(action, permissions(["unknown-role"], custom))  # no role, no session routes
    assert action not in TENANT_ACTIONS  # so a custom role's own patterns never grant it


def test_only_tenant_and_security_admins_hold_the_tenant_session_routes() -> None:
    holders = {
        role
        for role in BUILTIN_ROLES
        if all(is_allowed(a, permissions([role], {})) for a in ("sessions:List", "sessions:Revoke"))
    }
    assert holders == {"platform-admin", "tenant-admin", "security-admin"}


@pytest.mark.parametrize(
    ("resource", "tenant", "expected"),
    [
        ("/tenants/{tenant_id}/files/{key+}", "acme", "/tenants/acme/files/*"),
        ("/tenants/{tenant_id}/users/{username}/roles", "acme", "/tenants/acme/users/*/roles"),
        ("/tenants/{tenant_id}", "*", "/tenants/*"),
        ("/auth/logout", "acme", "/auth/logout"),
    ],
)
def test_policy_resources(resource: str, tenant: str, expected: str) -> None:
    (rule,) = [r for r in ROUTES if r.resource == resource][:1] or [None]
    assert rule is not None
    assert policy_resource(rule, tenant) == expected


def test_template_routes_listing_is_not_empty() -> None:
    routes: list[Any] = template_routes()
    assert ("POST", "/auth/login", False) in routes
    assert ("GET", "/tenants/{tenant_id}/users", True) in routes
