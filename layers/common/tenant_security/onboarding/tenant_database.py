"""The tenant's own database (or schema) and login role on the platform database, its login
kept as a tenant secret; nothing where the deployment has no platform database."""

from __future__ import annotations

import json
from collections.abc import Callable

from tenant_security.database import CREDENTIALS_SECRET, TenantDatabases
from tenant_security.models.onboarding import Isolation, OnboardingRequest
from tenant_security.onboarding.credentials import OnboardingSecrets


class TenantDatabase:
    """Creates and drops a tenant's database; ``databases()`` is None without a platform database."""

    def __init__(self, databases: Callable[[], TenantDatabases | None], secrets: OnboardingSecrets) -> None:
        self.databases = databases
        self.secrets = secrets

    def create(self, request: OnboardingRequest) -> dict[str, str]:
        """The tenant's database or schema and role; credentials in Secrets Manager. Nothing for
        a request without isolation (validation accepts one only where there is no database)."""
        if request.isolation is None:
            return {"isolation": Isolation.NONE}
        databases = self.databases()
        if databases is None:  # the deployment lost its database since validation: compensate
            raise RuntimeError("no platform database is configured (DatabaseSecretArn is empty)")
        credentials = databases.create(request.tenant_id, request.isolation)
        name = self.secrets.name(request.tenant_id, CREDENTIALS_SECRET)
        self.secrets.put(name, json.dumps(credentials), request.tenant_id, "Tenant database credentials")
        return {
            "isolation": request.isolation,
            "secret": name,
            "dbname": credentials["dbname"],
            "schema": credentials["schema"],
        }

    def drop(self, tenant_id: str) -> None:
        """The tenant's database or schema and role, if the deployment has a database."""
        databases = self.databases()
        if databases is not None:
            databases.drop(tenant_id)
