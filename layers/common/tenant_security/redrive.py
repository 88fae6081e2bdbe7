"""Sending dead-lettered platform events on again (``tenant-security events redrive``).

The dead-letter queue ``<prefix>-event-delivery-dlq`` holds what EventBridge gave up delivering
to one of the platform's rule targets (the message is the event; its attributes name the rule and
the target, the audit queue among them), what Lambda gave up invoking the audit writer with (the
message is Lambda's invocation record, the event in ``requestPayload``), and what the audit
queue moved there after its writers failed on it 50 times (the message is the event, with no
message attributes but SQS's system attribute ``DeadLetterQueueSourceArn``: the audit queue).

Putting the event on the bus again is no way back: the bus policy lets no one but the platform's
own functions use the platform's source, and from any other source the writer records it as
forged. So the redrive hands each event straight to the target it was meant for -- the audit
writer (idempotent per event id), the onboarding or offboarding state machine (an execution named
after the event, so a second redrive is refused by Step Functions, not run twice), or the alert
topic -- and deletes the message only once that target took it. A message for any other target, or
one it cannot read, stays.

Only EventBridge and the audit writer's role may send to the queue (its policy), so what is in it
came from the platform's own delivery.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tenant_security.aws import error_code

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef
    from mypy_boto3_stepfunctions import SFNClient

# template.yaml: the AlertTopic target's InputTransformer. The same words, said again.
ALERT_MAIL = (
    "Security alert {alert} in tenant {tenant} at {time} (event {event}). The audit trail has "
    "the details: GET /tenants/{tenant}/audit?action=security:{alert}"
)
RECEIVE_BATCH = 10
# Hidden while a run lasts (each message looked at once per run); a run that dies leaves its
# messages to show again after this long.
HIDE_SECONDS = 300
EXECUTION_NAME = re.compile(r"[^A-Za-z0-9_-]")


class ParkedKind(StrEnum):
    """How a message got into the dead-letter queue."""

    RULE_TARGET = "rule-target"  # EventBridge gave up on a rule's target
    ASYNC_INVOCATION = "async-invocation"  # Lambda gave up on an asynchronous invocation
    AUDIT_QUEUE = "audit-queue"  # the audit queue's writers failed on it (SQS's redrive)


class Target(StrEnum):
    """The platform's targets of bus events."""

    AUDIT_WRITER = "audit-writer"
    ONBOARDING = "onboarding"
    OFFBOARDING = "offboarding"
    ALERTS = "alerts"


class Result(StrEnum):
    """What became of one message."""

    REDRIVEN = "redriven"
    ALREADY_REDRIVEN = "already-redriven"  # the execution named after the event exists
    WOULD_REDRIVE = "would-redrive"  # --dry-run
    KEPT_FAILED = "kept-delivery-failed"
    KEPT_UNKNOWN_TARGET = "kept-unknown-target"
    KEPT_UNREADABLE = "kept-unreadable"


DONE = frozenset({Result.REDRIVEN, Result.ALREADY_REDRIVEN, Result.WOULD_REDRIVE})


class UnreadableMessage(ValueError):
    """A message that is neither an EventBridge dead letter nor a Lambda invocation record."""


@dataclass(frozen=True)
class Parked:
    """One dead-lettered event and where it was going."""

    message_id: str
    receipt_handle: str
    kind: ParkedKind
    target_arn: str
    event: dict[str, Any]
    error: str


