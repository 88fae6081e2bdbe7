"""The audit chain's heads in DynamoDB (the records and checkpoints themselves are write-once
objects in S3: :mod:`tenant_security.audit.objects`).

The head of a tenant's chain (``sequence``, ``hash``) advances by one conditional transaction
that also claims the event ids of what it appends (a batch of records) and writes the batch's
tree nodes and index entries, so concurrent writers never fork or skip a sequence and a
duplicate delivery is recognised. The head names its last object as ``pending``: a writer that
finds it unwritten (the retry of a writer that died, or the tenant's next writer) writes that
object, rebuilt from the index, before appending.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tenant_security.audit.chain import GENESIS_HASH
from tenant_security.dynamo import is_conditional_failure
from tenant_security.errors import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEDUP_DAYS = 3  # EventBridge gives up on an event after a day; duplicates cannot come later
# How long the head's last batch may go without its object: its writer is at work until then.
# Past it, the verifier names the batch's records missing, and a writer that cannot rebuild the
# object (its index entries gone) gives the batch up as lost rather than stall the chain.
IN_FLIGHT_SECONDS = 60.0


class ChainBusy(ServiceUnavailable):
    """Too many concurrent writers on one chain; the delivery is retried."""

    code = "chain_busy"


class IndexIncomplete(ChainBusy):
    """The index lacks records of the head's last batch: not visible yet, or deleted."""


class IndexUnreadable(ChainBusy):
    """Its records are in the index but do not decrypt: retried, never given up."""


@dataclass(frozen=True)
class Pending:
    """The head's last object: records ``first``..``sequence``, as the writer puts it."""

    sequence: int
    event_id: str  # the last record's
    key: str
    body: bytes
    retain_until: str
    claimed_at: float = 0.0  # when the writer claimed it (epoch seconds)
    first: int = 0  # the object's first sequence (0: ``sequence``, a single record)
    recorded_at: str = ""  # its records' time: the next batch's is never earlier

    @property
    def first_sequence(self) -> int:
        return self.first or self.sequence

    def in_flight(self) -> bool:
        """Its writer may still be at work on it: claimed less than IN_FLIGHT_SECONDS ago by
        this clock (either way: a claim "in the future" is a skewed or edited clock, not a
        batch that stays in flight for good)."""
        return abs(time.time() - self.claimed_at) < IN_FLIGHT_SECONDS

    def item(self) -> dict[str, Any]:
        return {
            "M": {
                "sequence": {"N": str(self.sequence)},
                "first": {"N": str(self.first_sequence)},
                "event_id": {"S": self.event_id},
                "key": {"S": self.key},
                "body": {"B": self.body},
                "retain_until": {"S": self.retain_until},
                "claimed_at": {"N": repr(self.claimed_at)},
                "recorded_at": {"S": self.recorded_at},
            }
        }

    @classmethod
    def of(cls, value: dict[str, Any]) -> Pending:
        m = value["M"]
        return cls(
            sequence=int(m["sequence"]["N"]),
            event_id=m["event_id"]["S"],
            key=m["key"]["S"],
            body=bytes(m["body"]["B"]),
            retain_until=m["retain_until"]["S"],
            claimed_at=float(m.get("claimed_at", {}).get("N", "0")),
            first=int(m.get("first", {}).get("N", "0")),
            recorded_at=m.get("recorded_at", {}).get("S", ""),
        )


class Outcome(StrEnum):
    """What became of a head's advance."""

    APPENDED = "appended"
    DUPLICATE = "duplicate"  # some event ids were appended before (``Advance.duplicates``)
    CONFLICT = "conflict"  # another writer moved the head first: read it again


@dataclass(frozen=True)
class Advance:
    outcome: Outcome
    duplicates: tuple[str, ...] = ()


@dataclass(frozen=True)
class LostBatch:
    """Records given up (object never written, index entries gone): the verifier names them."""

    tenant_id: str
    first: int
    last: int


