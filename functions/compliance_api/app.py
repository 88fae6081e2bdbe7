"""Compliance routes behind the authorizer: the tenant's audit trail (filtered, paginated) and its
verification; SOX, GDPR and ISO 27001 reports (JSON or HTML); GDPR export and erasure of a subject."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenant_security import services
from tenant_security.audit.reader import decode_next
from tenant_security.compliance import (
    PERIOD_PATTERN,
    REPORT_CSP,
    FrameworkReporter,
    gather_evidence,
    render_html,
)
from tenant_security.errors import ValidationFailed
from tenant_security.headers import SECURITY_HEADERS
from tenant_security.http import make_resolver
from tenant_security.identity.users import USERNAME_PATTERN, is_valid_username
from tenant_security.observability import logger, metrics, tracer
from tenant_security.tenancy import require_tenant_id

settings = services.settings()
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes)
app.use([services.request_middleware()])

# What a report route answers (OpenAPI): JSON, or an HTML page with ?format=html.
REPORT: dict[int, Any] = {
    200: {
        "description": "The report",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/html": {"schema": {"type": "string"}},
        },
    }
}
MAX_VERIFY_SPAN = 5000  # records verified per request; ask for from/to ranges beyond that
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


@app.get("/tenants/<tenant_id>/audit")
def read_audit(
    tenant_id: str,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    action: Annotated[str | None, Query(pattern=ACTION_PATTERN)] = None,
    actor: Annotated[str | None, Query(pattern=USERNAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str | None, Query(alias="next", max_length=400)] = None,
) -> dict[str, Any]:
    tenant = require_tenant_id(tenant_id, "path.tenant_id")
    return services.audit_reader().query(
        tenant,
        settings.audit_bucket(tenant),
        start=_utc(start, "from"),
        end=_utc(end, "to"),
        action=action,
        actor=actor,
        limit=limit,
        after=decode_next(after) if after else None,
    )


@app.get("/tenants/<tenant_id>/audit/verify")
def verify_audit(
    tenant_id: str,
    first: Annotated[int, Query(alias="from", ge=1)] = 1,
    last: Annotated[int | None, Query(alias="to", ge=1)] = None,
) -> dict[str, Any]:
    tenant = require_tenant_id(tenant_id, "path.tenant_id")
    if last is not None and last < first:
        raise ValidationFailed(
            "to is before from", fields=[{"field": "query.to", "message": "must be >= from"}]
        )
    head = services.chain_heads().get(tenant).sequence
    end = head if last is None else min(last, head)
    if end - first + 1 > MAX_VERIFY_SPAN:
        raise ValidationFailed(
            f"verify at most {MAX_VERIFY_SPAN} records per request (the chain has {head}); use from and to",
            fields=[{"field": "query.to", "message": f"at most {MAX_VERIFY_SPAN} records from 'from'"}],
        )
    report = services.chain_verifier().verify(tenant, first, end)
    metrics.add_metric(name="AuditVerifications", unit=MetricUnit.Count, value=1)
    return report


def _subject(username: str) -> str:
    if not is_valid_username(username):
        raise ValidationFailed(
            "invalid user name", fields=[{"field": "path.username", "message": "not a user name"}]
        )
    return username


@app.get("/tenants/<tenant_id>/gdpr/subjects/<username>")
def export_subject(
    tenant_id: str, username: str, after: Annotated[str | None, Query(alias="next", max_length=400)] = None
) -> dict[str, Any]:
    tenant = require_tenant_id(tenant_id, "path.tenant_id")
    return services.subject_rights().export(
        tenant, _subject(username), _granted(), decode_next(after) if after else None
    )


@app.delete("/tenants/<tenant_id>/gdpr/subjects/<username>")
def erase_subject(tenant_id: str, username: str) -> dict[str, Any]:
    tenant = require_tenant_id(tenant_id, "path.tenant_id")
    caller = app.context["tenant"]
    return services.subject_rights().erase(
        (caller.tenant_id, caller.user), _granted(), tenant, _subject(username)
    )


def _granted() -> list[str]:
    """The caller's permissions in the tenant the request is about."""
    return list(app.context["tenant"].permissions(app.context["tenant_record"]))


def _report(tenant_id: str, framework: str, period: str, output: str) -> Response[str]:
    tenant = require_tenant_id(tenant_id, "path.tenant_id")
    record = app.context["tenant_record"]
    reporter = FrameworkReporter(
        framework,
        record.policies.compliance.segregation_of_duties,
        platform_tenant=settings.platform_tenant_id,
    )
    evidence = gather_evidence(
        record,
        period,
        services.users(),
        services.audit_reader(),
        settings.audit_bucket(tenant),
        services.chain_verifier(),
        services.tenant_controls(),
    )
    report = reporter.from_evidence(evidence)
    if output == "html":
        return Response(
            status_code=200,
            content_type="text/html; charset=utf-8",
            body=render_html(report),
            headers={**SECURITY_HEADERS, "Content-Security-Policy": REPORT_CSP},
        )
    return Response(status_code=200, content_type="application/json", body=json.dumps(report))


@app.get("/tenants/<tenant_id>/reports/sox", responses=REPORT)
def sox_report(
    tenant_id: str,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN)],
    output: Annotated[Literal["json", "html"], Query(alias="format")] = "json",
) -> Response[str]:
    return _report(tenant_id, "sox", period, output)


@app.get("/tenants/<tenant_id>/reports/<framework>", responses=REPORT)
def framework_report(
    tenant_id: str,
    framework: str,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN)],
    output: Annotated[Literal["json", "html"], Query(alias="format")] = "json",
) -> Response[str]:
    """GDPR (articles) or ISO 27001 (Annex A controls) -- or SOX -- mapped to the evidence held."""
    return _report(tenant_id, framework, period, output)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point."""
    return app.resolve(event, context)
