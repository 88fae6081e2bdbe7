"""`tenant-security events redrive`: dead-lettered platform events back to their targets.

moto for SQS, Step Functions and SNS; the audit writer's "Lambda" runs the real writer in-process
(moto's Lambda needs Docker), answering as Lambda's Invoke does. Red team A: the runbook's
`aws events put-events` could not work (the bus policy refuses the platform's source, and any
other source is recorded as forged).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml

from tenant_security.redrive import ALERT_MAIL, PlatformTargets, Redriver, Result, Target
from tests.support.audit import PREFIX, AuditStack, activity_event, audit_stack
from tests.support.moto import mocked_aws

REGION, ACCOUNT = "us-east-1", "123456789012"
TARGETS = PlatformTargets.of(PREFIX, "aws", REGION, ACCOUNT)
PASS = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


class WriterLambda:
    """Lambda's Invoke of the audit writer, running the real writer on the payload."""

    def __init__(self, stack: AuditStack) -> None:
        self.stack, self.failing, self.invoked = stack, False, []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        assert InvocationType == "RequestResponse"
        self.invoked.append(FunctionName)
        if self.failing:
            error = {"errorType": "RuntimeError", "errorMessage": "KMS is throttling"}
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": io.BytesIO(json.dumps(error).encode()),
            }
        appended = self.stack.writer().append(json.loads(Payload))
        return {
            "StatusCode": 200,
            "Payload": io.BytesIO(json.dumps({"sequence": appended.sequence}).encode()),
        }


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mocked_aws(monkeypatch):
        stack = audit_stack()
        stack.add_tenant("acme")
        sqs, sfn, sns = (boto3.client(n, region_name=REGION) for n in ("sqs", "stepfunctions", "sns"))
        queue = sqs.create_queue(QueueName=f"{PREFIX}-event-delivery-dlq")["QueueUrl"]
        role = f"arn:aws:iam::{ACCOUNT}:role/states"
        for which in ("onboarding", "offboarding"):
            sfn.create_state_machine(name=f"{PREFIX}-tenant-{which}", definition=PASS, roleArn=role)
        sns.create_topic(Name=f"{PREFIX}-alerts")
        writer = WriterLambda(stack)
        yield {
            "stack": stack,
            "sqs": sqs,
            "queue": queue,
            "sfn": sfn,
            "writer": writer,
            "redriver": Redriver(sqs, queue, TARGETS, writer, sfn, sns),
        }


def _dead_letter(world: dict[str, Any], event: dict[str, Any], target: str) -> None:
    """As EventBridge parks an event it gave up on: the event, and who it was for."""

    def attribute(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value}

    world["sqs"].send_message(
        QueueUrl=world["queue"],
        MessageBody=json.dumps(event),
        MessageAttributes={
            "ERROR_CODE": attribute("SDK_CLIENT_ERROR"),
            "ERROR_MESSAGE": attribute("Lambda is throttling"),
            "RULE_ARN": attribute(f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{PREFIX}-platform/rule"),
            "TARGET_ARN": attribute(target),
        },
    )


def _failed_invocation(world: dict[str, Any], event: dict[str, Any]) -> None:
    """As Lambda's on-failure destination records an asynchronous invocation it gave up on."""
    record = {
        "version": "1.0",
        "timestamp": "2026-11-26T12:00:00.000Z",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": TARGETS.arn_of(Target.AUDIT_WRITER) + ":$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "Task timed out after 30.00 seconds"},
    }
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps(record))