def parked(message: Mapping[str, Any]) -> Parked:
    """Read one SQS message of the dead-letter queue (received with all message attributes)."""
    try:
        body = json.loads(message["Body"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UnreadableMessage("the message body is not JSON") from exc
    if not isinstance(body, dict):
        raise UnreadableMessage("the message body is not a JSON object")
    attributes = message.get("MessageAttributes") or {}
    moved_from = (message.get("Attributes") or {}).get(DEAD_LETTER_SOURCE)
    context = body.get("requestContext")
    if isinstance(context, dict) and isinstance(body.get("requestPayload"), dict):
        kind, target, event = ParkedKind.ASYNC_INVOCATION, context.get("functionArn"), body["requestPayload"]
        error = str(context.get("condition") or "")
    elif not attributes and moved_from and _is_event(body):
        # SQS's own redrive, which only it can mark with the queue the message came from (a
        # rule delivering an event here sends the bare event too, but never this attribute)
        kind, target, event, error = ParkedKind.AUDIT_QUEUE, moved_from, body, "maxReceiveCount"
    else:
        kind, event = ParkedKind.RULE_TARGET, body
        target = (attributes.get("TARGET_ARN") or {}).get("StringValue")
        error = str((attributes.get("ERROR_CODE") or {}).get("StringValue") or "")
    if not isinstance(target, str) or not target:
        raise UnreadableMessage("the message does not say which target it was for")
    return Parked(str(message["MessageId"]), str(message["ReceiptHandle"]), kind, target, event, error)


DEAD_LETTER_SOURCE = "DeadLetterQueueSourceArn"  # SQS's system attribute on a moved message


def _is_event(body: Mapping[str, Any]) -> bool:
    return all(isinstance(body.get(name), str) for name in ("id", "source", "detail-type"))


@dataclass(frozen=True)
class PlatformTargets:
    """The ARNs of the platform's targets (named from the resource prefix, as template.yaml does)."""

    by_arn: dict[str, Target]

    @classmethod
    def of(cls, prefix: str, partition: str, region: str, account: str) -> PlatformTargets:
        """The targets of the stack with ``prefix`` in this account and region."""

        def arn(service: str, resource: str) -> str:
            return f"arn:{partition}:{service}:{region}:{account}:{resource}"

        return cls(
            {
                arn("lambda", f"function:{prefix}-audit-writer"): Target.AUDIT_WRITER,
                # the audit rules' target: the writer takes its events (handed on directly)
                arn("sqs", f"{prefix}-audit-events"): Target.AUDIT_WRITER,
                arn("states", f"stateMachine:{prefix}-tenant-onboarding"): Target.ONBOARDING,
                arn("states", f"stateMachine:{prefix}-tenant-offboarding"): Target.OFFBOARDING,
                arn("sns", f"{prefix}-alerts"): Target.ALERTS,
            }
        )

    def target_of(self, arn: str) -> Target | None:
        """Which of the platform's targets ``arn`` is (a function's version or alias included)."""
        found = self.by_arn.get(arn)
        if found is None and arn.count(":") == 7 and ":function:" in arn:
            found = self.by_arn.get(arn.rsplit(":", 1)[0])
        return found

    def arn_of(self, target: Target) -> str:
        """The ARN a redrive hands ``target``'s events to (the function, the workflow, the topic)."""
        return next(arn for arn, which in self.by_arn.items() if which is target)


class DeliveryFailed(Exception):
    """The target did not take the event (the message stays)."""


@dataclass
class Redriver:
    """Hands dead-lettered events to their targets (boto3 clients given)."""

    sqs: SQSClient
    queue_url: str
    targets: PlatformTargets
    lambdas: LambdaClient
    stepfunctions: SFNClient
    sns: Any  # an SNS client (the dev dependencies have no SNS stubs)

    def run(
        self, limit: int = 1000, dry_run: bool = False, progress: Callable[[str], None] = lambda _line: None
    ) -> list[dict[str, Any]]:
        """Redrive up to ``limit`` messages; one report line per message, never the event's content."""
        reports: list[dict[str, Any]] = []
        kept: list[str] = []
        try:
            for message in self._messages(limit):
                report = self._one(message, dry_run)
                reports.append(report)
                if report["result"] not in (Result.REDRIVEN, Result.ALREADY_REDRIVEN):
                    kept.append(str(message["ReceiptHandle"]))
                progress(
                    f"{report['result']:<22} {report.get('event_id') or report['message_id']}"
                    f"  {report.get('detail_type') or ''} -> {report.get('target') or '?'}"
                )
        finally:
            self._show_again(kept)
        return reports

    def _messages(self, limit: int) -> Iterator[MessageTypeDef]:
        taken = 0
        while taken < limit:
            reply = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(RECEIVE_BATCH, limit - taken),
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["DeadLetterQueueSourceArn"],  # DEAD_LETTER_SOURCE
                VisibilityTimeout=HIDE_SECONDS,
                WaitTimeSeconds=1,
            )
            batch = reply.get("Messages") or []
            if not batch:
                return
            for message in batch:
                taken += 1
                yield message

    def _one(self, message: MessageTypeDef, dry_run: bool) -> dict[str, Any]:
        report: dict[str, Any] = {"message_id": message.get("MessageId")}
        try:
            event = parked(message)
        except UnreadableMessage as exc:
            return {**report, "result": Result.KEPT_UNREADABLE, "reason": str(exc)}
        target = self.targets.target_of(event.target_arn)
        report.update(
            kind=event.kind,
            event_id=event.event.get("id"),
            detail_type=event.event.get("detail-type"),
            target=target or event.target_arn,
            error=event.error,
        )
        if target is None:
            return {**report, "result": Result.KEPT_UNKNOWN_TARGET}
        if dry_run:
            return {**report, "result": Result.WOULD_REDRIVE}
        try:
            result = self._deliver(target, event)
        except DeliveryFailed as exc:
            return {**report, "result": Result.KEPT_FAILED, "reason": str(exc)}
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=event.receipt_handle)
        return {**report, "result": result}

    def _show_again(self, receipts: list[str]) -> None:
        """What the run kept is visible again once it ends (hidden while it ran, so each message
        is looked at once): for the SQS console, the alarm and the next run."""
        for start in range(0, len(receipts), RECEIVE_BATCH):
            batch = receipts[start : start + RECEIVE_BATCH]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": receipt, "VisibilityTimeout": 0}
                    for i, receipt in enumerate(batch)
                ],
            )

    def _deliver(self, target: Target, parked_event: Parked) -> Result:
        event, arn = parked_event.event, self.targets.arn_of(target)
        if target in (Target.ONBOARDING, Target.OFFBOARDING):
            return self._start(arn, parked_event)
        try:
            if target is Target.ALERTS:
                self.sns.publish(TopicArn=arn, Message=alert_mail(event))
                return Result.REDRIVEN
            reply = self.lambdas.invoke(
                FunctionName=arn, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
            )
        except Exception as exc:  # throttled, denied, unreachable: the message stays for later
            raise DeliveryFailed(
                f"{target} did not take it: {error_code(exc) or type(exc).__name__}"
            ) from exc
        if reply.get("FunctionError"):
            payload = json.loads(reply["Payload"].read() or b"{}")
            raise DeliveryFailed(f"the audit writer failed: {payload.get('errorType', 'error')}")
        return Result.REDRIVEN

    def _start(self, state_machine: str, parked_event: Parked) -> Result:
        """The workflow, with the rule's input (``InputPath: $.detail``), named after the event."""
        event_id = str(parked_event.event.get("id") or parked_event.message_id)
        name = EXECUTION_NAME.sub("-", f"redrive-{event_id}")[:80]
        try:
            self.stepfunctions.start_execution(
                stateMachineArn=state_machine,
                name=name,
                input=json.dumps(parked_event.event.get("detail") or {}),
            )
        except Exception as exc:
            if error_code(exc) == "ExecutionAlreadyExists":
                return Result.ALREADY_REDRIVEN
            raise DeliveryFailed(
                f"the workflow did not start: {error_code(exc) or type(exc).__name__}"
            ) from exc
        return Result.REDRIVEN


def alert_mail(event: dict[str, Any]) -> str:
    """The alert e-mail of a `Security Alert` event, as the AlertTopic target words it (no PII)."""
    found = event.get("detail")
    detail: dict[str, Any] = found if isinstance(found, dict) else {}
    return ALERT_MAIL.format(
        alert=detail.get("alert", "?"),
        tenant=detail.get("tenant_id", "?"),
        time=event.get("time", "?"),
        event=detail.get("event_id", "?"),
    )
