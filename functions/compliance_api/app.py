"""Compliance routes behind the authorizer: the tenant's audit trail (filtered, paginated) and its
verification; SOX, GDPR and ISO 27001 reports (JSON or HTML); GDPR export and erasure of a subject."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenant_security import services
from tenant_security.api_reference import ApiTag, reply
from tenant_security.audit.page_tokens import LAST_SEQUENCE
from tenant_security.compliance.evidence import PERIOD_PATTERN
from tenant_security.compliance.html_report import REPORT_CSP, render_html
from tenant_security.compliance_service import EXPORT_PAGE
from tenant_security.context import AUDIT_DETAILS, current_caller, current_tenant
from tenant_security.errors import ValidationFailed
from tenant_security.headers import SECURITY_HEADERS
from tenant_security.http import make_resolver
from tenant_security.models.replies import (
    AuditCheckpoint,
    AuditPage,
    AuditVerification,
    ComplianceReport,
    ConsistencyProof,
    InclusionProof,
    StoredAuditRecord,
    SubjectErased,
    SubjectExport,
)
from tenant_security.observability import logger, metrics, tracer
from tenant_security.tenancy import USERNAME_PATTERN, require_username

settings = services.settings()
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes)
app.use_before_validation(services.request_middleware())

# What a report route answers (OpenAPI): JSON, or an HTML page with ?format=html.
REPORT: dict[int, Any] = {
    200: {
        "description": "The report",
        "content": {
            "application/json": {"model": ComplianceReport},
            "text/html": {"schema": {"type": "string"}},
        },
    }
}
NDJSON = "application/x-ndjson"
NEXT_FROM_HEADER = "X-Next-From"
ACTION_PATTERN = (
    r"^[a-z-]{1,32}:[A-Za-z0-9_: -]{1,64}$"  # security:user_locked_out, lifecycle:Tenant Onboarded
)


def _utc(value: datetime | None, name: str) -> datetime | None:
    """The query's time in UTC; 400 for one UTC cannot hold (0001-01-01T00:00+01:00)."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValidationFailed(
            "time out of range",
            fields=[{"field": f"query.{name}", "message": "a time between years 1 and 9999 in UTC"}],
        ) from None


