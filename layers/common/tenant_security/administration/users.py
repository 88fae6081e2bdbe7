"""User administration of a tenant: create (with a one-time password), list, delete, roles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenant_security.actors import Actor
from tenant_security.authz.rbac import PLATFORM_ADMIN, TENANT_ADMIN, known_roles
from tenant_security.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tenant_security.identity.passwords import generate_password, hash_password
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.users import User, UserStore

if TYPE_CHECKING:
    from tenant_security.tenants import TenantProfile


class UserAdmin:
    """What tenant-admins (and platform-admins) do to users."""

    def __init__(self, users: UserStore, sessions: SessionStore, platform_tenant: str) -> None:
        self.users = users
        self.sessions = sessions
        self.platform_tenant = platform_tenant

    def _check_roles(self, actor: Actor, tenant: TenantProfile, roles: list[str]) -> None:
        unknown = sorted(set(roles) - known_roles(tenant.custom_roles))
        if unknown:
            raise ValidationFailed(
                "unknown roles", fields=[{"field": "roles", "message": f"unknown: {unknown}"}]
            )
        if PLATFORM_ADMIN in roles and (tenant.tenant_id != self.platform_tenant or not actor.platform_admin):
            raise Forbidden("platform-admin is granted only in the platform tenant, by a platform-admin")

    def create(
        self, actor: Actor, tenant: TenantProfile, username: str, email: str, roles: list[str]
    ) -> dict[str, Any]:
        """A new user with a one-time password (returned once; MFA enrolment and a password
        change follow at first sign-in)."""
        self._check_roles(actor, tenant, roles)
        password = generate_password()
        self.users.create(
            User(
                tenant_id=tenant.tenant_id,
                username=username,
                email=email,
                roles=sorted(set(roles)),
                password_hash=hash_password(password),
                password_change_required=True,
            )
        )
        return {"username": username, "temporary_password": password}

    def list_users(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's users, by name (no hashes or secrets)."""
        return [u.public() for u in sorted(self.users.list_users(tenant_id), key=lambda u: u.username)]

    def delete(self, actor: Actor, tenant_id: str, username: str) -> None:
        """Remove a user and end their sessions; never the tenant's last active tenant-admin (409)."""
        if tenant_id == actor.tenant_id and username == actor.user:
            raise Conflict("you cannot delete yourself")
        self.users.delete(tenant_id, username, keep_one=TENANT_ADMIN)
        self.sessions.revoke_all(tenant_id, username)

    def set_roles(
        self, actor: Actor, tenant: TenantProfile, username: str, roles: list[str]
    ) -> dict[str, Any]:
        """Replace a user's roles; their sessions end so the new roles apply at the next sign-in.
        The tenant's last active tenant-admin keeps the role (409): someone must administer it."""
        self._check_roles(actor, tenant, roles)
        self.users.set_roles(tenant.tenant_id, username, sorted(set(roles)), keep_one=TENANT_ADMIN)
        self.sessions.revoke_all(tenant.tenant_id, username)
        user = self.users.get(tenant.tenant_id, username)
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user.public()
