"""EventBridge rules with SQS queue targets in the local cloud (localcloud.sqs_targets), as AWS
delivers to them: the event (or its InputPath) as the body, sent as ``events.amazonaws.com``
under the queue's policy and key policy, refusals dead-lettered with EventBridge's attributes,
FIFO queues in the target's message group with SQS's deduplication.

Every rule of the fixture matches its own detail-type, and every refusing target has its own
dead-letter queue: each test reads only what it caused.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.eventbridge import DUPLICATES_FILE
from tests.support.cloud import ROOT, RunningCloud, start_cloud, wait_for

pytestmark = pytest.mark.integration

FIXTURE = ROOT / "tests" / "integration" / "fixtures" / "eventsqs" / "template.yaml"
ACCOUNT = "123456789012"
# Retries back off from 0.2 s (start_cloud's --retry-base-seconds); three at most per target
DELIVERY_TIMEOUT = 60


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    running = start_cloud(FIXTURE, tmp_path_factory.mktemp("eventsqs-cloud"))
    yield running
    assert running.stop() == 0


def put(cloud: RunningCloud, detail_type: str, detail: dict[str, Any]) -> str:
    reply = cloud.client("events").put_events(
        Entries=[
            {
                "Source": "eventsqs.tests",
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": cloud.outputs["BusName"],
            }
        ]
    )
    assert reply["FailedEntryCount"] == 0, reply
    return str(reply["Entries"][0]["EventId"])


def peek(cloud: RunningCloud, url: str) -> list[dict[str, Any]]:
    """The queue's messages, left visible (other checks of the same queue still see them)."""
    reply = cloud.client("sqs").receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(reply.get("Messages", []))


def arrived(cloud: RunningCloud, url: str, match: Any) -> dict[str, Any]:
    """The message of ``url`` whose JSON body ``match`` accepts, once it is there."""
    found: dict[str, Any] = wait_for(
        lambda: next((m for m in peek(cloud, url) if match(json.loads(m["Body"]))), None),
        timeout=DELIVERY_TIMEOUT,
    )
    return found


def dead_letter(cloud: RunningCloud, dlq: str, event_id: str) -> dict[str, str]:
    """The dead letter of ``event_id``: its message attributes' values, and its body's event."""
    message = arrived(cloud, cloud.outputs[dlq], lambda body: body.get("id") == event_id)
    values = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    return {**values, "event": message["Body"]}


def count(cloud: RunningCloud, url: str) -> int:
    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def drain(cloud: RunningCloud, url: str, expected: int) -> list[dict[str, Any]]:
    """Receive and delete ``expected`` messages, in the order the queue hands them out."""
    sqs = cloud.client("sqs")
    taken: list[dict[str, Any]] = []

    def take() -> bool:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        for message in reply.get("Messages", []):
            taken.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(taken) >= expected

    wait_for(take, timeout=DELIVERY_TIMEOUT)
    return taken


