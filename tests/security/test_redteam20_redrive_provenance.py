"""Red team, issue 20: what `events redrive` takes as "moved here by the audit queue".

A message with no message attributes whose body looks like an event is now handed to the audit
writer as the platform's own (ParkedKind.AUDIT_QUEUE). But SQS's redrive is not the only way to
put such a message in the dead-letter queue: its policy lets *any* EventBridge rule of the
account send (``aws:SourceAccount`` only), and a rule whose target is that queue delivers the
bare event, with no attributes -- e.g. a rule on the default bus, where nothing stops the
platform's source. The moved message has one thing a delivery cannot forge: SQS's system
attribute ``DeadLetterQueueSourceArn`` (the audit queue's ARN).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcloud.template import transform_template
from tenant_security.redrive import ParkedKind, UnreadableMessage, parked
from tests.support.audit import activity_event
from tests.support.cloud import REAL_TEMPLATE
from tests.support.iam import statements

AUDIT_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:tst-audit-events"


def _message(body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": json.dumps(body), **extra}


def test_a_bare_event_delivered_by_some_rule_is_not_taken_for_the_audit_queues() -> None:
    """What an EventBridge rule (any rule of the account) with this queue as its target puts
    here: the event, no message attributes, no DeadLetterQueueSourceArn."""
    event = activity_event("acme", 1, action="users:Delete")
    try:
        found = parked(_message(event))
    except UnreadableMessage:
        return  # kept: the secure behaviour
    assert found.kind is not ParkedKind.AUDIT_QUEUE, "a bare event is handed to the writer as the platform's"


def test_an_event_the_audit_queue_moved_is_still_recognised() -> None:
    event = activity_event("acme", 1, action="users:Delete")
    found = parked(_message(event, Attributes={"DeadLetterQueueSourceArn": AUDIT_QUEUE_ARN}))
    assert found.kind is ParkedKind.AUDIT_QUEUE


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return transform_template(REAL_TEMPLATE, {}, "us-east-1")[0]


def test_only_the_platforms_rules_may_dead_letter_into_the_event_dlq(cfn: dict[str, Any]) -> None:
    """The redrive trusts the queue's content as the platform's own delivery: the EventBridge
    allowance must name the platform's rules (aws:SourceArn), not every rule of the account."""
    policy = cfn["Resources"]["EventDeliveryDLQPolicy"]["Properties"]["PolicyDocument"]
    allows = [
        s
        for s in statements(policy)
        if s.get("Effect") == "Allow" and (s.get("Principal") or {}).get("Service") == "events.amazonaws.com"
    ]
    assert allows
    for statement in allows:
        conditions = json.dumps(statement.get("Condition", {}))
        assert "aws:SourceArn" in conditions, statement
