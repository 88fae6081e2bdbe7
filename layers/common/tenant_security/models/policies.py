"""A tenant's ``security_policies`` document; the architecture's default security policy gives
its defaults."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from tenant_security.models.base import MAX_MONEY, StrictModel, parse_document
from tenant_security.tenancy import TenantId

_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")


def _check_region(value: str) -> str:
    if not _REGION_RE.fullmatch(value):
        raise ValueError("an AWS region name such as 'us-east-1'")
    return value


def _check_cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise ValueError("an IPv4 or IPv6 address or CIDR block such as '10.0.0.0/8'") from exc


Region = Annotated[str, AfterValidator(_check_region)]
RoleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,47}$")]
Cidr = Annotated[str, AfterValidator(_check_cidr)]


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("entries must be unique")
    return values


class DataProtection(StrictModel):
    encryption_level: Literal["AES-256"] = "AES-256"
    # KMS accepts a rotation period of 90 to 2560 days.
    key_rotation_days: int = Field(90, ge=90, le=2560)
    data_locality: Annotated[list[Region], AfterValidator(_unique)] = Field(
        default_factory=lambda: ["us-east-1", "us-west-2"], min_length=1, max_length=30
    )
    cross_region_encryption: bool = True


class AccessControl(StrictModel):
    max_concurrent_sessions: int = Field(100, ge=1, le=100_000)
    # One user cannot take every session of the tenant (and lock the others out).
    max_sessions_per_user: int = Field(10, ge=1, le=1000)
    session_timeout_minutes: int = Field(480, ge=5, le=1440)
    # An empty list (the default) allows every source address. A corporate policy names its
    # networks (events/tenant.yaml's example: 10.0.0.0/8, 172.16.0.0/12); as a default those
    # ranges would refuse every internet caller of a deployed stack, the tenant's admins too.
    ip_whitelist: Annotated[list[Cidr], AfterValidator(_unique)] = Field(default_factory=list, max_length=100)
    mfa_required: bool = True

    # Machine access (API clients, OAuth 2.0 client credentials): False refuses every client's
    # token request and every request of a client token already issued (within 5 s).
    api_clients_allowed: bool = True

    def allows(self, address: str | None) -> bool:
        """True when the allow-list is empty or holds ``address`` (an unknown or malformed
        address is refused). The one source-address rule, for the authorizer and sign-in alike."""
        return address_allowed(self.ip_whitelist, address)


def address_allowed(cidrs: Sequence[str], address: str | None) -> bool:
    """True when ``cidrs`` is empty or holds ``address`` (an unknown or malformed address is
    refused): the tenant's allow-list and an API client's own alike."""
    if not cidrs:
        return True
    try:
        source = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(source in ipaddress.ip_network(cidr) for cidr in cidrs)


class AuditLogging(StrictModel):
    log_all_operations: bool = True
    log_data_access: bool = True
    log_admin_actions: bool = True
    # S3 Object Lock retention: at least a day, at most 100 years. 2555 days = 7 years.
    retention_days: int = Field(2555, ge=1, le=36500)


Framework = Literal["SOX", "GDPR", "ISO27001", "HIPAA", "PCI-DSS", "SOC2"]
_DEFAULT_FRAMEWORKS: list[Framework] = ["SOX", "GDPR", "ISO27001"]


class Compliance(StrictModel):
    frameworks: Annotated[list[Framework], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(_DEFAULT_FRAMEWORKS)
    )
    data_classification: Literal["public", "internal", "confidential", "restricted"] = "confidential"
    pii_handling: Literal["encrypt_and_redact", "redact", "encrypt", "none"] = "encrypt_and_redact"
    # Role pairs no user may hold together (the SOX report's segregation-of-duties check).
    segregation_of_duties: list[tuple[RoleName, RoleName]] = Field(
        default_factory=lambda: [
            ("security-admin", "auditor"),
            ("tenant-admin", "auditor"),
            ("developer", "auditor"),
        ],
        max_length=50,
    )


class RateLimiting(StrictModel):
    requests_per_minute: int = Field(1000, ge=1, le=10_000_000)
    requests_per_hour: int = Field(50000, ge=1, le=100_000_000)
    burst_size: int = Field(100, ge=1, le=1_000_000)
    # US dollars a month: the month's spend (each request's estimated AWS cost,
    # authz/route_costs.py) past which the tenant's requests are refused (429). The limit in force
    # is the stricter of this and resource_quotas.cost.monthly_budget (quotas/rate.py).
    cost_threshold: float = Field(5000, ge=0, le=MAX_MONEY)

    @model_validator(mode="after")
    def _windows_nest(self) -> RateLimiting:
        if self.requests_per_minute > self.requests_per_hour:
            raise ValueError("requests_per_minute cannot exceed requests_per_hour")
        return self


class SecurityPolicies(StrictModel):
    """A tenant's security policy; every section and field left out takes the architecture's default."""

    tenant_id: TenantId | None = None
    version: str = Field("1.0.0", pattern=r"^\d+\.\d+\.\d+$")
    data_protection: DataProtection = Field(default_factory=DataProtection)
    access_control: AccessControl = Field(default_factory=AccessControl)
    audit_logging: AuditLogging = Field(default_factory=AuditLogging)
    compliance: Compliance = Field(default_factory=Compliance)
    rate_limiting: RateLimiting = Field(default_factory=RateLimiting)


def parse_security_policies(data: Any) -> SecurityPolicies:
    """Validate a ``security_policies`` document (mapping, or YAML/JSON text; root key optional)."""
    return parse_document(SecurityPolicies, data, "security_policies")
