"""A tenant's roles through the admin API: list the built-in and custom ones, define (or
redefine) and delete custom roles.

The bound (:mod:`tenant_security.authz.custom_roles`): a custom role grants tenant-scoped actions
only, never one its author does not hold, judged against the roles as stored at the revision the
write conditions on (:mod:`tenant_security.authz.role_store`). A role in use is not deleted (409,
naming its holders); nor is one a segregation-of-duties pair of the policy names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenant_security.authz.custom_roles import (
    MAX_CUSTOM_ROLES,
    check_manageable,
    check_role_name,
    grantable,
    held_actions,
)
from tenant_security.authz.rbac import BUILTIN_ROLES, PLATFORM_ADMIN, SELF_SERVICE, is_allowed, permissions
from tenant_security.authz.role_store import RoleSet, RoleStore, StaleRoles
from tenant_security.authz.routes import ROUTES
from tenant_security.context import TenantNotActive
from tenant_security.errors import Conflict, Forbidden, NotFound

if TYPE_CHECKING:
    from tenant_security.callers import TenantContext

# A write that met another change of the roles reads them again: this many times in all. Each
# round of writers from one revision lets one land, so this many changes at once all land; more
# may get a 409 ``roles_changed`` (nothing written; retry).
ATTEMPTS = 10
# A refused deletion names at most this many of the role's holders (and says how many there are).
NAMED_HOLDERS = 20
_EVERY_ACTION = sorted({r.action for r in ROUTES} | set(SELF_SERVICE))


@dataclass(frozen=True)
class RoleChange:
    """What a PUT or DELETE did: the role as stored (None once deleted) and its old and new
    actions, for the request's audit record."""

    name: str
    old: list[str] | None
    new: list[str] | None
    view: dict[str, Any] | None = None

    def audit_changes(self) -> list[dict[str, Any]]:
        """``[{field: "roles.<name>", old, new}]``; empty when nothing changed."""
        return (
            []
            if self.old == self.new
            else [{"field": f"roles.{self.name}", "old": self.old, "new": self.new}]
        )


class RoleInUse(Conflict):
    """The role is held by users (or named by the policy): it is not deleted."""

    code = "role_in_use"


class TooManyRoles(Conflict):
    """The tenant has :data:`MAX_CUSTOM_ROLES` custom roles already."""

    code = "too_many_roles"


def _view(name: str, patterns: Sequence[str], builtin: bool, custom: dict[str, list[str]]) -> dict[str, Any]:
    """A role as GET shows it: its patterns and the concrete actions they grant (a custom role's
    with the self-service actions every role has)."""
    if builtin:
        actions = [a for a in _EVERY_ACTION if is_allowed(a, patterns)]
    else:
        actions = permissions([name], custom)
    return {"name": name, "builtin": builtin, "permissions": list(patterns), "actions": sorted(set(actions))}


class RoleAdmin:
    """Lists, defines and deletes a tenant's custom roles."""

    def __init__(self, store: RoleStore, platform_tenant: str, forget: Callable[[str], None]) -> None:
        """``forget(tenant_id)``: drop this worker's cached profile after a change (this worker
        sees the change at once, the others within the tenant directory's age)."""
        self.store = store
        self.platform_tenant = platform_tenant
        self.forget = forget

    def list_roles(self, tenant_id: str) -> dict[str, Any]:
        """GET /tenants/{t}/roles: built-in roles (platform-admin in the platform tenant only),
        then custom ones, each with its patterns and the concrete actions they grant. Read now."""
        custom = self.store.read(tenant_id).roles
        builtin = [
            _view(name, patterns, True, custom)
            for name, patterns in BUILTIN_ROLES.items()
            if name != PLATFORM_ADMIN or tenant_id == self.platform_tenant
        ]
        return {"items": builtin + [_view(n, custom[n], False, custom) for n in sorted(custom)]}

    def put(self, caller: TenantContext, tenant_id: str, name: str, patterns: Sequence[str]) -> RoleChange:
        """PUT /tenants/{t}/roles/{role}: define or redefine the role as the concrete actions of
        ``patterns`` (the same definition again changes nothing). 400 for a bad name or a pattern
        that grants nothing, 409 for a built-in name, 403 beyond what the caller holds."""
        check_role_name(name)
        for _attempt in range(ATTEMPTS):
            read = self.store.read(tenant_id)
            held = self._held(caller, read)
            actions = list(grantable(patterns, held))
            current = read.roles.get(name)
            if current is not None:
                check_manageable(name, current, held)
                if sorted(current) == actions:  # the same role again: no new revision
                    return RoleChange(name, actions, actions, _view(name, actions, False, read.roles))
            elif len(read.roles) >= MAX_CUSTOM_ROLES:
                raise TooManyRoles(f"a tenant has at most {MAX_CUSTOM_ROLES} custom roles")
            roles = {**read.roles, name: actions}
            try:
                self.store.write(read, roles)
            except StaleRoles:
                continue  # another change landed first: judge this one against it
            self.forget(tenant_id)
            return RoleChange(name, current, actions, _view(name, actions, False, roles))
        raise StaleRoles("the tenant's roles keep changing; read them again and retry")

    def delete(self, caller: TenantContext, tenant_id: str, name: str) -> RoleChange:
        """DELETE /tenants/{t}/roles/{role}: 404 for no such role, 409 ``role_in_use`` while a
        user holds it or a segregation-of-duties pair names it."""
        check_role_name(name)
        for _attempt in range(ATTEMPTS):
            read = self.store.read(tenant_id)
            current = read.roles.get(name)
            if current is None:
                raise NotFound(f"no custom role {name!r}")
            check_manageable(name, current, self._held(caller, read))
            pairs = [list(p) for p in read.tenant.policies.compliance.segregation_of_duties if name in p]
            if pairs:
                raise RoleInUse(f"role {name!r} is named by the policy's segregation_of_duties: {pairs}")
            holders = self.store.holders(tenant_id, name)  # after the read: see role_store's notes
            if holders:
                named = ", ".join(holders[:NAMED_HOLDERS]) + (" ..." if len(holders) > NAMED_HOLDERS else "")
                raise RoleInUse(f"role {name!r} is held by {len(holders)} user(s): {named}")
            roles = {k: v for k, v in read.roles.items() if k != name}
            try:
                self.store.write(read, roles, policy_unchanged=True)
            except StaleRoles:
                continue  # a grant, a role or a policy changed meanwhile: look again
            self.forget(tenant_id)
            return RoleChange(name, list(current), None)
        raise StaleRoles("the tenant's roles keep changing; read them again and retry")

    def _held(self, caller: TenantContext, read: RoleSet) -> frozenset[str]:
        """What the caller holds in the tenant, with its custom roles as read now; 403 for a
        caller of another tenant who is not a platform-admin, 409 when the tenant is not ACTIVE."""
        own = read.tenant.tenant_id == caller.tenant_id
        if not own and not caller.platform_admin:  # (the middleware refused it already)
            raise Forbidden("not allowed for this tenant")
        if not read.tenant.active:
            raise TenantNotActive(f"the tenant is {read.tenant.status}: its roles do not change")
        return held_actions(caller.roles, caller.platform_admin, read.roles if own else {})
