"""How onboarding and offboarding are asked for: the API (and the CLI) put the event that starts
a workflow, once the request is known to be neither a no-op nor refused."""

from __future__ import annotations

import json
from typing import Any

from tenant_security.errors import Conflict, NotFound, PayloadTooLarge
from tenant_security.models.onboarding import OnboardingRequest
from tenant_security.onboarding.errors import TransientError
from tenant_security.tenants import RETIRED, TenantStatus, TenantStore

ONBOARDING_REQUESTED = "Tenant Onboarding Requested"
OFFBOARDING_REQUESTED = "Tenant Offboarding Requested"
# The request travels as an EventBridge event (256 KB at most) and then in every state of its
# onboarding execution (256 KB at most, beside the steps' results; over it the execution fails
# with States.DataLimitExceeded, which no Catch takes, so nothing would be compensated). A valid
# request is far smaller -- its strings and lists are bounded -- so a body over this is refused
# (413) before anything is done.
ONBOARDING_REQUEST_MAX_BYTES = 64 * 1024


def check_onboarding_size(body: str | bytes | None) -> None:
    """:class:`PayloadTooLarge` for an onboarding request (body or event detail) over the limit."""
    size = len(body.encode() if isinstance(body, str) else body or b"")
    if size > ONBOARDING_REQUEST_MAX_BYTES:
        raise PayloadTooLarge(
            f"an onboarding request is at most {ONBOARDING_REQUEST_MAX_BYTES} bytes ({size} sent): "
            "it must fit in an event and in its workflow's state"
        )


def request_onboarding(request: OnboardingRequest, tenants: TenantStore, publisher: Any) -> dict[str, Any]:
    """POST /tenants: put the onboarding event, unless the request is a no-op or refused.

    409 for an id taken by another request or retired; the same request again for a tenant that
    is ACTIVE or SUSPENDED answers with its status and starts nothing. A new id, a FAILED one and
    one still PROVISIONING (whose execution may have ended: registration takes it over) are
    (re)queued.
    """
    existing = tenants.get(request.tenant_id)
    if existing is not None and existing.status in RETIRED:
        raise Conflict(f"tenant {request.tenant_id!r} was offboarded; its id is not reused")
    if (
        existing is not None
        and existing.status != TenantStatus.FAILED
        and existing.request_hash != request.fingerprint()
    ):
        raise Conflict(f"tenant {request.tenant_id!r} exists with another request")
    if existing is not None and existing.status in (TenantStatus.ACTIVE, TenantStatus.SUSPENDED):
        return {"tenant_id": request.tenant_id, "status": str(existing.status)}
    detail = request.model_dump(mode="json")
    check_onboarding_size(json.dumps(detail))  # as the publisher will put it
    if not publisher.put(ONBOARDING_REQUESTED, detail, raw=True):
        raise TransientError("the onboarding request could not be queued; try again")
    return {"tenant_id": request.tenant_id, "status": str(TenantStatus.PROVISIONING)}


def request_offboarding(
    tenant_id: str, tenants: TenantStore, publisher: Any, requested_by: str
) -> dict[str, Any]:
    """DELETE /tenants/{t}: record the decision (OFFBOARDING, who asked), then put the event.

    The offboarding workflow runs only for a tenant in this status. Asking again while
    OFFBOARDING puts the event again (a failed offboarding is started anew); 409 from any status
    but ACTIVE, SUSPENDED, FAILED and OFFBOARDING.
    """
    record = tenants.get(tenant_id)
    if record is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    if record.status != TenantStatus.OFFBOARDING:
        tenants.set_status(
            tenant_id,
            TenantStatus.OFFBOARDING,
            allowed_from=(TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.FAILED),
            requested_by=requested_by,
        )
    if not publisher.put(OFFBOARDING_REQUESTED, {"tenant_id": tenant_id}, raw=True):
        raise TransientError("the offboarding request could not be queued; try again")
    return {"tenant_id": tenant_id, "status": str(TenantStatus.OFFBOARDING)}
