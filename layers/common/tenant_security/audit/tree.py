"""Each tenant's Merkle tree in DynamoDB (the audit index table) and the proofs served from it.

Items, under the tenant's partition (``tenant_id``) and ``position``:

- ``n#<level>#<index>``: the hash of a complete subtree of two or more leaves
  (:class:`~tenant_security.audit.merkle.NodeId`), written in the transaction that advances the
  chain head past its last leaf;
- ``r#<sequence>``: a record -- its leaf hash (the level-0 node), where it is (object key and line),
  its stored body, and the attributes the reader's indexes need (``entry_attributes``).

The head itself keeps the tree's frontier, so a checkpoint's root costs no read. A proof reads
only the O(log n) nodes it needs, in one BatchGetItem (100 keys: a tree of 2**49 leaves).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenant_security.audit import merkle
from tenant_security.audit.chain import checkpoint_key, json_object
from tenant_security.audit.checkpoints import public_checkpoint
from tenant_security.audit.merkle import NodeId
from tenant_security.audit.objects import LockedObjects
from tenant_security.audit.store import ChainHeads
from tenant_security.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HASH_BYTES = 32
BATCH_GET_KEYS = 100  # BatchGetItem's limit
_NODE, _RECORD = "n#", "r#"


def node_position(node: NodeId) -> str:
    """Where a node's hash is: a leaf's in its record's item, a larger subtree's in its own."""
    if node.level == 0:
        return record_position(node.index + 1)
    return f"{_NODE}{node.level:02d}#{node.index:016d}"


def record_position(sequence: int) -> str:
    return f"{_RECORD}{sequence:016d}"


def b64(value: bytes) -> str:
    """Hashes in replies: base64, standard alphabet (the contract's)."""
    return base64.b64encode(value).decode()


def pack_frontier(frontier: merkle.Frontier) -> bytes:
    """The frontier as the head keeps it: its hashes, concatenated (the ids follow from the size)."""
    return b"".join(value for _, value in frontier)


def unpack_frontier(packed: bytes, size: int) -> merkle.Frontier:
    ids = merkle.frontier_ids(size)
    if len(packed) != HASH_BYTES * len(ids):
        raise ValueError(f"the chain head's frontier does not describe a tree of {size} records")
    return [(node, packed[i * HASH_BYTES : (i + 1) * HASH_BYTES]) for i, node in enumerate(ids)]


@dataclass(frozen=True)
class IndexedRecord:
    sequence: int
    object_key: str
    body: bytes  # the record's stored bytes, encrypted (an Encryption SDK message)
    line: int = 0  # its line in the object's plaintext (one record a line)


@dataclass(frozen=True)
class IndexEntry:
    """A record as the writer indexes it."""

    sequence: int
    object_key: str
    line: int
    body: bytes
    record: Mapping[str, Any]


EntryAttributes = Callable[[str, Mapping[str, Any]], dict[str, Any]]


class AuditIndex:
    """The audit index table: tree nodes and record entries, per tenant."""

    def __init__(
        self, client: DynamoDBClient, table: str, entry_attributes: EntryAttributes | None = None
    ) -> None:
        """``entry_attributes(tenant_id, record)``: further attributes of a record's item (the
        keys of the reader's secondary indexes)."""
        self.client = client
        self.table = table
        self.entry_attributes = entry_attributes or (lambda _tenant, _record: {})

    def writes(
        self, tenant_id: str, completed: merkle.Frontier, entries: Iterable[IndexEntry]
    ) -> list[dict[str, Any]]:
        """TransactWriteItems entries storing the ``completed`` nodes and the records' ``entries``;
        they join the head's transaction, so the index never outruns the head. A leaf's hash rides
        in its record's item: one item per record, one per larger subtree."""
        leaves = {n.index + 1: h for n, h in completed if n.level == 0}
        items = [
            {"tenant_id": {"S": tenant_id}, "position": {"S": node_position(n)}, "hash": {"B": h}}
            for n, h in completed
            if n.level > 0
        ]
        for entry in entries:
            items.append(
                {
                    **self.entry_attributes(tenant_id, entry.record),
                    "tenant_id": {"S": tenant_id},
                    "position": {"S": record_position(entry.sequence)},
                    "hash": {"B": leaves[entry.sequence]},
                    "object_key": {"S": entry.object_key},
                    "line": {"N": str(entry.line)},
                    "body": {"B": entry.body},
                    "recorded_at": {"S": str(entry.record.get("recorded_at", ""))},
                }
            )
        return [{"Put": {"TableName": self.table, "Item": item}} for item in items]

    def nodes(self, tenant_id: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """The stored hashes of ``ids`` (BatchGetItem, consistent, unprocessed keys asked again)."""
        by_position = {node_position(n): n for n in ids}
        found: dict[NodeId, bytes] = {}
        wanted = list(by_position)
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            keys = [
                {"tenant_id": {"S": tenant_id}, "position": {"S": p}}
                for p in wanted[start : start + BATCH_GET_KEYS]
            ]
            request: dict[str, Any] = {
                self.table: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#p, #h",
                    "ExpressionAttributeNames": {"#p": "position", "#h": "hash"},
                }
            }
            while request:
                reply = self.client.batch_get_item(RequestItems=request)
                for item in reply.get("Responses", {}).get(self.table, []):
                    found[by_position[item["position"]["S"]]] = bytes(item["hash"]["B"])
                request = dict(reply.get("UnprocessedKeys") or {})
        return found

    def _query(self, tenant_id: str, low: str, high: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="tenant_id = :t AND #p BETWEEN :low AND :high",
            ExpressionAttributeNames={"#p": "position"},
            ExpressionAttributeValues={":t": {"S": tenant_id}, ":low": {"S": low}, ":high": {"S": high}},
            ConsistentRead=True,
        ):
            yield from page.get("Items", [])

    def partition(self, tenant_id: str) -> dict[str, dict[str, Any]]:
        """Every item of the tenant's partition by position, as stored (the verifier's: O(n))."""
        return {item["position"]["S"]: item for item in self._query(tenant_id, _NODE, _RECORD + "~")}

    def stored_records(self, tenant_id: str, first: int, last: int) -> Iterator[IndexedRecord]:
        """The record entries of sequences ``first``..``last``, in order."""
        for item in self._query(tenant_id, record_position(first), record_position(last)):
            yield _indexed(item)

    def record(self, tenant_id: str, sequence: int) -> IndexedRecord | None:
        item = self.client.get_item(
            TableName=self.table,
            Key={"tenant_id": {"S": tenant_id}, "position": {"S": record_position(sequence)}},
        ).get("Item")
        return _indexed(item) if item else None


def _indexed(item: Mapping[str, Any]) -> IndexedRecord:
    return IndexedRecord(
        sequence=int(item["position"]["S"].removeprefix(_RECORD)),
        object_key=item["object_key"]["S"],
        body=bytes(item["body"]["B"]),
        line=int(item.get("line", {}).get("N", "0")),
    )


Decrypt = Callable[[str, bytes], bytes | None]


class TrailProofs:
    """RFC 9162 proofs, checkpoints and stored records of a tenant's trail, for auditors."""

    def __init__(
        self,
        heads: ChainHeads,
        index: AuditIndex,
        objects: LockedObjects,
        bucket_of: Callable[[str], str],
        decrypt: Decrypt,
    ) -> None:
        """``decrypt(tenant, body)``: a record's stored bytes from its body, None if it is not one."""
        self.heads = heads
        self.index = index
        self.objects = objects
        self.bucket_of = bucket_of
        self.decrypt = decrypt

    def tree_size_of(self, tenant_id: str) -> int:
        """The leaves the tenant's tree has now (the chain head's sequence)."""
        return self.heads.get(tenant_id).sequence

    def checkpoint(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's latest signed checkpoint, as stored (404 before the first)."""
        sequence = self.heads.get(tenant_id).checkpoint_sequence
        stored = (
            json_object(self.objects.read(self.bucket_of(tenant_id), checkpoint_key(sequence)))
            if sequence
            else None
        )
        if stored is None or "signed" not in stored:
            raise NotFound("the trail has no signed checkpoint yet")
        return public_checkpoint(stored)

    def _hashes(self, tenant_id: str, ranges: list[merkle.Range]) -> list[str]:
        nodes = self.index.nodes(tenant_id, merkle.nodes_needed(ranges))
        return [b64(merkle.range_hash(start, end, nodes)) for start, end in ranges]

    def _within(self, tenant_id: str, tree_size: int) -> None:
        size = self.tree_size_of(tenant_id)
        if tree_size > size:
            raise ValidationFailed(f"the trail has {size} records; tree_size {tree_size} is beyond it")

    def inclusion(self, tenant_id: str, sequence: int, tree_size: int) -> dict[str, Any]:
        """``{leaf_index, tree_size, audit_path}``: RFC 9162 §2.1.3 for record ``sequence``."""
        if not 1 <= sequence <= tree_size:
            raise ValidationFailed("sequence must be between 1 and tree_size")
        self._within(tenant_id, tree_size)
        path = self._hashes(tenant_id, merkle.inclusion_ranges(sequence - 1, tree_size))
        return {"leaf_index": sequence - 1, "tree_size": tree_size, "audit_path": path}

    def consistency(self, tenant_id: str, first: int, second: int) -> dict[str, Any]:
        """``{first, second, proof}``: RFC 9162 §2.1.4 from the tree of ``first`` to ``second``."""
        if not 1 <= first <= second:
            raise ValidationFailed("first must be between 1 and second")
        self._within(tenant_id, second)
        return {
            "first": first,
            "second": second,
            "proof": self._hashes(tenant_id, merkle.consistency_ranges(first, second)),
        }

    def stored_bytes(self, tenant_id: str, sequence: int) -> bytes:
        """Record ``sequence``'s stored bytes: what its leaf hashes (404 when there is none)."""
        entry = self.index.record(tenant_id, sequence) if 1 <= sequence < 10**16 else None
        stored = self.decrypt(tenant_id, entry.body) if entry is not None else None
        # A body copied to another position (by someone who can write the index) is not served
        # as that position's: the record says its own sequence and tenant.
        record = json_object(stored) if stored is not None else None
        if stored is None or record is None or record.get("sequence") != sequence:
            raise NotFound(f"no audit record {sequence}")
        if record.get("tenant_id") != tenant_id:
            raise NotFound(f"no audit record {sequence}")
        return stored
