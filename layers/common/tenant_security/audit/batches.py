"""How the audit writer cuts a chain's events into batches: each one head transaction and one
object (see :mod:`tenant_security.audit.writer`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tenant_security.audit import merkle
from tenant_security.audit.chain import canonical, object_plaintext, record_key, seal
from tenant_security.audit.cipher import RecordCipher
from tenant_security.audit.store import Head, Pending
from tenant_security.audit.tree import AuditIndex, IndexEntry, pack_frontier, unpack_frontier
from tenant_security.models.policies import SecurityPolicies

# A batch's transaction: a claim and an index entry per record, the head, and the tree's new inner
# nodes -- k records after n complete k + popcount(n) - popcount(n + k) of them, so about one per
# record. 32 records make 32 + 32 + 1 + ~32 items of DynamoDB's 100 (`fitting` takes fewer when
# the tree's carries need more). The content stays far within a transaction's 4 MB.
MAX_TRANSACTION_ITEMS = 100
MAX_BATCH_EVENTS = 32
MAX_BATCH_BYTES = 96 * 1024


@dataclass(frozen=True)
class Prepared:
    """An event ready to append: its chain, its record content (PII protected) and its id."""

    tenant_id: str
    policies: SecurityPolicies
    event_id: str
    protected: dict[str, Any]
    forged: bool

    @property
    def size(self) -> int:
        return len(canonical(self.protected))


@dataclass(frozen=True)
class Staged:
    """A batch as the writer stages it for one attempt (after one head)."""

    records: list[dict[str, Any]]
    frontier: merkle.Frontier
    packed_frontier: bytes  # as the head stores it (pack_frontier)
    pending: Pending
    tree_writes: list[dict[str, Any]]
    now: datetime
    policies: SecurityPolicies
    body: bytes  # the object, encrypted

    def head_after(self, head: Head) -> Head:
        """The head as this batch's transaction left it."""
        return replace(
            head,
            sequence=self.pending.sequence,
            hash=str(self.records[-1]["hash"]),
            pending=self.pending,
            exists=True,
            frontier=self.packed_frontier,
        )


def batches(items: list[tuple[int, Prepared]]) -> Iterator[list[tuple[int, Prepared]]]:
    """A chain's events in batches that fit one transaction and one head item: at most
    MAX_BATCH_EVENTS records and MAX_BATCH_BYTES of record content (a single larger record goes
    alone: EventBridge bounds an event to 256 KB)."""
    batch: list[tuple[int, Prepared]] = []
    size = 0
    for item in items:
        grown = size + item[1].size
        if batch and (len(batch) >= MAX_BATCH_EVENTS or grown > MAX_BATCH_BYTES):
            yield batch
            batch, grown = [], item[1].size
        batch.append(item)
        size = grown
    if batch:
        yield batch


def fitting(head_sequence: int, wanted: int) -> int:
    """How many of ``wanted`` records (at least one) one transaction appends after a tree of
    ``head_sequence`` leaves: two items each, the head, and the inner nodes they complete."""

    def items(k: int) -> int:
        inner = k + head_sequence.bit_count() - (head_sequence + k).bit_count()
        return 2 * k + 1 + inner

    k = wanted
    while k > 1 and items(k) > MAX_TRANSACTION_ITEMS:
        k -= 1
    return k


def stage(
    tenant_id: str,
    head: Head,
    todo: list[Prepared],
    now: datetime,
    retain_until: datetime,
    cipher: RecordCipher,
    index: AuditIndex,
) -> Staged:
    """The batch's records after ``head``: sealed, encrypted, their tree nodes and index entries,
    and the object that will hold them."""
    # Never earlier than the head's last record: a trail's times follow its sequence (the
    # reader's time index relies on it), whatever the writers' clocks say.
    last_time = max(head.pending.recorded_at if head.pending is not None else "", head.recorded_floor)
    recorded_at = max(now.isoformat(), last_time)
    previous, records = head.hash, []
    for offset, prepared in enumerate(todo):
        record = seal(
            {
                **prepared.protected,
                "sequence": head.sequence + 1 + offset,
                "prev_hash": previous,
                "recorded_at": recorded_at,
            }
        )
        previous = record["hash"]
        records.append(record)
    stored = [canonical(r) for r in records]
    frontier, completed = merkle.append(
        unpack_frontier(head.frontier, head.sequence), head.sequence, [merkle.leaf_hash(b) for b in stored]
    )
    first, last = records[0]["sequence"], records[-1]["sequence"]
    key = record_key(first, datetime.fromisoformat(recorded_at), last)
    # The head names the object; its body is not in the head: the records are in the index
    # (the same transaction), and a writer completing a dead one's object rebuilds it there.
    pending = Pending(
        sequence=last,
        first=first,
        event_id=todo[-1].event_id,
        key=key,
        body=b"",
        retain_until=retain_until.isoformat(),
        claimed_at=time.time(),
        recorded_at=recorded_at,
    )
    entries = [
        IndexEntry(r["sequence"], key, line, cipher.encrypt_bytes(tenant_id, b), r)
        for line, (r, b) in enumerate(zip(records, stored, strict=True))
    ]
    body = cipher.encrypt_bytes(tenant_id, object_plaintext(stored))
    return Staged(
        records,
        frontier,
        pack_frontier(frontier),
        pending,
        index.writes(tenant_id, completed, entries),
        now,
        todo[-1].policies,
        body,
    )