@dataclass(frozen=True)
class LostRange:
    """A head's note of a batch given up: its records, and the tree's frontier after them (the
    verifier goes on checking the tree and the index beyond them from there)."""

    first: int
    last: int
    frontier: bytes


@dataclass(frozen=True)
class Head:
    tenant_id: str
    sequence: int = 0
    hash: str = GENESIS_HASH
    pending: Pending | None = None
    checkpoint_sequence: int = 0
    exists: bool = False
    frontier: bytes = b""  # the Merkle tree's frontier (audit/tree.py pack_frontier)
    lost: tuple[LostRange, ...] = ()  # batches given up (ChainHeads.give_up)
    recorded_floor: str = ""  # no record after may have an earlier time (where ``pending`` is not)


def _head_of(tenant_id: str, item: dict[str, Any] | None) -> Head:
    if not item:
        return Head(tenant_id)
    return Head(
        tenant_id=tenant_id,
        sequence=int(item["sequence"]["N"]),
        hash=item["hash"]["S"],
        pending=Pending.of(item["pending"]) if "pending" in item else None,
        checkpoint_sequence=int(item.get("checkpoint_sequence", {}).get("N", "0")),
        exists=True,
        frontier=bytes(item.get("frontier", {}).get("B", b"")),
        lost=tuple(
            LostRange(
                int(entry["M"]["first"]["N"]),
                int(entry["M"]["last"]["N"]),
                bytes(entry["M"].get("frontier", {}).get("B", b"")),
            )
            for entry in item.get("lost", {}).get("L", [])
        ),
        recorded_floor=item.get("recorded_floor", {}).get("S", ""),
    )