def test_the_queue_gets_the_event_as_its_body_and_an_input_path_its_part(cloud: RunningCloud) -> None:
    detail = {"probe": uuid.uuid4().hex, "nested": {"n": 1, "text": "é"}}
    event_id = put(cloud, "Whole", detail)

    whole = arrived(cloud, cloud.outputs["WholeQueueUrl"], lambda body: body.get("id") == event_id)
    event = json.loads(whole["Body"])
    assert event == {
        "version": "0",
        "id": event_id,
        "detail-type": "Whole",
        "source": "eventsqs.tests",
        "account": ACCOUNT,
        "time": event["time"],
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert whole["Body"] == json.dumps(event, separators=(",", ":"))  # compact, as EventBridge sends it

    # InputPath $.detail, to a queue whose policy allows the account's rules (aws:SourceAccount)
    part = arrived(cloud, cloud.outputs["PathQueueUrl"], lambda body: body.get("probe") == detail["probe"])
    assert json.loads(part["Body"]) == detail


def test_a_queue_without_a_policy_for_eventbridge_dead_letters_the_event_at_once(cloud: RunningCloud) -> None:
    sqs = cloud.client("sqs")
    detail = {"probe": uuid.uuid4().hex}
    event_id = put(cloud, "Bare", detail)

    letter = dead_letter(cloud, "BareDlqUrl", event_id)
    assert letter["ERROR_CODE"] == "NO_PERMISSIONS"
    assert letter["ERROR_MESSAGE"] == f"Access to the resource {cloud.outputs['BareQueueUrl']} is denied."
    # AWS retries no missing permission: the event goes to the dead-letter queue at once
    assert letter["RETRY_ATTEMPTS"] == "0"
    assert letter["RULE_ARN"] == cloud.outputs["BareRuleArn"]
    assert letter["TARGET_ARN"] == cloud.outputs["BareQueueArn"]
    assert json.loads(letter["event"])["detail"] == detail
    assert count(cloud, cloud.outputs["BareQueueUrl"]) == 0

    # Repetition once the queue allows the rule: the next event is delivered, not dead-lettered
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": cloud.outputs["BareQueueArn"],
                "Condition": {"ArnEquals": {"aws:SourceArn": cloud.outputs["BareRuleArn"]}},
            }
        ],
    }
    sqs.set_queue_attributes(
        QueueUrl=cloud.outputs["BareQueueUrl"], Attributes={"Policy": json.dumps(policy)}
    )
    again = put(cloud, "Bare", detail)
    arrived(cloud, cloud.outputs["BareQueueUrl"], lambda body: body.get("id") == again)
    assert all(json.loads(m["Body"])["id"] != again for m in peek(cloud, cloud.outputs["BareDlqUrl"]))


def test_a_policy_for_another_rule_refuses_this_one(cloud: RunningCloud) -> None:
    event_id = put(cloud, "Stranger", {"probe": uuid.uuid4().hex})
    letter = dead_letter(cloud, "GuardedDlqUrl", event_id)
    assert letter["ERROR_CODE"] == "NO_PERMISSIONS"
    assert letter["RULE_ARN"] == cloud.outputs["StrangerRuleArn"]
    assert count(cloud, cloud.outputs["GuardedQueueUrl"]) == 0


def test_a_fifo_queue_gets_each_event_once_in_order_in_the_targets_group(cloud: RunningCloud) -> None:
    ordered, witness = cloud.outputs["OrderedQueueUrl"], cloud.outputs["WitnessQueueUrl"]
    switch = cloud.state_dir / DUPLICATES_FILE
    switch.write_text("1")  # every event delivered twice to each target, at once
    try:
        ids = []
        for n in range(5):
            ids.append(put(cloud, "Ordered", {"n": n}))
            # EventBridge keeps no order between events: one at a time, each once queued
            wait_for(lambda n=n: count(cloud, ordered) == n + 1, timeout=DELIVERY_TIMEOUT)
        # the standard queue shows the duplicate deliveries: two copies of each event
        wait_for(lambda: count(cloud, witness) == 10, timeout=DELIVERY_TIMEOUT)
        copies = [json.loads(m["Body"])["id"] for m in drain(cloud, witness, 10)]
        assert sorted(copies) == sorted(ids * 2)
    finally:
        switch.unlink()
    clock = put(cloud, "Ordered", {"n": 5})  # a later event, as a clock
    wait_for(lambda: count(cloud, ordered) == 6, timeout=DELIVERY_TIMEOUT)
    drain(cloud, witness, 1)

    messages = drain(cloud, ordered, 6)
    assert [json.loads(m["Body"])["id"] for m in messages] == [*ids, clock]
    for message in messages:
        assert message["Attributes"]["MessageGroupId"] == "audit"  # SqsParameters.MessageGroupId
        # no deduplication id from EventBridge: the queue's content-based one (its body's SHA-256)
        assert (
            message["Attributes"]["MessageDeduplicationId"]
            == hashlib.sha256(message["Body"].encode()).hexdigest()
        )
    assert count(cloud, ordered) == 0  # each duplicate was deduplicated, none queued later
    # A late duplicate after the consumer deleted the event: SQS still knows its deduplication
    # id (5 minutes from the send), so the event is not queued again
    sent = cloud.client("sqs").send_message(
        QueueUrl=ordered, MessageBody=messages[0]["Body"], MessageGroupId="audit"
    )
    assert sent["MessageId"]
    assert count(cloud, ordered) == 0


