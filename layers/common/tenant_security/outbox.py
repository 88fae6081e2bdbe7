"""No write without its audit record: an outbox, written before the write, drained into the trail.

The request middleware holds an admin or data write's `User Activity` in the outbox (one
conditional put; if even that fails the request is a 503 and nothing is done), runs the handler,
then puts the finished record on the bus and lets the outbox go. Where the put failed (EventBridge
down after the publisher's retries) or the function died half-way, the item stays; the audit
writer's minute tick appends every item older than a minute straight to the chain -- with the
outcome if the request finished, as ``unknown`` if it never did -- and deletes it. The event id
is fixed when the item is written, so a record both put and drained is one record in the trail.

Items: ``{pk: "outbox#<shard>", sk: "<created_at>#<event id>", detail}`` in the counters table,
spread over shards so one partition does not carry every write of the platform.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import query_pages

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SHARDS = 8
DRAIN_AFTER_SECONDS = 60  # an item this old belongs to a request that ended without its record
KEEP_SECONDS = 7 * 86400
OUTCOME_UNKNOWN = "unknown"


@dataclass(frozen=True)
class Held:
    """One held record."""

    pk: str
    sk: str
    detail: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.detail["event_id"])


class Outbox:
    """The outbox items (DynamoDB client and counters table given)."""

    def __init__(self, client: DynamoDBClient, table: str, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table = table
        self.clock = clock

    def hold(self, detail: Mapping[str, Any]) -> Held:
        """Keep ``detail`` (with its ``event_id``) until it is released; raises if it cannot be kept."""
        now = self.clock()
        held = Held(
            f"outbox#{random.randrange(SHARDS)}",  # noqa: S311 - spreading load, not secrecy
            f"{now:017.3f}#{detail['event_id']}",
            {**detail, "outcome": OUTCOME_UNKNOWN, "reason": "the request did not finish"},
        )
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": held.pk},
                "sk": {"S": held.sk},
                "detail": {"S": json.dumps(held.detail, default=str)},
                "expires_at": {"N": str(int(now) + KEEP_SECONDS)},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        return held

    def settle(self, held: Held, detail: Mapping[str, Any]) -> None:
        """The request finished but its record could not be put: keep the finished one."""
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": held.pk}, "sk": {"S": held.sk}},
            UpdateExpression="SET detail = :d",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":d": {"S": json.dumps(dict(detail), default=str)}},
        )

    def release(self, held: Held) -> None:
        """The record is on its way (or in the trail): the item goes."""
        self.client.delete_item(TableName=self.table, Key={"pk": {"S": held.pk}, "sk": {"S": held.sk}})

    def due(self, older_than: float = DRAIN_AFTER_SECONDS) -> Iterator[Held]:
        """Items older than ``older_than`` seconds: requests whose record never got on the bus."""
        before = f"{self.clock() - older_than:017.3f}"
        for shard in range(SHARDS):
            pages = query_pages(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND sk < :before",
                ExpressionAttributeValues={":pk": {"S": f"outbox#{shard}"}, ":before": {"S": before}},
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", []):
                    yield Held(item["pk"]["S"], item["sk"]["S"], json.loads(item["detail"]["S"]))
