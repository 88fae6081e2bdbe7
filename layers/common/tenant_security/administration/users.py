"""User administration of a tenant: create (with a one-time password), list, delete, roles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenant_security.actors import Actor
from tenant_security.authz.grants import judge_grant
from tenant_security.authz.rbac import TENANT_ADMIN
from tenant_security.errors import Conflict, NotFound
from tenant_security.identity.passwords import generate_password, hash_password
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.users import GuardFailed, User, UserStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from tenant_security.authz.role_store import RoleStore
    from tenant_security.tenants import TenantProfile

# A grant of a custom role that met a change of the tenant's roles (or another such grant) reads
# them again: this often (as administration/roles.py's ATTEMPTS).
_GRANT_ATTEMPTS = 10


class UserAdmin:
    """What tenant-admins (and platform-admins) do to users."""

    def __init__(
        self,
        users: UserStore,
        sessions: SessionStore,
        platform_tenant: str,
        custom_roles: RoleStore | None = None,
    ) -> None:
        """``custom_roles``: where a grant of a custom role reads the tenant's roles and the
        guard that keeps it from meeting the role's deletion (without it, the profile's roles)."""
        self.users = users
        self.sessions = sessions
        self.platform_tenant = platform_tenant
        self.custom_roles = custom_roles

    def _check_roles(
        self, actor: Actor, tenant: TenantProfile, roles: list[str]
    ) -> TransactWriteItemTypeDef | None:
        """The grant judged (:func:`tenant_security.authz.grants.judge_grant`); a grant of a custom
        role returns the guard its write carries (:meth:`RoleStore.grant_guard`)."""
        read = judge_grant(actor, tenant, roles, self.platform_tenant, self.custom_roles)
        return self.custom_roles.grant_guard(read) if read is not None and self.custom_roles else None

    def create(
        self, actor: Actor, tenant: TenantProfile, username: str, email: str, roles: list[str]
    ) -> dict[str, Any]:
        """A new user with a one-time password (returned once; MFA enrolment and a password
        change follow at first sign-in)."""
        guard = self._check_roles(actor, tenant, roles)  # before the password's hashing work
        password = generate_password()
        user = User(
            tenant_id=tenant.tenant_id,
            username=username,
            email=email,
            roles=sorted(set(roles)),
            password_hash=hash_password(password),
            password_change_required=True,
        )
        for _attempt in range(_GRANT_ATTEMPTS):
            try:
                self.users.create(user, guard=guard)
            except GuardFailed:
                guard = self._check_roles(actor, tenant, roles)  # the roles changed: judge it again
                continue
            return {"username": username, "temporary_password": password}
        raise GuardFailed("the tenant's roles keep changing; try again")

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
        for _attempt in range(_GRANT_ATTEMPTS):
            guard = self._check_roles(actor, tenant, roles)
            try:
                self.users.set_roles(
                    tenant.tenant_id, username, sorted(set(roles)), keep_one=TENANT_ADMIN, guard=guard
                )
            except GuardFailed:
                continue  # the tenant's roles changed meanwhile: judge the grant again
            break
        else:
            raise GuardFailed("the tenant's roles keep changing; try again")
        self.sessions.revoke_all(tenant.tenant_id, username)
        user = self.users.get(tenant.tenant_id, username)
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user.public()
