"""The quota checks of a request behind the authorizer: domain entitlement, rate, concurrency and
duration, in that order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tenant_security.errors import Forbidden, RateLimited, ServiceUnavailable
from tenant_security.headers import header
from tenant_security.models.quotas import ResourceQuotas
from tenant_security.observability import logger
from tenant_security.quotas.deadline import deadline, request_seconds
from tenant_security.quotas.leases import LEASE_MARGIN_SECONDS, ConcurrencyLimitReached, LeaseTerms
from tenant_security.quotas.rate import RateLimiter, RateLimits, Refusal

DOMAIN_HEADER = "x-domain"


def check_domain(
    headers: Mapping[str, Any] | None, path_parameters: Mapping[str, Any] | None, quotas: ResourceQuotas
) -> None:
    """403 for a domain (X-Domain header or a {domain} path parameter) the tenant is not entitled to."""
    requested = [value] if (value := header(headers, DOMAIN_HEADER)) else []
    requested += [str((path_parameters or {})["domain"])] if (path_parameters or {}).get("domain") else []
    for domain in requested:
        if not quotas.domains.get(domain.strip().lower(), False):
            raise Forbidden(f"the tenant is not entitled to the domain {domain.strip()[:32]!r}")


class QuotaGuard:
    """What the request middleware asks before and after a request behind the authorizer."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def run(
        self,
        caller: Any,
        target: Any,
        weight: int,
        event: Mapping[str, Any],
        call: Callable[[], Any],
        time_left: float | None = None,
    ) -> tuple[Any, dict[str, str]]:
        """Admit the request (429 otherwise) with a concurrency lease, held while ``call()`` runs within the
        tenant's max_request_duration; ``call``'s result and the rate-limit headers. ``weight``:
        the request's cost in nano-dollars (its route's, authz/route_costs.py).

        ``time_left``: seconds before Lambda's own timeout ends the invocation. The deadline is
        the smaller of the two, less :data:`DEADLINE_MARGIN`, so the request is answered (503) and
        its lease released before Lambda kills it; a lease left by a killed invocation then expires
        seconds after the function's timeout, not max_request_duration (300 s by default) after."""
        check_domain(event.get("headers"), event.get("pathParameters"), target.quotas)
        limits = RateLimits.of(caller.policies, caller.quotas)
        compute = caller.quotas.compute
        seconds = request_seconds(compute.max_request_duration, time_left)
        # the lease is taken in the rate counter's one write: two writes a request, not three
        terms = LeaseTerms(compute.max_concurrent_requests, seconds + LEASE_MARGIN_SECONDS)
        admission = self.limiter.admit(caller.tenant_id, limits, weight, terms)
        if admission.refused_by is Refusal.CONCURRENCY:
            raise ConcurrencyLimitReached(
                f"at most {compute.max_concurrent_requests} concurrent requests", headers={"Retry-After": "1"}
            )
        if not admission.admitted:
            raise RateLimited(
                f"{caller.tenant_id}: request limit reached ({admission.refused_by})",
                headers=admission.headers(),
            )
        try:
            # the lease's clock started when it was written: a slow reply leaves less of it, and
            # the request must end before its lease could be taken from it as expired
            seconds = min(seconds, admission.lease_expires_at - LEASE_MARGIN_SECONDS - self.limiter.clock())
            if seconds <= 0:
                raise ServiceUnavailable("the admission took the request's whole time; try again")
            with deadline(seconds):
                result = call()
        finally:
            self._release(caller.tenant_id, admission)
        return result, admission.headers()

    def _release(self, tenant_id: str, admission: Any) -> None:
        """Give the lease back. A release that fails does not fail the request (its work is done,
        and a client told 5xx would do it again): the lease expires by itself at its deadline."""
        try:
            self.limiter.release(tenant_id, admission)
        except Exception:
            logger.warning("a concurrency lease was not released; it expires by itself", exc_info=True)