def _depth(world: dict[str, Any]) -> int:
    attributes = world["sqs"].get_queue_attributes(
        QueueUrl=world["queue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _trail(stack: AuditStack, tenant: str = "acme") -> list[dict[str, Any]]:
    return stack.reader().query(tenant, limit=50)["items"]


def test_an_audit_event_eventbridge_gave_up_on_reaches_its_tenants_trail_once(world: dict[str, Any]) -> None:
    event = activity_event("acme", 1, action="users:Delete", category="admin")
    _dead_letter(world, event, TARGETS.arn_of(Target.AUDIT_WRITER))
    _failed_invocation(world, event)  # the same event, parked twice (at-least-once delivery)
    reports = world["redriver"].run()
    assert [r["result"] for r in reports] == [Result.REDRIVEN, Result.REDRIVEN]
    assert {r["kind"] for r in reports} == {"rule-target", "async-invocation"}
    (record,) = _trail(world["stack"])  # the writer is idempotent per event id
    assert (record["action"], record["event_id"]) == ("users:Delete", "acme-1")
    assert _depth(world) == 0
    assert world["redriver"].run() == []  # nothing left


def _moved_by_the_audit_queue(world: dict[str, Any], event: dict[str, Any]) -> None:
    """As SQS's redrive moves an event the audit queue's writers failed on (maxReceiveCount)."""
    from localcloud.motohooks import dead_letter_source_arns

    dead_letter_source_arns()  # what SQS marks a moved message with (moto does not)
    sqs = world["sqs"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=world["queue"], AttributeNames=["QueueArn"])["Attributes"]
    source = sqs.create_queue(
        QueueName=f"{PREFIX}-audit-events",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": 1}),
            "VisibilityTimeout": "0",
        },
    )["QueueUrl"]
    sqs.send_message(QueueUrl=source, MessageBody=json.dumps(event))
    sqs.receive_message(QueueUrl=source)  # the writer's one try
    assert not sqs.receive_message(QueueUrl=source).get("Messages")  # ... then moved


def test_audit_events_parked_on_the_way_to_or_from_the_audit_queue_reach_the_trail_once(
    world: dict[str, Any],
) -> None:
    """EventBridge gave up sending to the audit queue (the target is the queue), and the queue
    moved an event its writers failed on (SQS's redrive: the event, DeadLetterQueueSourceArn)."""
    first = activity_event("acme", 1, action="users:Delete", category="admin")
    second = activity_event("acme", 2, action="roles:Write", category="admin")
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{PREFIX}-audit-events"
    _dead_letter(world, first, queue_arn)
    _moved_by_the_audit_queue(world, second)
    reports = world["redriver"].run()
    assert [r["result"] for r in reports] == [Result.REDRIVEN] * 2
    assert [r["kind"] for r in reports] == ["rule-target", "audit-queue"]
    assert [r["target"] for r in reports] == [Target.AUDIT_WRITER] * 2
    assert [r["action"] for r in _trail(world["stack"])] == ["users:Delete", "roles:Write"]
    assert world["writer"].invoked == [TARGETS.arn_of(Target.AUDIT_WRITER)] * 2
    assert _depth(world) == 0


def test_a_bare_event_some_rule_delivered_here_is_not_taken_for_the_audit_queues(
    world: dict[str, Any],
) -> None:
    """Red team 20: a rule of the account with this queue as its target puts the bare event, with
    no attributes; only SQS's DeadLetterQueueSourceArn says the audit queue moved it."""
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps(activity_event("acme", 9)))
    (report,) = world["redriver"].run()
    assert report["result"] == Result.KEPT_UNREADABLE
    assert _trail(world["stack"]) == []


def test_a_message_without_attributes_that_is_no_event_stays(world: dict[str, Any]) -> None:
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps({"id": "x", "detail": {}}))
    (report,) = world["redriver"].run()
    assert report["result"] == Result.KEPT_UNREADABLE
    assert _depth(world) == 1


def test_a_dead_letter_the_writer_still_fails_on_stays_in_the_queue(world: dict[str, Any]) -> None:
    world["writer"].failing = True
    _dead_letter(world, activity_event("acme", 1), TARGETS.arn_of(Target.AUDIT_WRITER))
    (report,) = world["redriver"].run()
    assert report["result"] == Result.KEPT_FAILED
    assert "RuntimeError" in report["reason"]
    assert world["sqs"].receive_message(QueueUrl=world["queue"]).get("Messages")  # there for the next run
    assert _trail(world["stack"]) == []


