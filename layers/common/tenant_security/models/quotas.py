"""A tenant's ``resource_quotas`` document; the architecture's quota template gives its defaults."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from tenant_security.models.base import MAX_MONEY, ByteSize, StrictModel, parse_document, size_in_bytes
from tenant_security.tenancy import TenantId

_DOMAIN_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class Compute(StrictModel):
    max_concurrent_requests: int = Field(100, ge=1, le=100_000)
    # Milliseconds; Lambda stops at 15 minutes.
    max_request_duration: int = Field(300000, ge=100, le=900_000)
    max_memory_usage: ByteSize = "2GB"


class Storage(StrictModel):
    max_data_size: ByteSize = "100GB"
    max_file_count: int = Field(10000, ge=0, le=1_000_000_000)
    max_file_size: ByteSize = "1GB"

    @model_validator(mode="after")
    def _file_fits(self) -> Storage:
        if size_in_bytes(self.max_file_size) > size_in_bytes(self.max_data_size):
            raise ValueError("max_file_size cannot exceed max_data_size")
        return self


class Api(StrictModel):
    requests_per_minute: int = Field(1000, ge=1, le=10_000_000)
    requests_per_hour: int = Field(50000, ge=1, le=100_000_000)
    requests_per_day: int = Field(1000000, ge=1, le=1_000_000_000)

    @model_validator(mode="after")
    def _windows_nest(self) -> Api:
        if not self.requests_per_minute <= self.requests_per_hour <= self.requests_per_day:
            raise ValueError("requests_per_minute <= requests_per_hour <= requests_per_day must hold")
        return self


class Cost(StrictModel):
    """US dollars of estimated AWS cost: each request counts its route's cost
    (authz/route_costs.py); both limits are enforced by the write that admits the request."""

    monthly_budget: float = Field(5000, ge=0, le=MAX_MONEY)
    daily_limit: float = Field(200, ge=0, le=MAX_MONEY)
    # Fraction of the monthly budget at which a `Quota Threshold Reached` event is put.
    cost_alert_threshold: float = Field(0.8, gt=0, le=1)

    @model_validator(mode="after")
    def _daily_within_monthly(self) -> Cost:
        if self.daily_limit > self.monthly_budget:
            raise ValueError("daily_limit cannot exceed monthly_budget")
        return self


def _check_domains(value: dict[str, bool]) -> dict[str, bool]:
    bad = [name for name in value if not _DOMAIN_RE.fullmatch(name)]
    if bad:
        raise ValueError(f"domain names are lower-case letters, digits, '-' or '_': {sorted(bad)}")
    return value


Domains = Annotated[dict[str, bool], AfterValidator(_check_domains)]


class ResourceQuotas(StrictModel):
    """A tenant's resource quotas; every section and field defaults to the architecture's quota template."""

    tenant_id: TenantId | None = None
    compute: Compute = Field(default_factory=Compute)
    storage: Storage = Field(default_factory=Storage)
    api: Api = Field(default_factory=Api)
    cost: Cost = Field(default_factory=Cost)
    domains: Domains = Field(
        default_factory=lambda: {"manufacturing": True, "finance": False, "pharma": False},
        max_length=100,
    )


def parse_resource_quotas(data: Any) -> ResourceQuotas:
    """Validate a ``resource_quotas`` document (mapping, or YAML/JSON text; root key optional)."""
    return parse_document(ResourceQuotas, data, "resource_quotas")
