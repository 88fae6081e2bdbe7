"""Red team (issue 20, round 2): the local cloud's DynamoDB patches against DynamoDB's semantics.

``cheap_transaction_snapshots`` rolls a failed TransactWriteItems back item by item;
``cached_condition_parses`` keeps parsed condition expressions that name no value. Attacks: the
orders and operation kinds the existing tests do not cover (the failing item first, a failure
raised by an operation itself, an item shape moto refuses outside its own rollback, nested map
updates, the global secondary indexes after a rollback), and cache keys that could collide
(the same expression with other attribute names, nested paths).
"""

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
        client.create_table(
            TableName="indexed",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "g", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-g",
                    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def _all(ddb: Any) -> dict[str, list[dict[str, Any]]]:
    return {t: sorted(ddb.scan(TableName=t)["Items"], key=repr) for t in ("flat", "ranged", "indexed")}


def _refused(ddb: Any, items: list[dict[str, Any]]) -> str:
    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(TransactItems=items)
    return str(refused.value.response["Error"]["Code"])


def _failing_check(table: str = "flat", key: str = "absent") -> dict[str, Any]:
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": {"pk": {"S": key}},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }


def test_the_failing_item_first_still_leaves_every_later_write_undone(ddb: Any) -> None:
    """HELD: moto goes on applying the items after a failed condition; all are rolled back."""
    ddb.put_item(TableName="flat", Item={"pk": {"S": "x"}, "m": {"M": {"n": {"N": "1"}}}})
    before = _all(ddb)
    code = _refused(
        ddb,
        [
            _failing_check(),
            {
                "Update": {
                    "TableName": "flat",
                    "Key": {"pk": {"S": "x"}},
                    "UpdateExpression": "SET m.n = :two, m.added = :two",  # a nested map, in place
                    "ExpressionAttributeValues": {":two": {"N": "2"}},
                }
            },
            {"Delete": {"TableName": "flat", "Key": {"pk": {"S": "never-was"}}}},  # a missing item
            {"Put": {"TableName": "indexed", "Item": {"pk": {"S": "p"}, "sk": {"S": "s"}, "g": {"S": "G"}}}},
        ],
    )
    assert code == "TransactionCanceledException"
    assert _all(ddb) == before
    by_g = ddb.query(
        TableName="indexed",
        IndexName="by-g",
        KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": "G"}},
    )
    assert by_g["Items"] == []  # the index holds nothing of the rolled-back put


def test_an_operation_that_fails_itself_rolls_back_the_items_before_it(ddb: Any) -> None:
    """HELD: an Update DynamoDB refuses (arithmetic on a string) after a Put and a Delete."""
    ddb.put_item(TableName="flat", Item={"pk": {"S": "s"}, "n": {"S": "text"}})
    ddb.put_item(TableName="ranged", Item={"pk": {"S": "t"}, "sk": {"S": "a"}})
    before = _all(ddb)
    code = _refused(
        ddb,
        [
            {"Put": {"TableName": "flat", "Item": {"pk": {"S": "new"}}}},
            {"Delete": {"TableName": "ranged", "Key": {"pk": {"S": "t"}, "sk": {"S": "a"}}}},
            {
                "Update": {
                    "TableName": "flat",
                    "Key": {"pk": {"S": "s"}},
                    "UpdateExpression": "SET n = n + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ],
    )
    assert code in ("ValidationException", "TransactionCanceledException")
    assert _all(ddb) == before


def test_the_same_key_in_a_condition_check_and_a_put_writes_nothing(ddb: Any) -> None:
    """HELD: DynamoDB refuses two operations on one item (ValidationException), whatever kinds."""
    code = _refused(
        ddb,
        [
            {"Put": {"TableName": "ranged", "Item": {"pk": {"S": "t"}, "sk": {"S": "b"}}}},
            {
                "ConditionCheck": {
                    "TableName": "flat",
                    "Key": {"pk": {"S": "a"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Put": {"TableName": "flat", "Item": {"pk": {"S": "a"}}}},
        ],
    )
    assert code == "ValidationException"
    assert _all(ddb) == {"flat": [], "ranged": [], "indexed": []}


def test_an_item_with_two_operations_writes_nothing(ddb: Any) -> None:
    """HELD: moto raises this one outside its own rollback; the patch undoes the earlier put."""
    with pytest.raises(ClientError):
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "flat", "Item": {"pk": {"S": "first"}}}},
                {
                    "Put": {"TableName": "flat", "Item": {"pk": {"S": "b"}}},
                    "Delete": {"TableName": "flat", "Key": {"pk": {"S": "c"}}},
                },
            ]
        )
    assert _all(ddb)["flat"] == []


# --------------------------------------------------------------------------- the parse cache


def test_one_condition_with_other_attribute_names_is_judged_by_its_own_names(ddb: Any) -> None:
    """HELD: ``attribute_exists(#a)`` parsed once with #a = present, then met with #a = absent."""
    ddb.put_item(TableName="flat", Item={"pk": {"S": "x"}, "present": {"S": "1"}})
    for _ in range(2):  # the second round meets both parses cached
        ddb.update_item(
            TableName="flat",
            Key={"pk": {"S": "x"}},
            UpdateExpression="SET touched = :t",
            ConditionExpression="attribute_exists(#a)",
            ExpressionAttributeNames={"#a": "present"},
            ExpressionAttributeValues={":t": {"S": "yes"}},
        )
        with pytest.raises(ClientError) as refused:
            ddb.delete_item(
                TableName="flat",
                Key={"pk": {"S": "x"}},
                ConditionExpression="attribute_exists(#a)",
                ExpressionAttributeNames={"#a": "absent"},
            )
        assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_a_nested_path_condition_is_judged_per_item(ddb: Any) -> None:
    """HELD: the head's give-up condition shape (``pending.#key``) cached, judged on each item."""
    ddb.put_item(TableName="flat", Item={"pk": {"S": "a"}, "pending": {"M": {"key": {"S": "k"}}}})
    ddb.put_item(TableName="flat", Item={"pk": {"S": "b"}, "other": {"M": {"key": {"S": "k"}}}})
    for _ in range(2):
        for pk, expected in (("a", True), ("b", False)):
            if expected:
                ddb.delete_item(
                    TableName="flat",
                    Key={"pk": {"S": pk}},
                    ConditionExpression="attribute_exists(pending.#key)",
                    ExpressionAttributeNames={"#key": "key"},
                )
            else:
                with pytest.raises(ClientError, match="ConditionalCheckFailed"):
                    ddb.delete_item(
                        TableName="flat",
                        Key={"pk": {"S": pk}},
                        ConditionExpression="attribute_exists(pending.#key)",
                        ExpressionAttributeNames={"#key": "key"},
                    )
            assert ("Item" in ddb.get_item(TableName="flat", Key={"pk": {"S": pk}})) is not expected
        ddb.put_item(TableName="flat", Item={"pk": {"S": "a"}, "pending": {"M": {"key": {"S": "k"}}}})
