"""The audit queue's batches: SQS messages (each an EventBridge event the audit rules delivered)
appended in one call, and Lambda's partial batch response for the ones that failed.

Only the audit rules may send to the queue (its policy), so a message is the event EventBridge
put. One that is not an event at all is not dropped: it is appended to the platform's chain as a
forged event (its SQS message id as its id), like an event from a foreign source.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenant_security.audit.writer import Appended

UNREADABLE_SOURCE = "aws.sqs:unreadable-message"


class Appends(Protocol):
    def append_all(self, events: Sequence[Mapping[str, Any]]) -> list[Appended | Exception]:
        """The writer's: each event's outcome (audit/writer.py)."""


@dataclass
class BatchReport:
    """What a batch did: Lambda's ``batchItemFailures`` and the counts the metrics report."""

    failed: list[str] = field(default_factory=list)  # SQS message ids, returned to the queue
    appended: int = 0
    duplicates: int = 0
    forged: int = 0
    lags: list[str] = field(default_factory=list)  # the appended events' times (for AuditLag)

    def response(self) -> dict[str, Any]:
        """The partial batch response (ReportBatchItemFailures)."""
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in self.failed]}


def event_of(message: Mapping[str, Any]) -> dict[str, Any]:
    """The EventBridge event a message carries (or, for one that carries none, a forged event
    that records its arrival)."""
    try:
        event = json.loads(str(message.get("body", "")))
    except ValueError:
        event = None
    if isinstance(event, dict) and event.get("id") and isinstance(event.get("detail", {}), dict):
        return event
    return {
        "id": f"sqs-{message.get('messageId')}",
        "source": UNREADABLE_SOURCE,
        "detail-type": "Unreadable Message",
        "time": None,
        "detail": {},
    }


def append_messages(writer: Appends, messages: Iterable[Mapping[str, Any]]) -> BatchReport:
    """Append every message's event; the report names the messages whose append failed."""
    listed = list(messages)
    events = [event_of(m) for m in listed]
    report = BatchReport()
    for message, event, outcome in zip(listed, events, writer.append_all(events), strict=True):
        if isinstance(outcome, Exception):
            report.failed.append(str(message.get("messageId")))
        elif outcome.duplicate:
            report.duplicates += 1
        else:
            report.appended += 1
            report.forged += int(outcome.forged)
            if event.get("time"):
                report.lags.append(str(event["time"]))
    return report
