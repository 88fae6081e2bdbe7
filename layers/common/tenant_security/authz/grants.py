"""Who may grant which roles: the one rule for a user's roles and an API client's alike.

A grant names known roles only (built-in or the tenant's custom ones as stored now), never
platform-admin outside the platform tenant or by anyone but a platform-admin, and never reaches
beyond its grantor: the roles granted hold no tenant-scoped action the grantor does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tenant_security.authz.custom_roles import held_actions, tenant_actions_of
from tenant_security.authz.rbac import BUILTIN_ROLES, PLATFORM_ADMIN, known_roles, permissions
from tenant_security.errors import Forbidden, ValidationFailed

if TYPE_CHECKING:
    from tenant_security.actors import Actor
    from tenant_security.authz.role_store import RoleSet, RoleStore
    from tenant_security.tenants import TenantProfile


def judge_grant(
    actor: Actor,
    tenant: TenantProfile,
    roles: Sequence[str],
    platform_tenant: str,
    custom_roles: RoleStore | None,
    field: str = "roles",
) -> RoleSet | None:
    """Refuse a grant of ``roles`` in ``tenant`` by ``actor`` that the rule above forbids.

    A grant of a custom role is judged on the roles as stored now (read consistently): the
    :class:`RoleSet` read is returned, so the write can hold only while it is unchanged
    (:meth:`RoleStore.grant_guard`, :meth:`RoleStore.grant_check`); None for built-in roles only.
    """
    if PLATFORM_ADMIN in roles and (tenant.tenant_id != platform_tenant or not actor.platform_admin):
        raise Forbidden("platform-admin is granted only in the platform tenant, by a platform-admin")
    custom, read = tenant.custom_roles, None
    if custom_roles is not None and set(roles) - set(BUILTIN_ROLES):
        read = custom_roles.read(tenant.tenant_id)
        custom = read.roles
    unknown = sorted(set(roles) - known_roles(custom))
    if unknown:
        raise ValidationFailed("unknown roles", fields=[{"field": field, "message": f"unknown: {unknown}"}])
    # A grant never reaches beyond its grantor (as a custom role's definition never does):
    # users:WriteRoles alone must not make tenant-admins, its holder among them.
    if actor.tenant_id != tenant.tenant_id and not actor.platform_admin:
        raise Forbidden("not allowed for this tenant")  # (the middleware says so first)
    held = held_actions(actor.roles, actor.platform_admin, custom)
    beyond = sorted(tenant_actions_of(permissions(roles, custom)) - held)
    if beyond:
        raise Forbidden(f"you cannot grant roles that hold what you do not: {', '.join(beyond)}")
    return read
