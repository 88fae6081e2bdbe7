"""The audit queue → the tenants' trails, in batches; the scheduled rules → signed checkpoints.

A batch's failed events are returned to the queue (a partial batch response), received again
after its visibility timeout, and after 50 receives parked in the dead-letter queue. The writer is
idempotent per event id, so retries and SQS's at-least-once delivery never duplicate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenant_security import aws, services
from tenant_security.activity import dead_letter_depth
from tenant_security.audit.inbox import append_messages
from tenant_security.audit.store import LostBatch
from tenant_security.observability import logger, metrics, tracer

# template.yaml: the MinuteTick schedule's Input (outbox drained, refusals summarised)
MINUTE_TICK = "minute-tick"


def _lag_seconds(event: dict[str, Any]) -> float | None:
    try:
        sent = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return max(0.0, (datetime.now(UTC) - sent).total_seconds())


def _record_dead_letter_depth() -> None:
    """The hourly tick also reports the dead-letter queue's depth (EMF, for the trend; the alarm
    watches SQS's own one-minute metric). A failure here must not fail the checkpoints."""
    queue_url = services.settings().event_dlq_url
    if not queue_url:
        return
    try:
        depth = dead_letter_depth(aws.sqs(), queue_url)
    except Exception as exc:
        logger.warning("dead-letter depth unknown", extra={"error_type": type(exc).__name__})
        return
    metrics.add_metric(name="DeadLetterDepth", unit=MetricUnit.Count, value=depth)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Append one event; on the minute's schedule, drain the outbox and summarise the refusals
    of the minutes that ended; on the checkpoints' schedule, checkpoint every chain that grew.
    Whatever it did, the batches it gave up as lost are counted (even if it then failed)."""
    try:
        return _handle(event)
    finally:
        _count_lost(services.audit_writer().take_lost())


def _handle(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("task") == MINUTE_TICK:
        writer = services.audit_writer()
        drained = writer.drain_outbox(services.outbox())
        attempts = writer.summarise_refusals(services.refusals())
        metrics.add_metric(name="UnauthenticatedRefusals", unit=MetricUnit.Count, value=attempts)
        metrics.add_metric(name="OutboxDrained", unit=MetricUnit.Count, value=drained)
        return {"refusals_summarised": attempts, "outbox_drained": drained}
    if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
        written = services.audit_writer().checkpoint_all()
        metrics.add_metric(name="AuditCheckpointsWritten", unit=MetricUnit.Count, value=len(written))
        _record_dead_letter_depth()
        return {"checkpoints": written}
    if event.get("Records"):  # the audit queue's batch (SQS event source mapping)
        report = append_messages(services.audit_writer(), event["Records"])
        _count(report.appended, report.duplicates, report.forged, report.lags)
        if report.failed:
            logger.warning("events returned to the queue", extra={"failed": len(report.failed)})
        return report.response()
    appended = services.audit_writer().append(event)  # one event: `tenant-security events redrive`
    logger.append_keys(tenant_id=appended.tenant_id)
    _count(
        int(not appended.duplicate),
        int(appended.duplicate),
        int(appended.forged and not appended.duplicate),
        [str(event["time"])] if event.get("time") and not appended.duplicate else [],
    )
    return {"tenant_id": appended.tenant_id, "sequence": appended.sequence, "duplicate": appended.duplicate}


def _count_lost(lost: list[LostBatch]) -> None:
    """Records a writer gave up (their index entries deleted before their object was written):
    AuditRecordsLost alarms at the first."""
    if lost:
        metrics.add_metric(
            name="AuditRecordsLost", unit=MetricUnit.Count, value=sum(b.last - b.first + 1 for b in lost)
        )


def _count(appended: int, duplicates: int, forged: int, times: list[str]) -> None:
    """The writer's metrics: records appended, duplicate deliveries, forged events, lag."""
    if duplicates:
        metrics.add_metric(name="AuditDuplicateDeliveries", unit=MetricUnit.Count, value=duplicates)
    if appended:
        metrics.add_metric(name="AuditRecordsAppended", unit=MetricUnit.Count, value=appended)
    if forged:  # someone put the platform's kinds of event from another source
        metrics.add_metric(name="ForgedEvents", unit=MetricUnit.Count, value=forged)
    for sent in times:
        lag = _lag_seconds({"time": sent})
        if lag is not None:
            # milliseconds: no long digit runs in the log (a test looks for 6-digit codes in it)
            metrics.add_metric(name="AuditLag", unit=MetricUnit.Seconds, value=round(lag, 3))
