"""What a custom role may grant: the bound every definition is checked against.

A custom role grants tenant-scoped actions only (:data:`tenant_security.authz.rbac.TENANT_ACTIONS`)
and never an action its author does not hold. Patterns (``files:*``, ``*``) are judged by the
concrete actions they expand to, and the role is stored as those actions: an action added to the
route table later is not granted by a role written before it (its author never held it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from tenant_security.authz.rbac import BUILTIN_ROLES, PLATFORM_ADMIN, TENANT_ACTIONS, is_allowed, permissions
from tenant_security.errors import Conflict, Forbidden, ValidationFailed

# The role name rule of the policy document (models.policies.RoleName), kept off pydantic here.
ROLE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,47}$")
# An action pattern: ``service:Action`` with ``*`` wildcards, or ``*``. No ``?`` or ``[...]``:
# fnmatch would read them as wildcards the author may not have meant.
ACTION_PATTERN = re.compile(r"^[A-Za-z0-9*]{1,32}(:[A-Za-z0-9*]{1,64})?$")
MAX_CUSTOM_ROLES = 50  # per tenant: they live in the tenant's item (400 KB), read on every request


class BuiltinRole(Conflict):
    """A built-in role's name: its permissions are the platform's, never redefined or deleted."""

    code = "builtin_role"


def check_role_name(name: str, field: str = "path.role") -> str:
    """``name`` if it is a valid custom role name; 400 (field error) or 409 ``builtin_role``."""
    if not ROLE_NAME.fullmatch(name):
        raise ValidationFailed(
            "invalid role name",
            fields=[{"field": field, "message": "2-48 of a-z, 0-9 and '-', starting with a letter"}],
        )
    if name in BUILTIN_ROLES:
        raise BuiltinRole(f"{name!r} is a built-in role; choose another name")
    return name


def tenant_actions_of(patterns: Iterable[str]) -> frozenset[str]:
    """The tenant-scoped actions that ``patterns`` grant."""
    granted = list(patterns)
    return frozenset(a for a in TENANT_ACTIONS if is_allowed(a, granted))


def held_actions(
    roles: Iterable[str], platform_admin: bool, custom_roles: Mapping[str, Iterable[str]]
) -> frozenset[str]:
    """The tenant-scoped actions a caller holds: every one for a platform-admin (of the platform
    tenant), else what their roles grant with the tenant's current custom roles."""
    if platform_admin:
        return TENANT_ACTIONS
    return tenant_actions_of(permissions([r for r in roles if r != PLATFORM_ADMIN], custom_roles))


def grantable(patterns: Sequence[str], held: frozenset[str]) -> tuple[str, ...]:
    """The concrete actions a role of ``patterns`` grants, sorted, if its author (holding
    ``held``) may define it.

    400 with a field error per pattern that is malformed or grants no tenant-scoped action (a typo,
    a platform-only action, ``auth:Logout``, which every role has anyway); 403 naming the actions
    beyond ``held``.
    """
    problems: list[dict[str, str]] = []
    granted: set[str] = set()
    for index, pattern in enumerate(patterns):
        field = f"permissions.{index}"
        if not ACTION_PATTERN.fullmatch(pattern):
            problems.append(
                {"field": field, "message": "an action pattern such as 'files:Read' or 'files:*'"}
            )
            continue
        actions = tenant_actions_of([pattern])
        if not actions:
            problems.append({"field": field, "message": f"{pattern!r} grants no tenant-scoped action"})
        granted |= actions
    if problems:
        raise ValidationFailed("the role's permissions are not valid", fields=problems)
    beyond = sorted(granted - held)
    if beyond:
        raise Forbidden(f"a role cannot grant what you do not hold: {', '.join(beyond)}")
    return tuple(sorted(granted))


def check_manageable(name: str, actions: Iterable[str], held: frozenset[str]) -> None:
    """403 when an existing role grants something its would-be editor does not hold: changing or
    deleting it is for someone who holds all of it."""
    beyond = sorted(tenant_actions_of(actions) - held)  # (a role stored as patterns: what they grant)
    if beyond:
        raise Forbidden(
            f"role {name!r} grants what you do not hold ({', '.join(beyond)}); you cannot change it"
        )
