"""Putting platform events (`Security Alert`, `User Activity`, lifecycle events) on the bus.

A failed put is retried; if it still fails it is logged as an error and counted as a metric, so
an event is never lost silently (the audit issue adds the durable path).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from tenant_security.observability import logger, metrics
from tenant_security.redaction import redact

SECURITY_ALERT = "Security Alert"
USER_ACTIVITY = "User Activity"
PUT_ATTEMPTS = 3


class EventPublisher:
    """Puts events with the platform's source on one bus."""

    def __init__(self, bus: Any, bus_name: str, source: str) -> None:
        """``bus``: an EventBridge client (or anything with its ``put_events``)."""
        self.bus = bus
        self.bus_name = bus_name
        self.source = source

    def put(self, detail_type: str, detail: Mapping[str, Any], *, raw: bool = False) -> bool:
        """Put one event; True once EventBridge accepted it.

        Activity events get a time and are redacted; ``raw`` puts ``detail`` exactly as given (a
        request another component validates, such as `Tenant Onboarding Requested`).
        """
        body = dict(detail) if raw else {"time": datetime.now(UTC).isoformat(), **redact(dict(detail))}
        entry = {
            "Source": self.source,
            "DetailType": detail_type,
            "Detail": json.dumps(body, default=str),
            "EventBusName": self.bus_name,
        }
        for attempt in range(1, PUT_ATTEMPTS + 1):
            try:
                reply = self.bus.put_events(Entries=[entry])
                if not reply.get("FailedEntryCount"):
                    return True
                logger.warning("event not accepted", extra={"detail_type": detail_type, "attempt": attempt})
            except Exception as exc:
                logger.warning(
                    "event put failed",
                    extra={"detail_type": detail_type, "attempt": attempt, "error": str(exc)},
                )
        logger.error("event lost after retries", extra={"detail_type": detail_type})
        metrics.add_metric(name="EventPutFailed", unit=MetricUnit.Count, value=1)
        return False

    def security_alert(self, tenant_id: str, alert: str, **detail: Any) -> bool:
        """A `Security Alert` (replayed code, lockout, cross-tenant attempt, ...)."""
        return self.put(
            SECURITY_ALERT, {"tenant_id": tenant_id, "alert": alert, "outcome": "denied", **detail}
        )
