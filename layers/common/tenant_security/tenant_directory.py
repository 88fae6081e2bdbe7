"""A short-lived cache of tenant profiles in front of the tenants table.

The authorizer, the request middleware, sign-in and the audit writer read a tenant's
configuration on every request; the :class:`TenantDirectory` keeps each profile at most ``ttl``
seconds (:data:`POLICY_MAX_AGE`, 5), so a warm function reads DynamoDB at most once per tenant
every 5 seconds, and a stored policy, quota or role change governs every request that starts
5 seconds after its reply, in every function and every warm worker. (An entry's age counts from
before its read was sent: a read that raced a change is never taken for a newer one.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tenant_security.tenants import TenantProfile, TenantStatus, TenantStore

# The contract's bound: a change governs every request that starts this long after its 200.
POLICY_MAX_AGE = 5.0
CONFIG_CACHE_SECONDS = POLICY_MAX_AGE
# An absent or still-provisioning tenant is about to change: kept only this long, so a new
# tenant is usable (and its onboarding visible) seconds after it is ACTIVE, while a flood of
# requests for an unknown id still costs one read per few seconds.
TRANSITIONAL_CACHE_SECONDS = 5
# What a request acts on: a status at most this old for a read, read now for a write, so that a
# suspension or offboarding stops writes at once and reads within seconds (red team B: a cached
# ACTIVE profile let writes in for a minute after a suspension).
READ_STATUS_MAX_AGE = POLICY_MAX_AGE
WRITE_STATUS_MAX_AGE = 0.0


class TenantDirectory:
    """Tenant profiles cached for at most ``ttl`` seconds; absent and provisioning ones for at
    most TRANSITIONAL_CACHE_SECONDS; a caller may ask for a profile no older than it says."""

    def __init__(
        self,
        store: TenantStore,
        ttl: float = CONFIG_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, float, TenantProfile | None]] = {}  # expires, read at
        self._lock = threading.Lock()

    def get(self, tenant_id: str, max_age: float | None = None) -> TenantProfile | None:
        """The tenant's profile, read at most ``max_age`` seconds ago (default: the cache's own
        ttl; 0: read now, consistently)."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > now and (max_age is None or now - hit[1] < max_age):
            return hit[2]
        profile = self.store.get(tenant_id)
        transitional = profile is None or profile.status == TenantStatus.PROVISIONING
        ttl = min(self.ttl, TRANSITIONAL_CACHE_SECONDS) if transitional else self.ttl
        with self._lock:
            self._cache[tenant_id] = (now + ttl, now, profile)
        return profile

    def forget(self, tenant_id: str) -> None:
        with self._lock:
            self._cache.pop(tenant_id, None)
