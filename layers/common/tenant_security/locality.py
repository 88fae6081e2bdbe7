"""Data locality: a tenant's data is written only in the regions of its policy's data_locality.

Two checks, one rule. A request may name the region it wants its data in (``X-Data-Region``):
outside data_locality it is refused before any handler runs. And every write of tenant data
(files, records, secrets, presigned uploads) checks the region it is about to write in -- the
region this stack runs in -- so a tenant whose policy excludes this region gets a 403, never a
copy of its data in the wrong place. With ``cross_region_encryption`` the tenant keys are
multi-Region keys replicated to the other allowed regions (see onboarding), so the data can be
decrypted there and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenant_security.errors import Forbidden
from tenant_security.headers import header
from tenant_security.models.policies import SecurityPolicies
from tenant_security.tenants import TenantProfile

DATA_REGION_HEADER = "x-data-region"


class DataLocalityViolation(Forbidden):
    code = "data_locality"


def check_data_region(headers: Mapping[str, Any] | None, tenant: TenantProfile) -> None:
    """403 when ``X-Data-Region`` names a region outside the tenant's data_locality."""
    region = header(headers, DATA_REGION_HEADER)
    if region is None or region.strip().lower() == "auto":
        return
    allowed = tenant.policies.data_protection.data_locality
    if region.strip() not in allowed:
        raise DataLocalityViolation(
            f"data region {region.strip()[:32]!r} is outside the tenant's data locality {allowed}"
        )


def check_writable_in(tenant: TenantProfile, region: str) -> None:
    """403 when this stack's ``region`` (where a write would land) is outside data_locality."""
    allowed = tenant.policies.data_protection.data_locality
    if region not in allowed:
        raise DataLocalityViolation(
            f"tenant data cannot be written in {region}: outside the tenant's data locality {allowed}"
        )


def replica_regions(policies: SecurityPolicies, home_region: str) -> list[str]:
    """Where the tenant keys get replicas: the other data_locality regions, with cross_region_encryption."""
    protection = policies.data_protection
    if not protection.cross_region_encryption:
        return []
    return [region for region in protection.data_locality if region != home_region]