class ChainHeads:
    """The heads table: one item per tenant chain, plus one claim per appended event id."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, tenant_id: str) -> Head:
        reply = self.client.get_item(
            TableName=self.table, Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True
        )
        return _head_of(tenant_id, reply.get("Item"))

    def heads(self) -> Iterator[Head]:
        """Every chain head (for the scheduled checkpoints)."""
        paginator = self.client.get_paginator("scan")
        for page in paginator.paginate(TableName=self.table, ConsistentRead=True):
            for item in page.get("Items", []):
                tenant_id = item["tenant_id"]["S"]
                if "#" not in tenant_id:
                    yield _head_of(tenant_id, item)

    def advance(
        self,
        head: Head,
        new_hash: str,
        pending: Pending,
        now: datetime,
        frontier: bytes,
        tree_writes: list[Any],
        event_ids: list[str] | None = None,
    ) -> Advance:
        """Claim ``event_ids`` (those of records ``pending.first``..``pending.sequence``; by default
        ``pending.event_id`` alone) and move the head to ``pending.sequence``, with the tree's new
        ``frontier`` and the index items ``tree_writes`` (audit/tree.py) in the same transaction.
        """
        claimed = event_ids if event_ids is not None else [pending.event_id]
        if head.exists:
            # The head still holds what the writer saw: same sequence, same last record.
            condition = "#seq = :expected"
            values: dict[str, Any] = {":expected": {"N": str(head.sequence)}}
        else:
            condition, values = "attribute_not_exists(tenant_id)", {}
        expires_at = {"N": str(int(time.time()) + DEDUP_DAYS * 86400)}
        claims: list[Any] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "tenant_id": {"S": f"{head.tenant_id}#event#{event_id}"},
                        "sequence": {"N": str(pending.first_sequence + offset)},
                        "expires_at": expires_at,
                    },
                    "ConditionExpression": "attribute_not_exists(tenant_id)",
                }
            }
            for offset, event_id in enumerate(claimed)
        ]
        try:
            self.client.transact_write_items(
                TransactItems=[
                    *claims,
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"tenant_id": {"S": head.tenant_id}},
                            "UpdateExpression": (
                                "SET #seq = :seq, #hash = :hash, pending = :pending, updated_at = :now, "
                                "frontier = :frontier"
                            ),
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": {"#seq": "sequence", "#hash": "hash"},
                            "ExpressionAttributeValues": {
                                **values,
                                ":seq": {"N": str(pending.sequence)},
                                ":hash": {"S": new_hash},
                                ":pending": pending.item(),
                                ":now": {"S": now.isoformat()},
                                ":frontier": {"B": frontier},
                            },
                        }
                    },
                    *tree_writes,
                ]
            )
        except Exception as exc:
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            codes = [str(r.get("Code")) for r in reasons]
            duplicates = tuple(
                event_id
                for event_id, code in zip(claimed, codes, strict=False)
                if code == "ConditionalCheckFailed"
            )
            if duplicates:
                return Advance(Outcome.DUPLICATE, duplicates)
            head_code = codes[len(claimed) : len(claimed) + 1]
            if head_code == ["ConditionalCheckFailed"] or is_conditional_failure(exc):
                return Advance(Outcome.CONFLICT)
            if "TransactionConflict" in codes:
                return Advance(Outcome.CONFLICT)
            raise
        return Advance(Outcome.APPENDED)

    def sequence_of_event(self, tenant_id: str, event_id: str) -> int | None:
        reply = self.client.get_item(
            TableName=self.table,
            Key={"tenant_id": {"S": f"{tenant_id}#event#{event_id}"}},
            ConsistentRead=True,
        )
        item = reply.get("Item")
        return int(item["sequence"]["N"]) if item else None

    def marker(self, name: str) -> int | None:
        """A progress marker kept beside the heads (``#<name>``: never a tenant id)."""
        item = self.client.get_item(
            TableName=self.table, Key={"tenant_id": {"S": f"#{name}"}}, ConsistentRead=True
        ).get("Item")
        return int(item["position"]["N"]) if item else None

    def advance_marker(self, name: str, position: int) -> None:
        """Move a marker forward (never back: concurrent runs may finish out of order)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"tenant_id": {"S": f"#{name}"}},
                UpdateExpression="SET #p = :p",
                ConditionExpression="attribute_not_exists(#p) OR #p < :p",
                ExpressionAttributeNames={"#p": "position"},
                ExpressionAttributeValues={":p": {"N": str(position)}},
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

    def give_up(self, head: Head, now: datetime) -> LostBatch | None:
        """Drop the head's last batch (``head.pending``) as lost -- its object can never be
        written -- noting its range and the tree's frontier after it in ``lost``, and keeping
        its time as the floor of the next records'; None when the head has moved on since."""
        pending = head.pending
        if pending is None:
            return None
        tenant_id = head.tenant_id
        lost = {
            "M": {
                "first": {"N": str(pending.first_sequence)},
                "last": {"N": str(pending.sequence)},
                "key": {"S": pending.key},
                "at": {"S": now.isoformat()},
                "frontier": {"B": head.frontier},
            }
        }
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"tenant_id": {"S": tenant_id}},
                UpdateExpression=(
                    "REMOVE pending SET lost = list_append(if_not_exists(lost, :none), :lost), "
                    "recorded_floor = :floor"
                ),
                # the head as read: its frontier is the tree's after this very batch
                ConditionExpression="pending.#key = :key AND #seq = :seq",
                ExpressionAttributeNames={"#key": "key", "#seq": "sequence"},
                ExpressionAttributeValues={
                    ":key": {"S": pending.key},
                    ":seq": {"N": str(head.sequence)},
                    ":none": {"L": []},
                    ":lost": {"L": [lost]},
                    ":floor": {"S": max(pending.recorded_at, head.recorded_floor)},
                },
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return None
            raise
        return LostBatch(tenant_id, pending.first_sequence, pending.sequence)

    def set_checkpoint(self, tenant_id: str, sequence: int) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"tenant_id": {"S": tenant_id}},
                UpdateExpression="SET checkpoint_sequence = :seq",
                ConditionExpression="attribute_not_exists(checkpoint_sequence) OR checkpoint_sequence < :seq",
                ExpressionAttributeValues={":seq": {"N": str(sequence)}},
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
