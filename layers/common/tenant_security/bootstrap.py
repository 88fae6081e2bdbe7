"""The platform tenant and its first platform-admin (``make local``, ``tenant-security bootstrap-admin``)."""

from __future__ import annotations

import contextlib
from typing import Any

from tenant_security.authz.rbac import PLATFORM_ADMIN
from tenant_security.errors import Conflict
from tenant_security.identity.passwords import generate_password, hash_password
from tenant_security.identity.users import User, UserStore
from tenant_security.models import ResourceQuotas, SecurityPolicies, parse_resource_quotas
from tenant_security.tenants import TenantProfile, TenantStatus, TenantStore


def platform_policies() -> SecurityPolicies:
    """The default security policy, but reachable from anywhere: operators come from many networks
    (narrow it with PUT /tenants/{platform}/policies)."""
    defaults = SecurityPolicies()
    access = defaults.access_control.model_copy(update={"ip_whitelist": []})
    return defaults.model_copy(update={"access_control": access})


def platform_quotas() -> ResourceQuotas:
    """The default resource quotas with an operator's cost allowance (onboarding is a costly route)."""
    return parse_resource_quotas({"cost": {"daily_limit": 100_000, "monthly_budget": 1_000_000}})


def bootstrap_platform(
    tenants: TenantStore, users: UserStore, platform_tenant: str, username: str = "admin"
) -> dict[str, Any]:
    """Create the platform tenant (if missing) and its first admin with a one-time password.

    Returns ``{platform_tenant, username, password}``; the password is shown once. 409 when the
    admin exists already (bootstrapping twice must not reset an operator's password).
    """
    if tenants.get(platform_tenant) is None:
        with contextlib.suppress(Conflict):  # created concurrently: fine
            tenants.create(
                TenantProfile(
                    tenant_id=platform_tenant,
                    name="Platform operators",
                    status=TenantStatus.ACTIVE,
                    policies=platform_policies(),
                    quotas=platform_quotas(),
                )
            )
    password = generate_password(24)
    users.create(
        User(
            tenant_id=platform_tenant,
            username=username,
            email=f"{username}@{platform_tenant}.invalid",
            roles=[PLATFORM_ADMIN],
            password_hash=hash_password(password),
            password_change_required=True,
        )
    )
    return {"platform_tenant": platform_tenant, "username": username, "password": password}