def test_parallel_events_with_duplicates_reach_a_fifo_queue_once_each(cloud: RunningCloud) -> None:
    ordered, witness = cloud.outputs["OrderedQueueUrl"], cloud.outputs["WitnessQueueUrl"]
    switch = cloud.state_dir / DUPLICATES_FILE
    switch.write_text("2")
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(lambda n: put(cloud, "Ordered", {"n": n, "parallel": True}), range(8)))
        wait_for(lambda: count(cloud, witness) == 24, timeout=DELIVERY_TIMEOUT)
    finally:
        switch.unlink()
    drain(cloud, witness, 24)
    clock = put(cloud, "Ordered", {"n": 8})
    wait_for(
        lambda: clock in [json.loads(m["Body"])["id"] for m in peek(cloud, ordered)], timeout=DELIVERY_TIMEOUT
    )
    messages = drain(cloud, ordered, 9)
    received = [json.loads(m["Body"])["id"] for m in messages]
    assert sorted(received) == sorted([*ids, clock])  # three concurrent copies of each, queued once
    drain(cloud, witness, 1)
    assert count(cloud, ordered) == 0


def test_a_fifo_queue_without_content_based_deduplication_is_retried_then_dead_lettered(
    cloud: RunningCloud,
) -> None:
    event_id = put(cloud, "Undeduped", {"probe": uuid.uuid4().hex})
    letter = dead_letter(cloud, "UndedupedDlqUrl", event_id)
    assert letter["ERROR_CODE"] == "INVALID_PARAMETER"
    assert "ContentBasedDeduplication" in letter["ERROR_MESSAGE"]
    assert letter["RETRY_ATTEMPTS"] == "1"  # not a permission: retried, as its RetryPolicy says


def test_an_encrypted_queue_needs_its_key_policy_to_allow_eventbridge(cloud: RunningCloud) -> None:
    detail = {"probe": uuid.uuid4().hex}
    event_id = put(cloud, "Keys", detail)

    # a key allowing events.amazonaws.com, and SQS-managed encryption: delivered
    arrived(cloud, cloud.outputs["GrantedQueueUrl"], lambda body: body.get("id") == event_id)
    arrived(cloud, cloud.outputs["ManagedSseQueueUrl"], lambda body: body.get("id") == event_id)
    # the account's key policy alone, and the AWS managed key: refused, dead-lettered at once
    letters = wait_for(
        lambda: (
            (
                found := [
                    {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
                    for m in peek(cloud, cloud.outputs["KeysDlqUrl"])
                    if json.loads(m["Body"])["id"] == event_id
                ]
            )
            and len(found) == 2
            and found
        ),
        timeout=DELIVERY_TIMEOUT,
    )
    by_target = {letter["TARGET_ARN"]: letter for letter in letters}
    assert set(by_target) == {cloud.outputs["SealedQueueArn"], cloud.outputs["AwsManagedQueueArn"]}
    for letter in letters:
        assert letter["ERROR_CODE"] == "NO_PERMISSIONS"
        assert letter["ERROR_MESSAGE"].startswith("KMS.AccessDeniedException: events.amazonaws.com")
        assert "kms:GenerateDataKey" in letter["ERROR_MESSAGE"]
        assert letter["RETRY_ATTEMPTS"] == "0"


def test_a_fifo_dead_letter_queue_is_refused_by_put_targets(cloud: RunningCloud) -> None:
    events = cloud.client("events")
    name = f"fifo-dlq-{uuid.uuid4().hex[:8]}"
    bus = cloud.outputs["BusName"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["eventsqs.none"]}))
    try:
        with pytest.raises(ClientError) as refused:
            events.put_targets(
                Rule=name,
                EventBusName=bus,
                Targets=[
                    {
                        "Id": "Witness",
                        "Arn": cloud.outputs["BareQueueArn"],
                        "DeadLetterConfig": {"Arn": cloud.outputs["OrderedQueueArn"]},
                    }
                ],
            )
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert (
            refused.value.response["Error"]["Message"] == "SQS FIFO is not supported by Dead Letter Queues."
        )
        assert events.list_targets_by_rule(Rule=name, EventBusName=bus)["Targets"] == []
    finally:
        events.delete_rule(Name=name, EventBusName=bus)
