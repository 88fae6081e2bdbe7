"""Putting platform events (`Security Alert`, `User Activity`, lifecycle events) on the bus.

A failed put is retried; if it still fails it is logged as an error and counted as a metric, so
an event is never lost silently. From the bus a rule (retry policy, dead-letter queue) delivers
every event to the audit writer, which appends it to the tenant's hash chain.

Activity categories and the tenant policy's ``audit_logging`` flags: ``operation`` (reads and
other routine calls) needs log_all_operations, ``data`` (files, records, secrets, audit, reports)
needs log_data_access, ``admin`` (changes to tenants, users, roles, policies, quotas, sessions)
needs log_admin_actions. Authentication, security and lifecycle events, and every refused or
failed call, are always recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.metrics import MetricUnit

from tenant_security.alerts import AlertKind
from tenant_security.observability import logger, metrics
from tenant_security.redaction import redact

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sqs import SQSClient

    from tenant_security.event_pii import PiiSealer
    from tenant_security.models.policies import SecurityPolicies

SECURITY_ALERT = "Security Alert"
USER_ACTIVITY = "User Activity"
QUOTA_THRESHOLD_REACHED = "Quota Threshold Reached"
# A signed checkpoint of a tenant's trail, put for the tenant's own copies (the witnesses).
AUDIT_CHECKPOINT = "Audit Checkpoint"
PUT_ATTEMPTS = 3

Category = Literal["operation", "data", "admin", "authentication", "security", "lifecycle"]
Outcome = Literal["success", "failure", "denied"]
_POLICY_FLAG = {"operation": "log_all_operations", "data": "log_data_access", "admin": "log_admin_actions"}
_DATA_RESOURCES = ("files", "records", "secrets", "audit", "reports")


def category_of(action: str, method: str) -> Category:
    """The audit category of an API action (``files:Read`` is data, a POST to users is admin)."""
    family = action.split(":", 1)[0]
    if family == "auth":
        return "authentication"
    if family in _DATA_RESOURCES or action == "gdpr:Export":
        return "data"
    return "operation" if method.upper() in ("GET", "HEAD") else "admin"


class ActorType(StrEnum):
    """Who acts in a request: a person signed in, or an API client (machine access)."""

    USER = "user"
    CLIENT = "client"


def actor_of(user: str | None, client_id: str | None = None) -> dict[str, str] | None:
    """The ``actor`` of a record: the client (``{type: client, client_id}``) when there is one,
    else ``{type: user}`` -- the user's name stays in ``user``, which travels sealed as personal
    data (event_pii.py); a client id names no person. None: nobody proved who they are."""
    if client_id:
        return {"type": ActorType.CLIENT, "client_id": client_id}
    return {"type": ActorType.USER} if user else None


def outcome_of(status: int) -> Outcome:
    if status < 400:
        return "success"
    return "denied" if status in (401, 403, 429) else "failure"


@dataclass(frozen=True)
class Activity:
    """One recorded action: who did what to which resource, from where, and how it ended."""

    tenant_id: str
    action: str
    outcome: Outcome
    category: Category
    actor_tenant: str | None = None
    user: str | None = None
    resource: str | None = None
    source_ip: str | None = None
    request_id: str | None = None
    status: int | None = None
    reason: str | None = None
    target_user: str | None = None
    target_email: str | None = None
    replay: bool | None = None  # True: an Idempotency-Key's kept reply, the action not done again
    # A policy change's fields: [{field, old, new}] (see tenant_security.policy.changes)
    changes: list[dict[str, Any]] | None = None
    # Who acted: {"type": "user", "user"} or, for an API client's token, {"type": "client",
    # "client_id"} (its ``user`` is the client id too, so ?actor= finds it)
    actor: dict[str, str] | None = None
    # What the request did beyond its route, as scalars (an export's range: exported_from, ...);
    # the writer keeps them in the record's ``details``. Never personal data.
    extra: dict[str, int | str] | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def detail(self) -> dict[str, Any]:
        """The `User Activity` event's detail (None fields left out; ``extra``'s fields flat)."""
        out = {k: v for k, v in asdict(self).items() if v is not None and k != "extra"}
        return {**dict(self.extra or {}), **out}


# Changes of what governs the tenant's security (its policy, its roles and who holds them): always
# recorded, whatever audit_logging says -- else the change that turns log_admin_actions off
# would be the last one anybody could see.
ALWAYS_RECORDED = ("policies:", "roles:", "users:WriteRoles", "users:Create", "users:Delete", "quotas:Write")


def should_record(category: str, outcome: str, policies: SecurityPolicies | None, action: str = "") -> bool:
    """What the tenant's audit_logging flags ask for; refusals, security events and changes of
    the tenant's security configuration (:data:`ALWAYS_RECORDED`) always."""
    if action.startswith(ALWAYS_RECORDED) and category == "admin":
        return True
    flag = _POLICY_FLAG.get(category)
    if flag is None or outcome != "success" or policies is None:
        return True
    return bool(getattr(policies.audit_logging, flag))


