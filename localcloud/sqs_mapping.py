"""Lambda's event source mapping for SQS: what a mapping is, how it is validated, the event.

``Events: {Type: SQS}`` in SAM becomes an ``AWS::Lambda::EventSourceMapping``; the local cloud
runs it with its own pollers (:mod:`localcloud.sqs_pollers`), never moto's (moto would invoke the
function inside each SendMessage call). Validated when the mapping is created, with Lambda's
messages: batch size (1..10 for FIFO queues, 1..10000 otherwise, more than 10 only with a batching
window), the batching window (0..300 s, none on FIFO queues), the queue's visibility timeout (at
least the function's timeout), ``ScalingConfig.MaximumConcurrency`` (2..1000) and
``FunctionResponseTypes``. A property the local cloud does not emulate (``FilterCriteria``...) is
refused, never ignored.

With ``ReportBatchItemFailures`` the function answers ``{"batchItemFailures": [{"itemIdentifier":
<messageId>}]}`` (:func:`failed_items`): the messages it names stay, every other one is deleted --
on a FIFO queue too, so reporting the failed message *and everything after it in its group* is the
function's job, as AWS's documentation says.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from localcloud.lambdas import DEFAULT_CONCURRENCY, FunctionSpec

POLLER_KEY_SUFFIX = "-sqs-poller"
# Lambda's defaults and quotas for SQS event sources.
DEFAULT_BATCH_SIZE = 10
FIFO_MAX_BATCH_SIZE = 10
STANDARD_MAX_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW = 300
SCALING_RANGE = (2, 1000)
RECEIVE_MAX = 10  # SQS's ReceiveMessage limit
# What Lambda puts in a record's attributes (from the message's system attributes).
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "SenderId",
    "MessageDeduplicationId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)
_PROPERTIES = {
    "EventSourceArn",
    "FunctionName",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "ScalingConfig",
    "Enabled",
    "Tags",
}


class FunctionResponseType(StrEnum):
    """``FunctionResponseTypes`` values for SQS."""

    REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"


class MappingRefused(ValueError):
    """Lambda refused the mapping (CreateEventSourceMapping's error code and message)."""

    def __init__(self, message: str, code: str = "InvalidParameterValueException") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def poller_key(function_key: str) -> str:
    """The access key a function's SQS pollers sign with (its role, counted apart from it)."""
    return f"{function_key}{POLLER_KEY_SUFFIX}"


@dataclass(frozen=True)
class Queue:
    """What the poller needs of the queue."""

    arn: str
    url: str
    fifo: bool
    visibility_timeout: int


@dataclass(frozen=True)
class SqsMapping:
    """One validated mapping."""

    logical_id: str
    uuid: str
    function: FunctionSpec
    queue: Queue
    batch_size: int
    window: int
    report_failures: bool
    maximum_concurrency: int | None
    enabled: bool

    @property
    def concurrency(self) -> int:
        """Concurrent batches: MaximumConcurrency, never above the function's own concurrency."""
        limit = self.function.reserved_concurrency
        limit = DEFAULT_CONCURRENCY if limit is None else limit
        if self.maximum_concurrency is not None:
            limit = min(limit, self.maximum_concurrency)
        return max(1, limit)  # reserved concurrency 0: one poller, every invocation throttled


def _out_of_range(name: str, value: int, low: int, high: int) -> MappingRefused | None:
    if low <= value <= high:
        return None
    bound, word = (low, "greater") if value < low else (high, "less")
    return MappingRefused(
        f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint: "
        f"Member must have value {word} than or equal to {bound}",
        "ValidationException",
    )


def mapping_of(logical_id: str, props: Mapping[str, Any], function: FunctionSpec, queue: Queue) -> SqsMapping:
    """The mapping ``props`` describe, or :class:`MappingRefused` with Lambda's message."""
    unknown = sorted(set(props) - _PROPERTIES)
    if unknown:
        raise MappingRefused(f"the local cloud does not emulate {unknown} of an SQS event source mapping")
    batch_size = int(props.get("BatchSize", DEFAULT_BATCH_SIZE))
    window = int(props.get("MaximumBatchingWindowInSeconds", 0))
    refusal = _out_of_range("maximumBatchingWindowInSeconds", window, 0, MAX_BATCHING_WINDOW)
    if refusal:
        raise refusal
    if queue.fifo:
        if window > 0:
            raise MappingRefused("Batching window is not supported for FIFO queues")
        if not 1 <= batch_size <= FIFO_MAX_BATCH_SIZE:
            raise MappingRefused(f"Maximum batch size must be between 1 and {FIFO_MAX_BATCH_SIZE} inclusive")
    elif not 1 <= batch_size <= STANDARD_MAX_BATCH_SIZE:
        raise MappingRefused(f"Maximum batch size must be between 1 and {STANDARD_MAX_BATCH_SIZE} inclusive")
    elif batch_size > RECEIVE_MAX and window == 0:
        raise MappingRefused(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
        )
    types = [str(t) for t in props.get("FunctionResponseTypes") or []]
    if any(t not in set(FunctionResponseType) for t in types):
        raise MappingRefused(
            f"1 validation error detected: Value '{types}' at 'functionResponseTypes' failed to satisfy "
            "constraint: Member must satisfy enum value set: [ReportBatchItemFailures]",
            "ValidationException",
        )
    scaling = (props.get("ScalingConfig") or {}).get("MaximumConcurrency")
    maximum = int(scaling) if scaling is not None else None
    if maximum is not None:
        refusal = _out_of_range("scalingConfig.maximumConcurrency", maximum, *SCALING_RANGE)
        if refusal:
            raise refusal
    if queue.visibility_timeout < function.timeout:
        raise MappingRefused(
            f"Queue visibility timeout: {queue.visibility_timeout} seconds is less than Function "
            f"timeout: {function.timeout} seconds"
        )
    enabled = str(props.get("Enabled", True)).lower() != "false"
    return SqsMapping(
        logical_id,
        str(uuid.uuid4()),
        function,
        queue,
        batch_size,
        window,
        FunctionResponseType.REPORT_BATCH_ITEM_FAILURES in types,
        maximum,
        enabled,
    )


def failed_items(payload: Any, message_ids: list[str]) -> set[str] | None:
    """The message ids a ReportBatchItemFailures response names; None when the response is
    invalid, which fails the whole batch (AWS: an item without an ``itemIdentifier``, an empty or
    null one, or one that is not a message of the batch). No response, an empty one or no
    ``batchItemFailures`` is complete success."""
    if payload is None:
        return set()
    if not isinstance(payload, dict):
        return None
    items = payload.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        return None
    known, failed = set(message_ids), set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in known:
            return None
        failed.add(identifier)
    return failed


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ReceiveMessage message as a record of Lambda's SQS event."""
    attributes = message.get("Attributes") or {}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: attributes[k] for k in _RECORD_ATTRIBUTES if k in attributes},
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record
