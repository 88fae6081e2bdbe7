"""The onboarding request (POST /tenants body and `Tenant Onboarding Requested` detail)."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from tenant_security.models.base import StrictModel, parse_document
from tenant_security.models.policies import SecurityPolicies
from tenant_security.models.quotas import ResourceQuotas
from tenant_security.tenancy import Email, TenantId, Username


class Isolation(StrEnum):
    """Where a tenant's records live: its own database, its own schema of the shared database, or
    nowhere (a deployment with no platform database, DatabaseSecretArn empty)."""

    DATABASE = "database"
    SCHEMA = "schema"
    NONE = "none"


class AdminUser(StrictModel):
    username: Username
    email: Email


class OnboardingRequest(StrictModel):
    tenant_id: TenantId
    name: Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
    # Required where the deployment has a platform database, refused where it has none (the
    # onboarding validation knows which): absent, the tenant gets no database.
    isolation: Literal["database", "schema"] | None = None
    admin: AdminUser
    security_policies: SecurityPolicies = Field(default_factory=SecurityPolicies)
    resource_quotas: ResourceQuotas = Field(default_factory=ResourceQuotas)

    @property
    def database_isolation(self) -> Isolation:
        """The isolation the tenant record keeps (``none`` for a request without one)."""
        return Isolation(self.isolation) if self.isolation is not None else Isolation.NONE

    def fingerprint(self) -> str:
        """SHA-256 of the canonical request: the same request again is recognised as such."""
        body = self.model_dump(
            mode="json", exclude={"security_policies": {"tenant_id"}, "resource_quotas": {"tenant_id"}}
        )
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_onboarding_request(data: Any) -> OnboardingRequest:
    """Validate an onboarding request; 400 with the failing fields."""
    request = parse_document(OnboardingRequest, data, "onboarding_request")
    # The documents belong to this tenant whatever tenant_id they carried.
    return request.model_copy(
        update={
            "security_policies": request.security_policies.model_copy(
                update={"tenant_id": request.tenant_id}
            ),
            "resource_quotas": request.resource_quotas.model_copy(update={"tenant_id": request.tenant_id}),
        }
    )
