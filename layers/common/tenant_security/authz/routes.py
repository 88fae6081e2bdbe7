"""The one table of routes behind the authorizer: each method and resource mapped to an action.

Resources are written as in template.yaml. A route that a handler serves behind the authorizer
and that is missing here, or a rule here that no handler serves, fails the test suite
(tests/unit/test_rbac_and_routes.py): no route is added without deciding who may call it, and no
permission stays in the table for a route nobody wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

TENANT_PARAM = "{tenant_id}"


@dataclass(frozen=True)
class RouteRule:
    method: str
    resource: str
    action: str
    cost: float = 1.0  # cost units a request of this route counts against the daily cost limit
    # Further actions the caller must hold as well (erasing a subject is deleting a user too).
    also: tuple[str, ...] = ()

    @property
    def tenant_scoped(self) -> bool:
        return TENANT_PARAM in self.resource

    @property
    def actions(self) -> tuple[str, ...]:
        """Every action the route needs."""
        return (self.action, *self.also)


ROUTES: tuple[RouteRule, ...] = (
    RouteRule("POST", "/auth/logout", "auth:Logout"),
    RouteRule("POST", "/tenants", "tenants:Create", cost=10),
    RouteRule("GET", "/tenants/{tenant_id}", "tenants:Read"),
    RouteRule("DELETE", "/tenants/{tenant_id}", "tenants:Delete", cost=10),
    RouteRule("POST", "/tenants/{tenant_id}/suspend", "tenants:Suspend"),
    RouteRule("POST", "/tenants/{tenant_id}/reinstate", "tenants:Reinstate"),
    RouteRule("GET", "/tenants/{tenant_id}/quotas", "quotas:Read"),
    RouteRule("PUT", "/tenants/{tenant_id}/quotas", "quotas:Write"),
    RouteRule("GET", "/tenants/{tenant_id}/quotas/usage", "quotas:Read"),
    RouteRule("POST", "/tenants/{tenant_id}/users", "users:Create"),
    RouteRule("GET", "/tenants/{tenant_id}/users", "users:List"),
    RouteRule("DELETE", "/tenants/{tenant_id}/users/{username}", "users:Delete"),
    RouteRule("PUT", "/tenants/{tenant_id}/users/{username}/roles", "users:WriteRoles"),
    RouteRule("DELETE", "/tenants/{tenant_id}/sessions", "sessions:Revoke"),
    RouteRule("GET", "/tenants/{tenant_id}/files", "files:List"),
    RouteRule("PUT", "/tenants/{tenant_id}/files/{key+}", "files:Write", cost=2),
    RouteRule("GET", "/tenants/{tenant_id}/files/{key+}", "files:Read"),
    RouteRule("DELETE", "/tenants/{tenant_id}/files/{key+}", "files:Delete"),
    RouteRule("POST", "/tenants/{tenant_id}/uploads", "files:Write"),
    RouteRule("POST", "/tenants/{tenant_id}/uploads/{upload_id}/complete", "files:Write", cost=2),
    RouteRule("POST", "/tenants/{tenant_id}/downloads", "files:Read"),
    RouteRule("POST", "/tenants/{tenant_id}/records", "records:Write"),
    RouteRule("GET", "/tenants/{tenant_id}/records/{record_id}", "records:Read"),
    RouteRule("PUT", "/tenants/{tenant_id}/secrets/{name}", "secrets:Write"),
    RouteRule("GET", "/tenants/{tenant_id}/secrets/{name}", "secrets:Read"),
    RouteRule("GET", "/tenants/{tenant_id}/audit", "audit:Read"),
    RouteRule("GET", "/tenants/{tenant_id}/audit/verify", "audit:Verify", cost=10),
    RouteRule("GET", "/tenants/{tenant_id}/reports/sox", "reports:Read", cost=10),
    RouteRule("GET", "/tenants/{tenant_id}/reports/{framework}", "reports:Read", cost=10),
    RouteRule("GET", "/tenants/{tenant_id}/gdpr/subjects/{username}", "gdpr:Export", cost=5),
    RouteRule(
        "DELETE", "/tenants/{tenant_id}/gdpr/subjects/{username}", "gdpr:Erase", also=("users:Delete",)
    ),
)


def rule_for(method: str, resource: str) -> RouteRule | None:
    """The rule of a route, or None."""
    for rule in ROUTES:
        if rule.method == method and rule.resource == resource:
            return rule
    return None
