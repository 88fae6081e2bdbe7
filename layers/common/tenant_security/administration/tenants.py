"""What administrators do to tenants through the admin API: ask for an onboarding or an
offboarding, read a tenant's record, set its quotas and see what it uses of them.

The handler (functions/admin_api) parses the request and shapes the reply; the onboarding and
offboarding workflows themselves run in Step Functions (:mod:`tenant_security.onboarding`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenant_security.errors import Conflict, NotFound

if TYPE_CHECKING:
    from tenant_security.activity import EventPublisher
    from tenant_security.actors import Actor
    from tenant_security.config import Settings
    from tenant_security.quotas.rate import RateLimiter
    from tenant_security.quotas.storage import StorageQuota
    from tenant_security.tenant_directory import TenantDirectory
    from tenant_security.tenants import TenantProfile, TenantStore


class TenantAdmin:
    """Tenant lifecycle requests and quotas, over the tenant store and the quota counters."""

    def __init__(
        self,
        settings: Settings,
        store: TenantStore,
        directory: TenantDirectory,
        publisher: EventPublisher,
        rate_limiter: RateLimiter,
        storage_quota: StorageQuota,
    ) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self.publisher = publisher
        self.rate_limiter = rate_limiter
        self.storage_quota = storage_quota

    def request_onboarding(self, raw_body: str | bytes | None, body: dict[str, Any]) -> dict[str, Any]:
        """POST /tenants: the request checked (its size first: it must fit in an event and in an
        execution's state), then the onboarding event put (:func:`onboarding.request_onboarding`)."""
        from tenant_security.onboarding.provisioner import TenantProvisioner
        from tenant_security.onboarding.requests import check_onboarding_size, request_onboarding

        check_onboarding_size(raw_body)
        request = TenantProvisioner.validate_with(self.settings, body)
        return request_onboarding(request, self.store, self.publisher)

    def request_offboarding(self, tenant_id: str, actor: Actor) -> dict[str, Any]:
        """DELETE /tenants/{t}: 409 for the platform tenant; else the decision recorded and the
        offboarding event put, and this worker denies the tenant at once."""
        from tenant_security.onboarding.requests import request_offboarding

        if tenant_id == self.settings.platform_tenant_id:
            raise Conflict("the platform tenant cannot be offboarded")
        accepted = request_offboarding(
            tenant_id, self.store, self.publisher, requested_by=f"{actor.tenant_id}/{actor.user}"
        )
        self.directory.forget(tenant_id)
        return accepted

    def describe(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's record as the API shows it, read from the store now (not the cache)."""
        record = self.store.get(tenant_id)
        if record is None:
            raise NotFound(f"no tenant {tenant_id!r}")
        return record.public()

    def set_quotas(self, tenant_id: str, body: Any) -> dict[str, Any]:
        """Replace the tenant's quotas with ``body`` (checked); this worker applies them at once,
        the others within their cache time."""
        from tenant_security.models import parse_resource_quotas

        quotas = parse_resource_quotas(body).model_copy(update={"tenant_id": tenant_id})
        self.store.set_quotas(tenant_id, quotas)
        self.directory.forget(tenant_id)
        return quotas.model_dump(mode="json")

    def quota_usage(self, tenant: TenantProfile) -> dict[str, Any]:
        """What the tenant uses now of its request, concurrency, storage and compute quotas, and
        what its requests cost (``spend``, estimated US dollars: authz/route_costs.py)."""
        from tenant_security.quotas.rate import RateLimits

        quotas = tenant.quotas
        requests = self.rate_limiter.usage(tenant.tenant_id, RateLimits.of(tenant.policies, quotas))
        spend = {
            **requests.pop("spend"),
            # the documents' figures; monthly_limit is the stricter of the two, the one enforced
            "monthly_budget": quotas.cost.monthly_budget,
            "cost_threshold": tenant.policies.rate_limiting.cost_threshold,
        }
        return {
            "tenant_id": tenant.tenant_id,
            "requests": requests,
            "spend": spend,
            "concurrent_requests": {
                "active": requests.pop("concurrent_requests"),
                "limit": quotas.compute.max_concurrent_requests,
            },
            "storage": {
                **self.storage_quota.usage(tenant.tenant_id),
                "max_data_size": quotas.storage.max_data_size,
                "max_file_count": quotas.storage.max_file_count,
            },
            "compute": quotas.compute.model_dump(mode="json"),
        }