def test_an_onboarding_request_starts_its_workflow_once_however_often_it_is_redriven(
    world: dict[str, Any],
) -> None:
    request = {"tenant_id": "newco", "name": "NewCo", "isolation": "schema"}
    event = {
        "id": "8f1c-eb",
        "source": "dcisionai.operators",
        "detail-type": "Tenant Onboarding Requested",
        "time": "2026-11-26T12:00:00Z",
        "detail": request,
    }
    target = TARGETS.arn_of(Target.ONBOARDING)
    _dead_letter(world, event, target)
    assert [r["result"] for r in world["redriver"].run()] == [Result.REDRIVEN]
    world["sfn"].stop_execution(
        executionArn=world["sfn"].list_executions(stateMachineArn=target)["executions"][0]["executionArn"]
    )
    _dead_letter(world, event, target)  # parked again (a second delivery gave up too)
    assert [r["result"] for r in world["redriver"].run()] == [Result.ALREADY_REDRIVEN]
    (execution,) = world["sfn"].list_executions(stateMachineArn=target)["executions"]
    assert execution["name"] == "redrive-8f1c-eb"
    described = world["sfn"].describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == request  # the rule's InputPath: $.detail
    assert _depth(world) == 0


@pytest.mark.parametrize(
    "target",
    [
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:someone-elses-function",
        f"arn:aws:lambda:{REGION}:999999999999:function:{PREFIX}-audit-writer",  # another account
        f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:other-tenant-onboarding",  # another stack
    ],
)
def test_a_dead_letter_for_a_target_not_the_platforms_is_kept_and_never_delivered(
    world: dict[str, Any], target: str
) -> None:
    _dead_letter(world, activity_event("acme", 1), target)
    (report,) = world["redriver"].run()
    assert report["result"] == Result.KEPT_UNKNOWN_TARGET
    assert world["writer"].invoked == []
    assert _depth(world) == 1


@pytest.mark.parametrize("body", ["not json", "[1, 2]", json.dumps({"id": "x"})])
def test_an_unreadable_message_is_kept_and_reported(world: dict[str, Any], body: str) -> None:
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=body)
    (report,) = world["redriver"].run()
    assert report["result"] == Result.KEPT_UNREADABLE
    assert _depth(world) == 1


def test_a_dry_run_delivers_nothing_and_leaves_the_messages_visible(world: dict[str, Any]) -> None:
    _dead_letter(world, activity_event("acme", 1), TARGETS.arn_of(Target.AUDIT_WRITER))
    (report,) = world["redriver"].run(dry_run=True)
    assert report["result"] == Result.WOULD_REDRIVE
    assert "detail" not in report  # a report says what and where, never the content
    assert world["writer"].invoked == []
    assert world["sqs"].receive_message(QueueUrl=world["queue"]).get("Messages")  # visible at once


def test_a_forged_event_redriven_is_still_recorded_as_forged(world: dict[str, Any]) -> None:
    """The redrive hands the writer the event as it was: its source decides, not the redrive."""
    forged = {**activity_event("acme", 1, action="tenants:Delete"), "source": "attacker.example"}
    _dead_letter(world, forged, TARGETS.arn_of(Target.AUDIT_WRITER))
    assert [r["result"] for r in world["redriver"].run()] == [Result.REDRIVEN]
    assert _trail(world["stack"]) == []
    (record,) = _trail(world["stack"], "platform")
    assert record["action"] == "security:forged_event"


def test_the_redriven_alert_mail_says_what_the_topics_input_transformer_says() -> None:
    with open("template.yaml", encoding="utf-8") as handle:
        template = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - our own template, tags kept
    (target,) = template["Resources"]["SecurityAlertsToTopic"]["Properties"]["Targets"]
    words = target["InputTransformer"]["InputTemplate"].strip('"')
    assert words == ALERT_MAIL.format(alert="<alert>", tenant="<tenant>", time="<time>", event="<event>")


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
