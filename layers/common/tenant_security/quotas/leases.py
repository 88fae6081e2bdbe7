"""Concurrency leases (max_concurrent_requests).

Slots ``{pk: "lease#<tenant>", sk: <n>}`` are taken by a conditional put (free, or expired) and
released by a conditional delete; a lease expires by itself ``max_request_duration`` after it was
taken, so a Lambda that dies holding one does not leak it.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tenant_security.dynamo import is_conditional_failure, partition_items
from tenant_security.errors import RateLimited

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class ConcurrencyLimitReached(RateLimited):
    code = "concurrency_limit_reached"


class Leases:
    """Concurrency slots (max_concurrent_requests) that expire by themselves."""

    def __init__(self, client: DynamoDBClient, table: str, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table = table
        self.clock = clock

    def acquire(self, tenant_id: str, max_concurrent: int, lifetime_seconds: float) -> tuple[str, str]:
        """A free (or expired) slot; 429 when all are held."""
        now = self.clock()
        lease_id = secrets.token_hex(8)
        slots = list(range(max_concurrent))
        random.shuffle(slots)
        tried: set[int] = set()
        for slot in slots[:3] + slots[3:]:
            if slot in tried:
                continue
            if len(tried) == 3:  # crowded: look which slots are held and try only the others
                held = {
                    int(i["sk"]["S"])
                    for i in partition_items(self.client, self.table, "pk", f"lease#{tenant_id}")
                    if float(i["expires_at"]["N"]) > now
                }
                tried |= held
                if slot in tried:
                    continue
            tried.add(slot)
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        "pk": {"S": f"lease#{tenant_id}"},
                        "sk": {"S": str(slot)},
                        "lease": {"S": lease_id},
                        "expires_at": {"N": repr(now + lifetime_seconds)},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                    ExpressionAttributeValues={":now": {"N": repr(now)}},
                )
            except Exception as exc:
                if is_conditional_failure(exc):
                    continue
                raise
            return str(slot), lease_id
        raise ConcurrencyLimitReached(
            f"at most {max_concurrent} concurrent requests", headers={"Retry-After": "1"}
        )

    def release(self, tenant_id: str, slot: str, lease_id: str) -> None:
        """Free the slot if it is still ours."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": f"lease#{tenant_id}"}, "sk": {"S": slot}},
                ConditionExpression="lease = :id",
                ExpressionAttributeValues={":id": {"S": lease_id}},
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

    def active(self, tenant_id: str) -> int:
        now = self.clock()
        return sum(
            1
            for i in partition_items(self.client, self.table, "pk", f"lease#{tenant_id}")
            if float(i["expires_at"]["N"]) > now
        )
