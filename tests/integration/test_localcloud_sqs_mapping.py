"""Lambda's SQS event source mapping in the local cloud (localcloud.sqs_pollers), on a FIFO queue.

The fixture's functions write every batch they get to a directory (one JSON line per batch), so
each test reads what Lambda handed over: batches, order, receive counts, outcomes. Every test has
its own message groups (a run id), so they share one cloud.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcloud.sqs_mapping import POLLER_KEY_SUFFIX
from tests.support.cloud import ROOT, RunningCloud, start_cloud, wait_for

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "integration" / "fixtures" / "sqsmapping"
# Failed batches come back after the queue's 4 s visibility timeout: a few rounds at most.
REDELIVERY_TIMEOUT = 90


@dataclass
class SqsCloud:
    cloud: RunningCloud
    records: Path

    def send(self, queue: str, group: str, bodies: list[dict[str, Any]]) -> list[str]:
        """Send ``bodies`` to the group in one SendMessageBatch; their message ids."""
        reply = self.cloud.client("sqs").send_message_batch(
            QueueUrl=self.cloud.outputs[queue],
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": json.dumps({"group": group, **body}),
                    "MessageGroupId": group,
                    "MessageDeduplicationId": uuid.uuid4().hex,
                    "MessageAttributes": {"probe": {"DataType": "String", "StringValue": f"n{i}"}},
                }
                for i, body in enumerate(bodies)
            ],
        )
        assert not reply.get("Failed"), reply
        return [entry["MessageId"] for entry in sorted(reply["Successful"], key=lambda e: int(e["Id"]))]

    def lines(self) -> list[dict[str, Any]]:
        path = self.records / "batches.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def batches(self, group: str) -> list[dict[str, Any]]:
        """The batches that held messages of ``group``, in the order they started."""
        found = [b for b in self.lines() if any(m.get("group") == group for m in b.get("messages", []))]
        return sorted(found, key=lambda b: b["start"])

    def behind_a_hold(self, group: str, bodies: list[dict[str, Any]]) -> None:
        """Queue ``bodies`` while a first message of the group is in flight, then let it finish:
        they are all waiting when the pollers may take the group again (batches of BatchSize)."""
        self.send("OrderedQueueUrl", group, [{"n": 0, "hold": True}])
        wait_for(lambda: any(line.get("held") == group for line in self.lines()))
        self.send("OrderedQueueUrl", group, bodies)
        (self.records / f"release-{group}").touch()


@pytest.fixture(scope="module")
def sqs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsCloud]:
    records = tmp_path_factory.mktemp("sqs-records")
    cloud = start_cloud(
        FIXTURES / "template.yaml",
        tmp_path_factory.mktemp("sqs-cloud"),
        extra=("--parameter", f"RecordDir={records}"),
    )
    yield SqsCloud(cloud, records)
    # the pollers stop with the cloud: a clean exit, nothing left running
    assert cloud.stop() == 0


def run_id() -> str:
    return uuid.uuid4().hex[:10]


def numbers(batch: dict[str, Any]) -> list[int]:
    return [m["n"] for m in batch["messages"]]


def test_a_group_arrives_in_order_in_batches_of_the_batch_size(sqs: SqsCloud) -> None:
    group = f"{run_id()}-a"
    sqs.behind_a_hold(group, [{"n": n} for n in range(1, 8)])
    batches = wait_for(
        lambda: (found := sqs.batches(group)) and sum(len(b["messages"]) for b in found) == 8 and found,
        timeout=REDELIVERY_TIMEOUT,
    )
    # BatchSize 3: the hold alone, then 7 waiting messages as 3 + 3 + 1, in the group's order
    assert [numbers(b) for b in batches] == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert all(b["outcome"] == "ok" for b in batches)
    # one batch of the group at a time: each starts after the one before it ended
    assert all(later["start"] >= earlier["end"] for earlier, later in itertools.pairwise(batches))

    record = batches[1]["messages"][0]["record"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == sqs.cloud.outputs["OrderedQueueArn"]
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324 - SQS's own
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SequenceNumber",
        "MessageGroupId",
        "SenderId",
        "MessageDeduplicationId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(record["attributes"])
    assert record["attributes"]["MessageGroupId"] == group
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {
        "probe": {"stringValue": "n0", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }


def test_groups_run_in_parallel_and_each_one_batch_at_a_time(sqs: SqsCloud) -> None:
    run = run_id()
    groups = [f"{run}-a", f"{run}-b"]
    for group in groups:
        sqs.send("ParallelQueueUrl", group, [{"run": run, "n": n} for n in range(4)])
    batches = wait_for(
        lambda: (
            (
                found := [
                    b for b in sqs.lines() if b.get("function") == "meet" and b["messages"][0]["run"] == run
                ]
            )
            and sum(len(b["messages"]) for b in found) == 8
            and sorted(found, key=lambda b: b["start"])
        ),
        timeout=REDELIVERY_TIMEOUT,
    )
    assert all(len(b["messages"]) <= 2 for b in batches)  # BatchSize 2
    # two batches ran at once (MaximumConcurrency 2): each waited for the other to start
    assert any(
        first["met"] and second["met"] and first["start"] < second["end"] and second["start"] < first["end"]
        for first in batches
        for second in batches
        if first is not second
    )
    for group in groups:
        mine = [b for b in batches if any(m["group"] == group for m in b["messages"])]
        delivered = [m["n"] for b in mine for m in b["messages"] if m["group"] == group]
        assert delivered == [0, 1, 2, 3]  # in order, each once
        assert all(later["start"] >= earlier["end"] for earlier, later in itertools.pairwise(mine))


def test_a_partial_failure_redelivers_only_the_reported_messages(sqs: SqsCloud) -> None:
    group = f"{run_id()}-a"
    sqs.behind_a_hold(group, [{"n": 1}, {"n": 2, "fail_below": 2}, {"n": 3}])
    batches = wait_for(
        lambda: (found := sqs.batches(group)) and found[-1]["outcome"] == "ok" and len(found) >= 3 and found,
        timeout=REDELIVERY_TIMEOUT,
    )
    # the function reports the failed message and the rest of its group (a FIFO consumer's job)
    assert [(numbers(b), b["outcome"]) for b in batches] == [
        ([0], "ok"),
        ([1, 2, 3], "partial"),
        ([2, 3], "ok"),
    ]
    assert [m["receive"] for m in batches[2]["messages"]] == [2, 2]
    assert sorted(m["n"] for m in batches[1]["messages"] if m["id"] in batches[1]["failed"]) == [2, 3]


def test_a_message_the_answer_does_not_name_is_deleted_even_on_a_fifo_queue(sqs: SqsCloud) -> None:
    group = f"{run_id()}-a"
    sqs.behind_a_hold(group, [{"n": 1, "fail_below": 2, "report": "only"}, {"n": 2}])
    batches = wait_for(
        lambda: (found := sqs.batches(group)) and len(found) >= 3 and found, timeout=REDELIVERY_TIMEOUT
    )
    # as on AWS: Lambda deletes every message the answer does not name, so 2 is done before 1
    assert [(numbers(b), b["outcome"]) for b in batches] == [([0], "ok"), ([1, 2], "partial"), ([1], "ok")]


def test_a_function_error_redelivers_the_whole_batch(sqs: SqsCloud) -> None:
    group = f"{run_id()}-a"
    sqs.behind_a_hold(group, [{"n": 1}, {"n": 2, "crash_below": 2}])
    batches = wait_for(
        lambda: (found := sqs.batches(group)) and found[-1]["outcome"] == "ok" and len(found) >= 3 and found,
        timeout=REDELIVERY_TIMEOUT,
    )
    assert [(numbers(b), b["outcome"]) for b in batches] == [([0], "ok"), ([1, 2], "crash"), ([1, 2], "ok")]
    assert [m["receive"] for m in batches[2]["messages"]] == [2, 2]


def test_a_message_received_max_receive_count_times_goes_to_the_dead_letter_queue(sqs: SqsCloud) -> None:
    group = f"{run_id()}-a"
    [message_id] = sqs.send("OrderedQueueUrl", group, [{"n": 1, "fail_always": True}])
    client = sqs.cloud.client("sqs")

    def dead_lettered() -> list[dict[str, Any]]:
        reply = client.receive_message(QueueUrl=sqs.cloud.outputs["OrderedDLQUrl"], MaxNumberOfMessages=10)
        return [m for m in reply.get("Messages", []) if m["MessageId"] == message_id]

    [letter] = wait_for(dead_lettered, timeout=REDELIVERY_TIMEOUT)
    assert json.loads(letter["Body"])["group"] == group
    # maxReceiveCount 3: the function saw it three times, then SQS moved it on the fourth receive
    assert [m["receive"] for b in sqs.batches(group) for m in b["messages"]] == [1, 2, 3]


def test_the_pollers_calls_are_lambdas_not_the_functions(sqs: SqsCloud) -> None:
    group = f"{run_id()}-a"
    sqs.send("OrderedQueueUrl", group, [{"n": 1}])
    wait_for(lambda: sqs.batches(group))
    calls = wait_for(
        lambda: (
            (found := sqs.cloud.http("GET", "/__localcloud/stats").json()["aws_calls"])
            and found.get(f"localcloud-RecorderFunction{POLLER_KEY_SUFFIX}|sqs:DeleteMessageBatch")
            and found
        )
    )
    poller = f"localcloud-RecorderFunction{POLLER_KEY_SUFFIX}"
    assert calls[f"{poller}|sqs:ReceiveMessage"] > 0
    # the function itself made no SQS call: its bill (and its AWS-call count) holds none
    assert not [key for key in calls if key.startswith("localcloud-RecorderFunction|")]
    assert sqs.cloud.http("GET", "/__localcloud/stats").json()["iam"]["denied"] == 0


def test_provisioning_refuses_a_role_that_may_not_delete_from_the_queue(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as refused:
        start_cloud(FIXTURES / "template-no-delete.yaml", tmp_path / "cloud")
    assert (
        "ReaderFunctionBatches (AWS::Lambda::EventSourceMapping): InvalidParameterValueException: "
        "The provided execution role does not have permissions to call DeleteMessage on SQS"
    ) in str(refused.value)
