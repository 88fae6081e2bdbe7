"""Who is calling, as the authorizer established it, and what the caller tenant's policy allows
of the request: the checks a cached authorizer answer cannot make against a policy that changed
since it was cached (the request middleware, :mod:`tenant_security.context`, makes them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenant_security.actors import Actor
from tenant_security.alerts import AlertKind
from tenant_security.authz.rbac import PLATFORM_ADMIN, permissions
from tenant_security.errors import Forbidden, Unauthorized
from tenant_security.identity.tokens import MFA_METHODS

if TYPE_CHECKING:
    from tenant_security.identity.sessions import Session
    from tenant_security.models.policies import SecurityPolicies
    from tenant_security.tenants import TenantProfile


@dataclass(frozen=True)
class TenantContext:
    tenant_id: str
    user: str
    roles: tuple[str, ...]
    session_id: str
    request_id: str
    source_ip: str | None
    platform_admin: bool
    # the token's authentication methods (RFC 8176), as the authorizer verified them
    amr: tuple[str, ...] = ()
    # when the caller's session began (epoch seconds), as the middleware read the session
    session_started_at: float | None = None
    # an API client's token (machine access): the client acting; ``user`` is its id too
    client_id: str | None = None

    @property
    def machine(self) -> bool:
        """True for an API client's request (no person, no session, no MFA)."""
        return self.client_id is not None

    def permissions(self, tenant: TenantProfile) -> list[str]:
        """The caller's permission patterns (platform-admin counts only in the platform tenant)."""
        roles = [r for r in self.roles if r != PLATFORM_ADMIN or self.platform_admin]
        return permissions(roles, tenant.custom_roles if tenant.tenant_id == self.tenant_id else {})

    @property
    def actor(self) -> Actor:
        """The caller as the logic below the handlers takes it."""
        return Actor(
            tenant_id=self.tenant_id,
            user=self.user,
            platform_admin=self.platform_admin,
            roles=self.roles,
            client_id=self.client_id,
        )

    def require_tenant(self, tenant_id: str) -> None:
        """Defence in depth behind the authorizer: the path tenant must be the caller's own."""
        if tenant_id != self.tenant_id and not self.platform_admin:
            raise Forbidden("not allowed for this tenant")


def tenant_context(event: Mapping[str, Any], platform_tenant: str) -> TenantContext:
    """The caller as the authorizer established it; 401 if there is no authorizer context."""
    request = event.get("requestContext") or {}
    authorizer = request.get("authorizer") or {}
    tenant_id, user = authorizer.get("tenant_id"), authorizer.get("user")
    if not tenant_id or not user:
        raise Unauthorized("no authorizer context")
    roles = tuple(r for r in str(authorizer.get("roles", "")).split(",") if r)
    amr = tuple(m for m in str(authorizer.get("amr", "")).split(",") if m)
    return TenantContext(
        client_id=str(authorizer["client_id"]) if authorizer.get("client_id") else None,
        tenant_id=str(tenant_id),
        user=str(user),
        roles=roles,
        session_id=str(authorizer.get("sid", "")),
        request_id=str(request.get("requestId", "")),
        source_ip=(request.get("identity") or {}).get("sourceIp"),
        platform_admin=tenant_id == platform_tenant and PLATFORM_ADMIN in roles,
        amr=amr,
    )


class PolicyRefusal(Forbidden):
    """The caller's tenant policy refuses this request (403; ``code`` names the rule)."""


def policy_refusal(policies: SecurityPolicies, context: TenantContext) -> AlertKind | None:
    """The rule of the caller tenant's policy that refuses ``context``'s request, if any: the
    checks a cached authorizer answer cannot make against a policy that changed since."""
    access = policies.access_control
    if context.machine:
        if not access.api_clients_allowed:
            return AlertKind.API_CLIENTS_NOT_ALLOWED
    elif access.mfa_required and not MFA_METHODS & set(context.amr):  # a client is no person
        return AlertKind.MFA_REQUIRED
    if not access.allows(context.source_ip):
        return AlertKind.SOURCE_IP_NOT_ALLOWED
    return None


def session_within_timeout(session: Session | None, policies: SecurityPolicies, now: float) -> bool:
    """True for a live session younger than the policy's session_timeout_minutes."""
    return session is not None and session.live_within(policies.access_control.session_timeout_minutes, now)
