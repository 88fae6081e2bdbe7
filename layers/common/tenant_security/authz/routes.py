"""The one table of routes behind the authorizer: each method and resource mapped to an action.

Resources are written as in template.yaml. A route that a handler serves behind the authorizer
and that is missing here, or a rule here that no handler serves, fails the test suite
(tests/unit/test_rbac_and_routes.py): no route is added without deciding who may call it, and no
permission stays in the table for a route nobody wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenant_security.authz.route_costs import RouteCost, cost_of

TENANT_PARAM = "{tenant_id}"


@dataclass(frozen=True)
class RouteRule:
    method: str
    resource: str
    action: str
    # Further actions the caller must hold as well (erasing a subject is deleting a user too).
    also: tuple[str, ...] = ()

    @property
    def tenant_scoped(self) -> bool:
        return TENANT_PARAM in self.resource

    @property
    def cost(self) -> RouteCost:
        """What one request of the route costs in AWS, in US dollars (the one table,
        authz/route_costs.py; the quotas' ``cost`` section counts it)."""
        return cost_of(self.method, self.resource)

    @property
    def actions(self) -> tuple[str, ...]:
        """Every action the route needs."""
        return (self.action, *self.also)


ROUTES: tuple[RouteRule, ...] = (
    RouteRule("POST", "/auth/logout", "auth:Logout"),
    RouteRule("GET", "/auth/sessions", "auth:ListSessions"),
    RouteRule("DELETE", "/auth/sessions/{session_id}", "auth:EndSession"),
    RouteRule("POST", "/tenants", "tenants:Create"),
    RouteRule("GET", "/tenants/{tenant_id}", "tenants:Read"),
    RouteRule("DELETE", "/tenants/{tenant_id}", "tenants:Delete"),
    RouteRule("POST", "/tenants/{tenant_id}/suspend", "tenants:Suspend"),
    RouteRule("POST", "/tenants/{tenant_id}/reinstate", "tenants:Reinstate"),
    RouteRule("GET", "/tenants/{tenant_id}/quotas", "quotas:Read"),
    RouteRule("PUT", "/tenants/{tenant_id}/quotas", "quotas:Write"),
    RouteRule("GET", "/tenants/{tenant_id}/quotas/usage", "quotas:Read"),
    RouteRule("GET", "/tenants/{tenant_id}/policies", "policies:Read"),
    RouteRule("PUT", "/tenants/{tenant_id}/policies", "policies:Write"),
    RouteRule("PATCH", "/tenants/{tenant_id}/policies", "policies:Write"),
    RouteRule("GET", "/tenants/{tenant_id}/policies/history", "policies:History"),
    RouteRule("POST", "/tenants/{tenant_id}/users", "users:Create"),
    RouteRule("GET", "/tenants/{tenant_id}/users", "users:List"),
    RouteRule("DELETE", "/tenants/{tenant_id}/users/{username}", "users:Delete"),
    RouteRule("PUT", "/tenants/{tenant_id}/users/{username}/roles", "users:WriteRoles"),
    RouteRule("GET", "/tenants/{tenant_id}/roles", "roles:Read"),
    RouteRule("PUT", "/tenants/{tenant_id}/roles/{role}", "roles:Write"),
    RouteRule("DELETE", "/tenants/{tenant_id}/roles/{role}", "roles:Delete"),
    RouteRule("POST", "/tenants/{tenant_id}/clients", "clients:Create"),
    RouteRule("GET", "/tenants/{tenant_id}/clients", "clients:List"),
    RouteRule("DELETE", "/tenants/{tenant_id}/clients/{client_id}", "clients:Delete"),
    RouteRule("POST", "/tenants/{tenant_id}/clients/{client_id}/secret", "clients:Rotate"),
    RouteRule("DELETE", "/tenants/{tenant_id}/sessions", "sessions:Revoke"),
    RouteRule("GET", "/tenants/{tenant_id}/sessions", "sessions:List"),
    RouteRule("DELETE", "/tenants/{tenant_id}/users/{username}/sessions", "sessions:Revoke"),
    RouteRule("GET", "/tenants/{tenant_id}/files", "files:List"),
    RouteRule("PUT", "/tenants/{tenant_id}/files/{key+}", "files:Write"),
    RouteRule("GET", "/tenants/{tenant_id}/files/{key+}", "files:Read"),
    RouteRule("DELETE", "/tenants/{tenant_id}/files/{key+}", "files:Delete"),
    RouteRule("POST", "/tenants/{tenant_id}/uploads", "files:Write"),
    RouteRule("POST", "/tenants/{tenant_id}/uploads/{upload_id}/complete", "files:Write"),
    RouteRule("POST", "/tenants/{tenant_id}/downloads", "files:Read"),
    RouteRule("POST", "/tenants/{tenant_id}/records", "records:Write"),
    RouteRule("GET", "/tenants/{tenant_id}/records/{record_id}", "records:Read"),
    RouteRule("PUT", "/tenants/{tenant_id}/secrets/{name}", "secrets:Write"),
    RouteRule("GET", "/tenants/{tenant_id}/secrets/{name}", "secrets:Read"),
    RouteRule("GET", "/tenants/{tenant_id}/audit", "audit:Read"),
    RouteRule("GET", "/tenants/{tenant_id}/audit/verify", "audit:Verify"),
    RouteRule("GET", "/tenants/{tenant_id}/audit/export", "audit:Export"),
    RouteRule("GET", "/tenants/{tenant_id}/audit/checkpoint", "audit:Verify"),
    RouteRule("GET", "/tenants/{tenant_id}/audit/records/{sequence}", "audit:Read"),
    RouteRule("GET", "/tenants/{tenant_id}/audit/proofs/inclusion", "audit:Verify"),
    RouteRule("GET", "/tenants/{tenant_id}/audit/proofs/consistency", "audit:Verify"),
    RouteRule("GET", "/tenants/{tenant_id}/reports/sox", "reports:Read"),
    RouteRule("GET", "/tenants/{tenant_id}/reports/{framework}", "reports:Read"),
    RouteRule("GET", "/tenants/{tenant_id}/gdpr/subjects/{username}", "gdpr:Export"),
    RouteRule(
        "DELETE", "/tenants/{tenant_id}/gdpr/subjects/{username}", "gdpr:Erase", also=("users:Delete",)
    ),
)


def behind_the_authorizer(event: Mapping[str, Any]) -> bool:
    """True for an API Gateway event of a route of the table (one behind the authorizer)."""
    return rule_for(str(event.get("httpMethod")), str(event.get("resource"))) is not None


def rule_for(method: str, resource: str) -> RouteRule | None:
    """The rule of a route, or None."""
    for rule in ROUTES:
        if rule.method == method and rule.resource == resource:
            return rule
    return None
