"""The local cloud's SQS event source mappings: validation, the event, batch responses, FIFO groups."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localcloud import sqsfifo
from localcloud.lambdas import DEFAULT_CONCURRENCY, FunctionSpec
from localcloud.sqs_mapping import MappingRefused, Queue, failed_items, mapping_of, sqs_record

FIFO = Queue("arn:aws:sqs:us-east-1:123456789012:q.fifo", "http://sqs/123456789012/q.fifo", True, 30)
STANDARD = Queue("arn:aws:sqs:us-east-1:123456789012:q", "http://sqs/123456789012/q", False, 30)


def function(timeout: int = 10, reserved: int | None = None) -> FunctionSpec:
    return FunctionSpec(
        logical_id="Writer",
        name="writer",
        arn="arn:aws:lambda:us-east-1:123456789012:function:writer",
        handler="app.handler",
        code_dir=Path("."),
        layer_dirs=(),
        environment={},
        timeout=timeout,
        reserved_concurrency=reserved,
    )


@pytest.mark.parametrize(
    ("queue", "props", "timeout", "code", "message"),
    [
        (FIFO, {"BatchSize": 11}, 10, "InvalidParameterValueException", "between 1 and 10 inclusive"),
        (FIFO, {"BatchSize": 0}, 10, "InvalidParameterValueException", "between 1 and 10 inclusive"),
        (
            FIFO,
            {"MaximumBatchingWindowInSeconds": 1},
            10,
            "InvalidParameterValueException",
            "Batching window is not supported for FIFO queues",
        ),
        (
            STANDARD,
            {"BatchSize": 11},
            10,
            "InvalidParameterValueException",
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10",
        ),
        (
            STANDARD,
            {"BatchSize": 10_001, "MaximumBatchingWindowInSeconds": 5},
            10,
            "InvalidParameterValueException",
            "between 1 and 10000 inclusive",
        ),
        (
            STANDARD,
            {"MaximumBatchingWindowInSeconds": 301},
            10,
            "ValidationException",
            "Value '301' at 'maximumBatchingWindowInSeconds' failed to satisfy constraint",
        ),
        (
            FIFO,
            {"ScalingConfig": {"MaximumConcurrency": 1}},
            10,
            "ValidationException",
            "Member must have value greater than or equal to 2",
        ),
        (
            FIFO,
            {"ScalingConfig": {"MaximumConcurrency": 1001}},
            10,
            "ValidationException",
            "Member must have value less than or equal to 1000",
        ),
        (
            FIFO,
            {"FunctionResponseTypes": ["ReportEverything"]},
            10,
            "ValidationException",
            "enum value set: [ReportBatchItemFailures]",
        ),
        (
            FIFO,
            {},
            31,
            "InvalidParameterValueException",
            "Queue visibility timeout: 30 seconds is less than Function timeout: 31 seconds",
        ),
        (FIFO, {"FilterCriteria": {"Filters": []}}, 10, "InvalidParameterValueException", "does not emulate"),
    ],
)
def test_a_mapping_lambda_refuses_is_refused_with_its_message(
    queue: Queue, props: dict[str, Any], timeout: int, code: str, message: str
) -> None:
    with pytest.raises(MappingRefused) as refused:
        mapping_of(
            "Mapping",
            {"EventSourceArn": queue.arn, "FunctionName": "writer", **props},
            function(timeout),
            queue,
        )
    assert refused.value.code == code
    assert message in str(refused.value)


def test_a_mapping_gets_lambdas_defaults() -> None:
    mapping = mapping_of("Mapping", {"EventSourceArn": FIFO.arn, "FunctionName": "writer"}, function(), FIFO)
    assert (mapping.batch_size, mapping.window, mapping.report_failures, mapping.enabled) == (
        10,
        0,
        False,
        True,
    )
    assert mapping.maximum_concurrency is None
    assert mapping.concurrency == DEFAULT_CONCURRENCY


def test_a_standard_queue_takes_large_batches_with_a_window_and_a_disabled_mapping_stays_disabled() -> None:
    props = {
        "EventSourceArn": STANDARD.arn,
        "FunctionName": "writer",
        "BatchSize": "100",  # a Number parameter arrives as a string
        "MaximumBatchingWindowInSeconds": 5,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "Enabled": "false",
    }
    mapping = mapping_of("Mapping", props, function(), STANDARD)
    assert (mapping.batch_size, mapping.window, mapping.report_failures, mapping.enabled) == (
        100,
        5,
        True,
        False,
    )


@pytest.mark.parametrize(
    ("maximum", "reserved", "expected"),
    [(5, 1, 1), (2, None, 2), (None, 3, 3), (None, 0, 1), (1000, None, DEFAULT_CONCURRENCY)],
)
def test_the_pollers_never_outnumber_the_functions_concurrency(
    maximum: int | None, reserved: int | None, expected: int
) -> None:
    scaling = {"ScalingConfig": {"MaximumConcurrency": maximum}} if maximum else {}
    props = {"EventSourceArn": FIFO.arn, "FunctionName": "writer", **scaling}
    assert mapping_of("Mapping", props, function(reserved=reserved), FIFO).concurrency == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"statusCode": 200}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}, {"a", "b"}),
        # invalid: the whole batch failed
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
        ({"batchItemFailures": [{"itemId": "a"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]}, None),
        ({"batchItemFailures": "a"}, None),
        ({"batchItemFailures": ["a"]}, None),
        ("ok", None),
        ([{"itemIdentifier": "a"}], None),
    ],
)
def test_a_batch_item_failures_answer_is_read_as_lambda_reads_it(
    payload: Any, expected: set[str] | None
) -> None:
    assert failed_items(payload, ["a", "b"]) == expected


def test_a_message_becomes_lambdas_sqs_record() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "hello",
        "MD5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "MD5OfMessageAttributes": "abc",
        "Attributes": {"ApproximateReceiveCount": "2", "MessageGroupId": "t1", "Policy": "not a message's"},
        "MessageAttributes": {
            "kind": {"DataType": "String", "StringValue": "audit"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    }
    assert sqs_record(message, FIFO.arn, "eu-west-1") == {
        "messageId": "m1",
        "receiptHandle": "r1",
        "body": "hello",
        "attributes": {"ApproximateReceiveCount": "2", "MessageGroupId": "t1"},
        "messageAttributes": {
            "kind": {
                "stringValue": "audit",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            },
            "blob": {
                "binaryValue": base64.b64encode(b"\x00\x01").decode(),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "md5OfMessageAttributes": "abc",
        "eventSource": "aws:sqs",
        "eventSourceARN": FIFO.arn,
        "awsRegion": "eu-west-1",
    }


def test_a_fifo_group_comes_back_in_order_after_its_batch_timed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.sqs.models import SQSBackend

    for name in ("receive_message", "delete_message", "change_message_visibility"):
        monkeypatch.setattr(SQSBackend, name, getattr(SQSBackend, name))  # restored after the test
    monkeypatch.setattr(SQSBackend, "_localcloud_fifo_groups", False, raising=False)
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        sqsfifo.install()
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        for n in (1, 2):
            sqs.send_message(
                QueueUrl=url, MessageBody=str(n), MessageGroupId="g", MessageDeduplicationId=str(n)
            )
        # a batch received and never deleted: visibility 0 stands for a timed-out one
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
        assert [m["Body"] for m in first] == ["1", "2"]
        # moto alone gave ["2"]: the first message skipped while the second was still "pending"
        assert [m["Body"] for m in again] == ["1", "2"]
        # and while they are in flight the group gives nothing
        assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
