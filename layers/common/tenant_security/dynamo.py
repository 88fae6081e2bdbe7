"""DynamoDB item (de)serialisation shared by the stores."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values → DynamoDB attribute values (None values are left out)."""
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def to_value(value: Any) -> dict[str, Any]:
    """One Python value → one DynamoDB attribute value."""
    serialized: dict[str, Any] = dict(_serializer.serialize(value))
    return serialized


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return value.__bytes__()
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values → plain Python (ints, floats, bytes, sets)."""
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def is_conditional_failure(exc: BaseException) -> bool:
    """True for a failed ConditionExpression (also inside a cancelled transaction)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


# Reasons a transaction item was cancelled for contention, not for its condition: worth a retry.
CONTENTION_CODES = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


def cancellation_codes(exc: BaseException) -> list[str]:
    """The reason code of each item of a cancelled transaction, in order ("None" for an item
    that was fine); empty when the error carries no reasons."""
    reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
    return [str(reason.get("Code", "None")) for reason in reasons]


def is_contention(exc: BaseException) -> bool:
    """True for a transaction cancelled only because another write held one of its items (or
    throughput ran out), not because a condition failed: a retry may succeed."""
    codes = cancellation_codes(exc)
    return bool(CONTENTION_CODES.intersection(codes)) and "ConditionalCheckFailed" not in codes


def query_pages(client: DynamoDBClient, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page of a Query (following LastEvaluatedKey)."""
    while True:
        reply = cast("dict[str, Any]", client.query(**kwargs))
        yield reply
        if "LastEvaluatedKey" not in reply:
            return
        kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]


def partition_items(client: DynamoDBClient, table: str, key: str, value: str) -> Iterator[dict[str, Any]]:
    """Every item whose partition key ``key`` is ``value``."""
    for page in query_pages(
        client,
        TableName=table,
        KeyConditionExpression=f"{key} = :v",
        ExpressionAttributeValues={":v": {"S": value}},
    ):
        yield from page.get("Items", [])
