"""The policy routes' requests and replies: what the handler hands the policy service (the body,
If-Match, ``force``, who asks and how their next request stands), and the stored document with
its ETag, whose changes the request's audit record names."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from tenant_security.administration.policies import PolicyChange, PolicyReply, caller_session
from tenant_security.context import AUDIT_CHANGES, current_caller, current_tenant
from tenant_security.headers import header


def policy_change(app: APIGatewayRestResolver, merge: bool) -> PolicyChange:
    """The PUT (``merge`` False) or PATCH of this request, as :class:`PolicyAdmin` takes it."""
    caller, tenant = current_caller(app), current_tenant(app)
    event = app.current_event
    # only the caller's own tenant's policy governs the caller's next request
    own = caller.tenant_id == tenant.tenant_id
    return PolicyChange(
        tenant_id=tenant.tenant_id,
        body=event.json_body,
        merge=merge,
        if_match=header(event.headers, "if-match"),
        force=(event.query_string_parameters or {}).get("force", "").lower() == "true",
        actor=caller.actor,
        caller=caller_session(caller.source_ip, caller.amr, caller.session_started_at, machine=caller.machine)
        if own
        else None,
    )


def policy_response(app: APIGatewayRestResolver, result: PolicyReply) -> Response[Any]:
    """The stored document with its ETag; the change's fields go to the request's audit record."""
    app.context[AUDIT_CHANGES] = result.audit_changes()
    return Response(
        status_code=200, content_type="application/json", body=result.document, headers={"ETag": result.etag}
    )
