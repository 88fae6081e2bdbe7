"""Incident response: suspend and reinstate a tenant, end every session.

Suspension takes effect at once for sessions (all revoked: the request middleware refuses them on
the next request) and for new decisions (status SUSPENDED: the authorizer denies); an answer API
Gateway cached before lives at most ``AuthorizerCacheTtl`` seconds, and that caller's session is
gone already. Each step is a `Security Alert`, which the platform forwards to the alert topic.
"""

from __future__ import annotations

from typing import Any, Protocol

from tenant_security.activity import EventPublisher
from tenant_security.alerts import AlertKind
from tenant_security.errors import Conflict, NotFound
from tenant_security.tenants import TenantProfile, TenantStatus, TenantStore


class SessionRevoker(Protocol):
    def revoke_all(self, tenant_id: str, username: str | None = None) -> int: ...


class Forgetful(Protocol):
    def forget(self, tenant_id: str) -> None: ...


class IncidentResponse:
    """Suspends and reinstates tenants (stores given, not found); ``actor`` is (tenant, user)."""

    def __init__(
        self,
        tenants: TenantStore,
        cache: Forgetful,
        sessions: SessionRevoker,
        publisher: EventPublisher,
        platform_tenant: str,
    ) -> None:
        self.tenants = tenants
        self.cache = cache
        self.sessions = sessions
        self.publisher = publisher
        self.platform_tenant = platform_tenant

    def _record(self, tenant_id: str) -> TenantProfile:
        if tenant_id == self.platform_tenant:
            raise Conflict("the platform tenant cannot be suspended or reinstated")
        record = self.tenants.get(tenant_id)
        if record is None:
            raise NotFound(f"no tenant {tenant_id!r}")
        return record

    def suspend(self, tenant_id: str, actor: tuple[str, str], reason: str) -> dict[str, Any]:
        """SUSPENDED, every session revoked; idempotent for a suspended tenant."""
        record = self._record(tenant_id)
        if record.status != TenantStatus.SUSPENDED:
            self.tenants.set_status(
                tenant_id, TenantStatus.SUSPENDED, reason=reason, allowed_from=(TenantStatus.ACTIVE,)
            )
        self.cache.forget(tenant_id)
        revoked = self.sessions.revoke_all(tenant_id)
        self._alert(tenant_id, AlertKind.TENANT_SUSPENDED, actor, reason=reason, sessions_revoked=revoked)
        return {"tenant_id": tenant_id, "status": TenantStatus.SUSPENDED, AlertKind.SESSIONS_REVOKED: revoked}

    def reinstate(self, tenant_id: str, actor: tuple[str, str], reason: str) -> dict[str, Any]:
        """ACTIVE again (from SUSPENDED); users sign in anew."""
        record = self._record(tenant_id)
        if record.status != TenantStatus.ACTIVE:
            self.tenants.set_status(
                tenant_id, TenantStatus.ACTIVE, reason=reason, allowed_from=(TenantStatus.SUSPENDED,)
            )
        self.cache.forget(tenant_id)
        self._alert(tenant_id, AlertKind.TENANT_REINSTATED, actor, reason=reason, outcome="success")
        return {"tenant_id": tenant_id, "status": TenantStatus.ACTIVE}

    def revoke_sessions(self, tenant_id: str, actor: tuple[str, str]) -> int:
        """End every session of the tenant (an alert records who did it)."""
        revoked = self.sessions.revoke_all(tenant_id)
        self._alert(tenant_id, AlertKind.SESSIONS_REVOKED, actor, sessions_revoked=revoked, outcome="success")
        return revoked

    def _alert(self, tenant_id: str, alert: AlertKind, actor: tuple[str, str], **detail: Any) -> None:
        actor_tenant, user = actor
        self.publisher.security_alert(tenant_id, alert, actor_tenant=actor_tenant, user=user, **detail)
