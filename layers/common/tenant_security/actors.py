"""Who acts: the caller of an operation, as the logic below the handlers sees it.

A plain value, built by the handler from the authorizer's context, so that the packages it is
handed to (user administration and the like) need not know how a request is read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """A user of a tenant; ``platform_admin`` only for a platform-admin of the platform tenant;
    ``roles``: the roles the caller's token carries (what they may grant others is bounded by them)."""

    tenant_id: str
    user: str
    platform_admin: bool
    roles: tuple[str, ...] = ()
    # an API client acting (its ``user`` is the client id too); None for a person
    client_id: str | None = None
