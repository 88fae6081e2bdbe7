"""The local cloud's DynamoDB transactions are all or nothing, as DynamoDB's are: a transaction
that fails leaves every item it named (put, updated, deleted; hash-only and ranged tables) as it
was, and touches no other item. moto is patched to roll back item by item (localcloud.motohooks)
instead of copying whole tables, so these tests hold the patch to what the copy did."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenant_security import aws
from tests.support.moto import create_table, mocked_aws


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mocked_aws(monkeypatch):
        client = aws.dynamodb()
        create_table(client, "flat", "pk")
        create_table(client, "ranged", "pk", "sk")
        yield client


def _scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    return sorted(ddb.scan(TableName=table)["Items"], key=repr)


def test_a_failed_transaction_leaves_every_named_item_as_it_was(ddb: Any) -> None:
    ddb.put_item(TableName="flat", Item={"pk": {"S": "kept"}, "n": {"N": "1"}})
    ddb.put_item(TableName="flat", Item={"pk": {"S": "updated"}, "n": {"N": "1"}})
    ddb.put_item(TableName="ranged", Item={"pk": {"S": "t"}, "sk": {"S": "a"}, "n": {"N": "1"}})
    ddb.put_item(TableName="ranged", Item={"pk": {"S": "t"}, "sk": {"S": "deleted"}})
    before = {t: _scan(ddb, t) for t in ("flat", "ranged")}
    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "flat", "Item": {"pk": {"S": "new"}}}},
                {
                    "Update": {
                        "TableName": "flat",
                        "Key": {"pk": {"S": "updated"}},
                        "UpdateExpression": "SET n = n + :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {
                    "Put": {
                        "TableName": "ranged",
                        "Item": {"pk": {"S": "t"}, "sk": {"S": "a"}, "n": {"N": "9"}},
                    }
                },
                {"Put": {"TableName": "ranged", "Item": {"pk": {"S": "other"}, "sk": {"S": "x"}}}},
                {"Delete": {"TableName": "ranged", "Key": {"pk": {"S": "t"}, "sk": {"S": "deleted"}}}},
                {
                    "ConditionCheck": {
                        "TableName": "flat",
                        "Key": {"pk": {"S": "kept"}},
                        "ConditionExpression": "n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
            ]
        )
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert {t: _scan(ddb, t) for t in ("flat", "ranged")} == before
    assert (
        ddb.query(
            TableName="ranged",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "other"}},
        )["Items"]
        == []
    )


def test_a_transaction_that_succeeds_writes_every_item(ddb: Any) -> None:
    ddb.put_item(TableName="ranged", Item={"pk": {"S": "t"}, "sk": {"S": "gone"}})
    ddb.transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": "flat",
                    "Item": {"pk": {"S": "a"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Put": {"TableName": "ranged", "Item": {"pk": {"S": "t"}, "sk": {"S": "b"}}}},
            {"Delete": {"TableName": "ranged", "Key": {"pk": {"S": "t"}, "sk": {"S": "gone"}}}},
        ]
    )
    assert _scan(ddb, "flat") == [{"pk": {"S": "a"}}]
    assert _scan(ddb, "ranged") == [{"pk": {"S": "t"}, "sk": {"S": "b"}}]


def test_a_refused_transaction_with_two_operations_on_one_item_writes_nothing(ddb: Any) -> None:
    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "flat", "Item": {"pk": {"S": "a"}}}},
                {"Put": {"TableName": "flat", "Item": {"pk": {"S": "a"}, "n": {"N": "2"}}}},
            ]
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert _scan(ddb, "flat") == []


def test_size_of_a_missing_attribute_fails_the_condition_as_dynamodb_does(ddb: Any) -> None:
    """DynamoDB: a comparison of ``size()`` of an attribute the item lacks is false, so the write
    is a ConditionalCheckFailed (moto raised a Python ValueError: a 500 in the local cloud)."""
    ddb.put_item(TableName="flat", Item={"pk": {"S": "no-map"}})
    with pytest.raises(ClientError) as refused:
        ddb.update_item(
            TableName="flat",
            Key={"pk": {"S": "no-map"}},
            UpdateExpression="SET n = :one",
            ConditionExpression="size(lz) < :cap",
            ExpressionAttributeValues={":one": {"N": "1"}, ":cap": {"N": "5"}},
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    ddb.put_item(TableName="flat", Item={"pk": {"S": "a-map"}, "lz": {"M": {"a": {"N": "1"}}}})
    ddb.update_item(  # an attribute that exists is measured as ever
        TableName="flat",
        Key={"pk": {"S": "a-map"}},
        UpdateExpression="SET n = :one",
        ConditionExpression="size(lz) < :cap",
        ExpressionAttributeValues={":one": {"N": "1"}, ":cap": {"N": "2"}},
    )
    assert ddb.get_item(TableName="flat", Key={"pk": {"S": "a-map"}})["Item"]["n"] == {"N": "1"}
