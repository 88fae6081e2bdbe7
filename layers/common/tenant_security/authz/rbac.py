"""Roles and their permissions (action patterns with ``*`` wildcards).

Built-in roles follow the route table ("role, at least", README "Identity and access"): a
tenant-admin may do everything tenant-scoped;
security-admin, auditor and developer hold separate duties (their overlap is what SOX's
segregation-of-duties check looks for); viewer reads. platform-admin exists only in the platform
tenant and may do everything, in every tenant. Tenants may define custom roles from tenant-scoped
actions only.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

from tenant_security.authz.routes import ROUTES, RouteRule

PLATFORM_ADMIN = "platform-admin"
TENANT_ADMIN = "tenant-admin"
SECURITY_ADMIN = "security-admin"
AUDITOR = "auditor"
DEVELOPER = "developer"
VIEWER = "viewer"

_PLATFORM_ONLY = ("tenants:Create", "tenants:Delete", "tenants:Suspend", "tenants:Reinstate", "quotas:Write")
TENANT_ACTIONS = frozenset(r.action for r in ROUTES if r.tenant_scoped) - set(_PLATFORM_ONLY)

# What every holder of a role may do about their own sessions: sign out, list them, end one. Not
# tenant-scoped, so a custom role's own patterns never grant them: permissions() adds them to it.
SELF_SERVICE = ("auth:Logout", "auth:ListSessions", "auth:EndSession")

# What an API client's token never does, whatever its roles: it has no session to end or list,
# and a machine credential never mints credentials nor grants privileges -- no API client, no
# user's one-time password, no user's roles, no custom role's permissions: a leaked secret must
# not be able to make itself (or a user it controls) a successor that outlives its deletion.
# A tenant's people do that, signed in with MFA.
NOT_FOR_MACHINES = frozenset(
    {
        *SELF_SERVICE,
        "clients:Create",
        "clients:Rotate",
        "clients:Delete",
        "clients:List",
        "users:Create",
        "users:WriteRoles",
        "roles:Write",
    }
)

BUILTIN_ROLES: dict[str, tuple[str, ...]] = {
    PLATFORM_ADMIN: ("*",),
    TENANT_ADMIN: (*sorted(TENANT_ACTIONS), *SELF_SERVICE),
    SECURITY_ADMIN: ("policies:*", "sessions:*", "secrets:*", "gdpr:*", "tenants:Read", *SELF_SERVICE),
    # the policy's document and its history: what an auditor checks the tenant against
    AUDITOR: ("audit:*", "reports:*", "tenants:Read", "policies:Read", "policies:History", *SELF_SERVICE),
    DEVELOPER: ("files:*", "records:*", *SELF_SERVICE),
    VIEWER: ("files:Read", "files:List", "records:Read", *SELF_SERVICE),
}


def known_roles(custom_roles: Mapping[str, Iterable[str]]) -> set[str]:
    """Every role a user of this tenant may hold."""
    return set(BUILTIN_ROLES) | set(custom_roles)


def permissions(roles: Iterable[str], custom_roles: Mapping[str, Iterable[str]]) -> list[str]:
    """The permission patterns of ``roles`` (unknown roles grant nothing)."""
    patterns: list[str] = []
    for role in roles:
        if role in BUILTIN_ROLES:
            patterns.extend(BUILTIN_ROLES[role])
        elif role in custom_roles:
            # Expanded to concrete actions: a custom role never reaches beyond the tenant's own.
            granted = list(custom_roles[role])
            patterns.extend(sorted(a for a in TENANT_ACTIONS if is_allowed(a, granted)))
            patterns.extend(a for a in SELF_SERVICE if a not in patterns)
    return patterns


def is_allowed(action: str, patterns: Iterable[str]) -> bool:
    """True when some pattern grants ``action``."""
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in patterns)


def may_use(rule: RouteRule, patterns: Iterable[str], *, machine: bool = False) -> bool:
    """True when the patterns grant every action the route needs (``machine``: to an API client's
    token, which never gets :data:`NOT_FOR_MACHINES`)."""
    if machine and any(action in NOT_FOR_MACHINES for action in rule.actions):
        return False
    granted = list(patterns)
    return all(is_allowed(action, granted) for action in rule.actions)