class EventPublisher:
    """Puts events with the platform's source on one bus."""

    def __init__(
        self, bus: EventBridgeClient, bus_name: str, source: str, sealer: PiiSealer | None = None
    ) -> None:
        """``bus``: an EventBridge client (or anything with its ``put_events``); ``sealer``: seals
        the personal fields of every event it puts (see :mod:`tenant_security.event_pii`)."""
        self.bus = bus
        self.bus_name = bus_name
        self.source = source
        self.sealer = sealer

    def wire(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        """An event detail as it travels: timed, secrets redacted, personal data sealed."""
        body = {"time": datetime.now(UTC).isoformat(), **redact(dict(detail))}
        return self.sealer.seal(body) if self.sealer is not None else body

    def put(
        self, detail_type: str, detail: Mapping[str, Any], *, raw: bool = False, wired: bool = False
    ) -> bool:
        """Put one event; True once EventBridge accepted it.

        Activity events get a time, are redacted and sealed (:meth:`wire`; ``wired``: done
        already); ``raw`` puts ``detail`` exactly as given (a request another component
        validates, such as `Tenant Onboarding Requested`).
        """
        try:
            body = dict(detail) if raw or wired else self.wire(detail)
        except Exception as exc:  # sealing needs KMS: a throttle here is a record not put
            logger.warning(
                "event not sealed", extra={"detail_type": detail_type, "error_type": type(exc).__name__}
            )
            metrics.add_metric(name="EventPutFailed", unit=MetricUnit.Count, value=1)
            return False
        entry: PutEventsRequestEntryTypeDef = {
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

    def security_alert(self, tenant_id: str, alert: AlertKind, **detail: Any) -> bool:
        """A `Security Alert` (replayed code, lockout, cross-tenant attempt, ...)."""
        return self.put(
            SECURITY_ALERT,
            {
                "event_id": str(uuid.uuid4()),
                "tenant_id": tenant_id,
                "alert": alert,
                "outcome": "denied",
                **{k: v for k, v in detail.items() if v is not None},
            },
        )

    def quota_threshold_reached(self, tenant_id: str, month: str, cost: float, budget: float) -> None:
        """The month's one `Quota Threshold Reached` (the rate limiter's ``on_threshold``)."""
        self.put(
            QUOTA_THRESHOLD_REACHED,
            {"tenant_id": tenant_id, "period": month, "cost": cost, "monthly_budget": budget},
        )

    def activity(self, activity: Activity, policies: SecurityPolicies | None = None) -> bool:
        """Put a `User Activity` event unless the tenant's policy leaves this category out.

        The event id travels in the detail, so a put retried after an unclear failure is still
        one record in the trail (the writer is idempotent per event id).
        """
        if not should_record(activity.category, activity.outcome, policies, activity.action):
            return True
        return self.put(USER_ACTIVITY, activity.detail())


def dead_letter_depth(sqs: SQSClient, queue_url: str) -> int:
    """Platform events EventBridge gave up on and parked in the dead-letter queue (visible and in
    flight): each is an audit record or an onboarding request waiting to be sent again."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
        attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
    )