@app.get(
    "/tenants/<tenant_id>/audit",
    summary="Search the audit trail",
    description="The tenant's audit records, newest last, filtered by time (from, to), action and actor; "
    "pages of limit records, the next with ?next=.",
    tags=[ApiTag.AUDIT],
    responses=reply(AuditPage),
)
def read_audit(
    tenant_id: str,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    action: Annotated[str | None, Query(pattern=ACTION_PATTERN)] = None,
    actor: Annotated[str | None, Query(pattern=USERNAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str | None, Query(alias="next", max_length=400)] = None,
) -> dict[str, Any]:
    return services.compliance_service().read_audit(
        current_tenant(app).tenant_id,
        start=_utc(start, "from"),
        end=_utc(end, "to"),
        action=action,
        actor=actor,
        limit=limit,
        after=after,
    )


@app.get(
    "/tenants/<tenant_id>/audit/verify",
    summary="Verify the audit trail",
    description="Checks the hash chain and signed checkpoints of records from..to (at most 5000 per "
    "request): VALID, or INVALID with every edited, missing or deleted record listed.",
    tags=[ApiTag.AUDIT],
    responses=reply(AuditVerification),
)
def verify_audit(
    tenant_id: str,
    first: Annotated[int, Query(alias="from", ge=1)] = 1,
    last: Annotated[int | None, Query(alias="to", ge=1)] = None,
) -> dict[str, Any]:
    return services.compliance_service().verify_audit(current_tenant(app).tenant_id, first, last)


@app.get(
    "/tenants/<tenant_id>/audit/export",
    summary="Export the audit trail for a SIEM (OCSF)",
    description="Records from..to (sequences) as Open Cybersecurity Schema Framework 1.1 events, one "
    "JSON event a line (application/x-ndjson): Authentication, Account Change, API Activity, "
    "Detection Finding. At most `limit` (1000) records a page; `X-Next-From` names the next page's "
    "`from` while the range goes on (absent: done). PII as the trail stores it (pseudonyms). "
    "The export itself is audited (`audit:Export`, with the range exported).",
    tags=[ApiTag.AUDIT],
    responses={
        200: {
            "description": "One OCSF event a line",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            "headers": {
                NEXT_FROM_HEADER: {
                    "description": "The `from` of the next page; absent on the range's last page",
                    "schema": {"type": "integer"},
                }
            },
        }
    },
)
def export_audit(
    tenant_id: str,
    export_format: Annotated[Literal["ocsf"], Query(alias="format")],
    first: Annotated[int, Query(alias="from", ge=1, le=LAST_SEQUENCE)] = 1,
    last: Annotated[int | None, Query(alias="to", ge=1, le=LAST_SEQUENCE)] = None,
    limit: Annotated[int, Query(ge=1, le=EXPORT_PAGE)] = EXPORT_PAGE,
) -> Response[bytes]:
    page = services.compliance_service().export_audit(current_tenant(app).tenant_id, first, last, limit)
    # the record of this request says what left the trail (the range, how many records)
    app.context[AUDIT_DETAILS] = {
        "exported_format": export_format,
        "exported_records": page.count,
        **({"exported_from": page.first, "exported_to": page.last} if page.first is not None else {}),
    }
    headers = {NEXT_FROM_HEADER: str(page.next_from)} if page.next_from is not None else {}
    return Response(status_code=200, content_type=NDJSON, body=page.body, headers=headers)


@app.get(
    "/tenants/<tenant_id>/audit/checkpoint",
    summary="The latest signed checkpoint",
    description="The tenant's Merkle tree (RFC 9162) as last signed: tree_size, root_hash and the exact "
    "text signed by the platform's checkpoint key (ECDSA P-256), whose public key is in "
    "GET /.well-known/audit-keys.json. 404 before the first checkpoint.",
    tags=[ApiTag.AUDIT],
    responses=reply(AuditCheckpoint),
)
def audit_checkpoint(tenant_id: str) -> dict[str, Any]:
    return services.trail_proofs().checkpoint(current_tenant(app).tenant_id)


@app.get(
    "/tenants/<tenant_id>/audit/records/<sequence>",
    summary="One audit record, as stored",
    description="The record's stored bytes, byte for byte what its Merkle leaf hashes "
    "(SHA-256(0x00 ‖ bytes)). Personal data in it is ciphertext or a pseudonym.",
    tags=[ApiTag.AUDIT],
    responses=reply(StoredAuditRecord),
)
def audit_record(tenant_id: str, sequence: int) -> Response[bytes]:
    stored = services.trail_proofs().stored_bytes(current_tenant(app).tenant_id, sequence)
    return Response(status_code=200, content_type="application/json", body=stored)


@app.get(
    "/tenants/<tenant_id>/audit/proofs/inclusion",
    summary="Inclusion proof of a record",
    description="RFC 9162 §2.1.3: the audit path of record `sequence` in the tree of `tree_size` records "
    "(leaf_index = sequence - 1; hashes base64).",
    tags=[ApiTag.AUDIT],
    responses=reply(InclusionProof),
)
def inclusion_proof(
    tenant_id: str,
    sequence: Annotated[int, Query(ge=1, le=LAST_SEQUENCE)],
    tree_size: Annotated[int, Query(ge=1, le=LAST_SEQUENCE)],
) -> dict[str, Any]:
    return services.trail_proofs().inclusion(current_tenant(app).tenant_id, sequence, tree_size)


@app.get(
    "/tenants/<tenant_id>/audit/proofs/consistency",
    summary="Consistency proof between two tree sizes",
    description="RFC 9162 §2.1.4: proves the tree of `first` records is a prefix of the tree of `second` "
    "(two checkpoints of one trail, say; hashes base64).",
    tags=[ApiTag.AUDIT],
    responses=reply(ConsistencyProof),
)
def consistency_proof(
    tenant_id: str,
    first: Annotated[int, Query(ge=1, le=LAST_SEQUENCE)],
    second: Annotated[int, Query(ge=1, le=LAST_SEQUENCE)],
) -> dict[str, Any]:
    return services.trail_proofs().consistency(current_tenant(app).tenant_id, first, second)


@app.get(
    "/tenants/<tenant_id>/gdpr/subjects/<username>",
    summary="Export a data subject",
    description="GDPR art. 15: what the tenant holds about the user (profile, live sessions, audit "
    "records about them, what they created), as far as the caller's permissions reach.",
    tags=[ApiTag.COMPLIANCE],
    responses=reply(SubjectExport),
)
def export_subject(
    tenant_id: str, username: str, after: Annotated[str | None, Query(alias="next", max_length=400)] = None
) -> dict[str, Any]:
    return services.compliance_service().export_subject(
        current_caller(app), current_tenant(app), require_username(username, "path.username"), after
    )


@app.delete(
    "/tenants/<tenant_id>/gdpr/subjects/<username>",
    summary="Erase a data subject",
    description="GDPR art. 17: removes the user, ends their sessions and destroys their audit PII key "
    "(their names in the trail become unreadable; the chain stays valid). Needs users:Delete "
    "too; yourself, a platform admin or the last tenant-admin is 409.",
    tags=[ApiTag.COMPLIANCE],
    responses=reply(SubjectErased),
)
def erase_subject(tenant_id: str, username: str) -> dict[str, Any]:
    return services.compliance_service().erase_subject(
        current_caller(app), current_tenant(app), require_username(username, "path.username")
    )


def _report(framework: str, period: str, output: str) -> Response[str]:
    report = services.compliance_service().report(current_tenant(app), framework, period)
    if output == "html":
        return Response(
            status_code=200,
            content_type="text/html; charset=utf-8",
            body=render_html(report),
            headers={**SECURITY_HEADERS, "Content-Security-Policy": REPORT_CSP},
        )
    return Response(status_code=200, content_type="application/json", body=json.dumps(report))


@app.get(
    "/tenants/<tenant_id>/reports/sox",
    summary="SOX report",
    description="SOX controls for a period (YYYY, YYYY-Qn or YYYY-MM) from the audit trail, users and key "
    "and bucket settings; JSON, or an HTML page with ?format=html.",
    tags=[ApiTag.COMPLIANCE],
    responses=REPORT,
)
def sox_report(
    tenant_id: str,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN)],
    output: Annotated[Literal["json", "html"], Query(alias="format")] = "json",
) -> Response[str]:
    return _report("sox", period, output)


@app.get(
    "/tenants/<tenant_id>/reports/<framework>",
    summary="Compliance report",
    description="GDPR (articles) or ISO 27001 (Annex A controls), or SOX, mapped to the evidence held for "
    "a period; JSON, or an HTML page with ?format=html.",
    tags=[ApiTag.COMPLIANCE],
    responses=REPORT,
)
def framework_report(
    tenant_id: str,
    framework: str,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN)],
    output: Annotated[Literal["json", "html"], Query(alias="format")] = "json",
) -> Response[str]:
    """GDPR (articles) or ISO 27001 (Annex A controls) -- or SOX -- mapped to the evidence held."""
    return _report(framework, period, output)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point."""
    return app.resolve(event, context)
