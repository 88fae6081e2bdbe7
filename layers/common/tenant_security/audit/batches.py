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

# A batch's transaction: a claim and an index entry per record, the head, and the tree's new
# nodes (at most one per record plus one per level: 40 levels hold 10^12 records): 18 records
# make at most 18 + 18 + 1 + 58 = 95 items, within DynamoDB's 100. Its content stays well within
# the head item's 400 KB (the head carries the batch's object until it is written).
MAX_BATCH_EVENTS = 18
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
            frontier=pack_frontier(self.frontier),
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
    last_time = head.pending.recorded_at if head.pending is not None else ""
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
        records, frontier, pending, index.writes(tenant_id, completed, entries), now, todo[-1].policies, body
    )
