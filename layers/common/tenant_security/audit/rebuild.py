"""The Merkle tree of a chain begun before the tree, rebuilt from its stored records.

A deployment upgraded from a version without the tree has chain heads with records but no
``frontier`` and no audit index items; the writer refuses to append to them. :class:`TreeRebuilder`
reads every record object of such a chain, checks that the records make the whole chain the head
commits to (each of 1..head exactly once, intact, linked, the last one the head's), then writes the
tree's nodes and the record entries to the audit index and, last, the frontier to the head in one
conditional update. A trail that does not verify gets no tree (:class:`TrailDoesNotVerify`:
nothing is written): a tree would vouch for it.

The index writes are puts at fixed positions, so a rebuild that dies half-way is simply run
again; a second rebuild of a head that has its frontier does nothing. The records' stored bytes
are held in memory while the tree is built (~1-2 KB a record).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tenant_security.audit import merkle
from tenant_security.audit.chain import (
    GENESIS_HASH,
    RECORD_PREFIX,
    canonical,
    json_object,
    lines_of,
    record_hash,
    record_range,
)
from tenant_security.audit.cipher import RecordCipher
from tenant_security.audit.objects import LockedObjects
from tenant_security.audit.store import ChainHeads, Head
from tenant_security.audit.tree import AuditIndex, IndexEntry, b64, pack_frontier, unpack_frontier
from tenant_security.dynamo import is_conditional_failure
from tenant_security.errors import Conflict

CHUNK_RECORDS = 500  # records whose nodes and entries are computed and written together
BATCH_WRITE_ITEMS = 25  # BatchWriteItem's limit
MAX_WRITE_ATTEMPTS = 8  # of one BatchWriteItem's unprocessed items, with back-off
PROGRESS_EVERY = 1000  # records between two progress reports
_SHOWN_PROBLEMS = 5
_OBJECT_CONTENT_TYPE = "application/vnd.aws.encryption-sdk"

# progress(step, done, total): step "read" (records checked) or "written" (records indexed)
Progress = Callable[[str, int, int], None]


class TrailDoesNotVerify(Conflict):
    """The stored records are not the chain the head commits to: no tree is built for them."""

    code = "trail_does_not_verify"


class RebuildStatus(StrEnum):
    REBUILT = "rebuilt"
    NOTHING_TO_DO = "nothing_to_do"  # the head has its frontier (or no records)
    REBUILT_BY_ANOTHER = "rebuilt_by_another"  # a concurrent rebuild set the frontier first
    HEAD_MOVED = "head_moved"  # the head changed while the tree was built: run it again
    REFUSED = "refused"  # the trail does not verify (rebuild_all's report of TrailDoesNotVerify)


@dataclass(frozen=True)
class RebuildReport:
    tenant_id: str
    status: RebuildStatus
    records: int = 0
    nodes_written: int = 0  # subtree hashes (n#...) written, beside one item per record
    root_hash: str = ""  # base64, RFC 9162 root of the tree of ``records`` leaves
    seconds: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}


@dataclass(frozen=True)
class _Stored:
    """A checked record: where it is and its stored bytes (what its leaf hashes)."""

    sequence: int
    object_key: str
    line: int
    stored: bytes


def _root(head: Head) -> str:
    return b64(merkle.root_hash(head.sequence, dict(unpack_frontier(head.frontier, head.sequence))))


class TreeRebuilder:
    """Rebuilds the Merkle tree (index items and head frontier) of chains that have none."""

    def __init__(
        self,
        heads: ChainHeads,
        objects: LockedObjects,
        cipher: RecordCipher,
        index: AuditIndex,
        bucket_of: Callable[[str], str],
        *,
        chunk_records: int = CHUNK_RECORDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``index`` must carry the reader's ``entry_attributes`` (as the writer's does)."""
        self.heads = heads
        self.objects = objects
        self.cipher = cipher
        self.index = index
        self.bucket_of = bucket_of
        self.chunk_records = chunk_records
        self.sleep = sleep

    def without_tree(self) -> Iterator[Head]:
        """Every chain head with records but no frontier (a Scan of the heads table)."""
        for head in self.heads.heads():
            if head.sequence > 0 and not head.frontier:
                yield head

    def rebuild_all(self, progress: Progress | None = None) -> list[RebuildReport]:
        """Rebuild every chain without a tree; a refused one is reported and the others go on."""
        reports = []
        for head in list(self.without_tree()):
            try:
                reports.append(self.rebuild(head.tenant_id, progress))
            except TrailDoesNotVerify as exc:
                reports.append(RebuildReport(head.tenant_id, RebuildStatus.REFUSED, detail=exc.message))
        return reports

    def rebuild(self, tenant_id: str, progress: Progress | None = None) -> RebuildReport:
        """Rebuild the tenant's tree from its stored records (nothing to do if it has one).

        Raises :class:`TrailDoesNotVerify`, having written nothing, when the records are not
        exactly the chain 1..head."""
        started = time.monotonic()
        head = self.heads.get(tenant_id)
        if head.frontier or head.sequence == 0:
            return RebuildReport(
                tenant_id,
                RebuildStatus.NOTHING_TO_DO,
                head.sequence,
                root_hash=_root(head),
                seconds=time.monotonic() - started,
                detail="the chain has its tree" if head.sequence else "the chain has no records",
            )
        records = self._checked_records(head, progress)
        frontier: merkle.Frontier = []
        nodes = 0
        for start in range(0, len(records), self.chunk_records):
            chunk = records[start : start + self.chunk_records]
            frontier, completed = merkle.append(frontier, start, [merkle.leaf_hash(r.stored) for r in chunk])
            nodes += sum(1 for node, _ in completed if node.level > 0)
            entries = [self._entry(tenant_id, r) for r in chunk]
            self._put_all([w["Put"]["Item"] for w in self.index.writes(tenant_id, completed, entries)])
            if progress is not None:
                progress("written", start + len(chunk), head.sequence)
        last_time = str(json_object(records[-1].stored).get("recorded_at", "")) if records else ""  # type: ignore[union-attr]
        status, detail = self._set_frontier(head, pack_frontier(frontier), last_time)
        return RebuildReport(
            tenant_id,
            status,
            head.sequence,
            nodes,
            b64(merkle.root_hash(head.sequence, dict(frontier))),
            time.monotonic() - started,
            detail,
        )

    # ------------------------------------------------------------------ reading and checking
    def _checked_records(self, head: Head, progress: Progress | None) -> list[_Stored]:
        """Records 1..head.sequence from the bucket, each checked; TrailDoesNotVerify otherwise."""
        tenant_id, top = head.tenant_id, head.sequence
        bucket = self.bucket_of(tenant_id)
        self._complete_pending(head, bucket)
        problems: list[str] = []
        at: dict[int, list[tuple[str, int, int]]] = {}  # sequence -> (key, first, last) of objects
        for key, entry in sorted(self.objects.versions(bucket, RECORD_PREFIX).items()):
            found = record_range(key)
            if found is None:
                problems.append(f"{key[:200]} is not a record object of the chain's layout")
            elif found[1] > top:
                problems.append(f"{key} is beyond the chain head ({top})")
            elif entry["deleted"]:
                problems.append(f"{key} is hidden by a delete marker")
            elif len(entry["versions"]) > 1:
                problems.append(f"{key} was overwritten ({len(entry['versions'])} versions)")
            else:
                for sequence in range(found[0], found[1] + 1):
                    at.setdefault(sequence, []).append((key, *found))
        records: list[_Stored] = []
        previous, lines = GENESIS_HASH, self._object_lines(tenant_id, bucket)
        for sequence in range(1, top + 1):
            objects = at.get(sequence, [])
            if len(objects) != 1:
                problems.append(
                    f"record {sequence}: {'no object' if not objects else f'{len(objects)} objects'}"
                )
                previous = ""
                continue
            key, first, last = objects[0]
            content = lines(key, last - first + 1)
            record = json_object(content[sequence - first]) if content is not None else None
            problem = _problem(record, tenant_id, sequence, previous)
            if problem or record is None:
                problems.append(f"record {sequence} ({key}): {problem or 'not a record of this tenant'}")
                previous = ""
                continue
            previous = str(record["hash"])
            records.append(_Stored(sequence, key, sequence - first, canonical(record)))
            if progress is not None and (sequence % PROGRESS_EVERY == 0 or sequence == top):
                progress("read", sequence, top)
        if not problems and previous != head.hash:
            problems.append(f"record {top}: the last record differs from the chain head")
        if problems:
            shown = "; ".join(problems[:_SHOWN_PROBLEMS])
            more = f" (and {len(problems) - _SHOWN_PROBLEMS} more)" if len(problems) > _SHOWN_PROBLEMS else ""
            raise TrailDoesNotVerify(
                f"the audit trail of {tenant_id!r} does not verify, so no tree was built for it: "
                f"{shown}{more}. Run `tenant-security audit verify --tenant {tenant_id}` to see "
                "every problem."
            )
        return records

    def _object_lines(self, tenant_id: str, bucket: str) -> Callable[[str, int], list[bytes] | None]:
        """``lines(key, count)``: the records of an object (read and decrypted once), or None
        when it does not decrypt as this tenant's or holds another number of lines."""
        cache: dict[str, list[bytes] | None] = {}

        def lines(key: str, count: int) -> list[bytes] | None:
            if key not in cache:
                cache.clear()  # objects are met in order: only the current one is kept
                plaintext = self.cipher.plaintext(tenant_id, self.objects.read(bucket, key))
                cache[key] = lines_of(plaintext) if plaintext is not None else None
            found = cache[key]
            return found if found is not None and len(found) == count else None

        return lines

    def _complete_pending(self, head: Head, bucket: str) -> None:
        """A head of the previous version carries its last object (``pending.body``) until it is
        written; a writer that died before writing it left it there. Written now, as the writer
        would (write-once: a no-op when it exists)."""
        pending = head.pending
        if pending is None or not pending.body or self.objects.exists(bucket, pending.key):
            return
        self.objects.put_once(
            bucket,
            pending.key,
            pending.body,
            datetime.fromisoformat(pending.retain_until),
            _OBJECT_CONTENT_TYPE,
        )

    # ------------------------------------------------------------------ writing
    def _entry(self, tenant_id: str, stored: _Stored) -> IndexEntry:
        record = json_object(stored.stored) or {}
        body = self.cipher.encrypt_bytes(tenant_id, stored.stored)
        return IndexEntry(stored.sequence, stored.object_key, stored.line, body, record)

    def _put_all(self, items: list[dict[str, Any]]) -> None:
        """BatchWriteItem puts, 25 a call, unprocessed items retried with back-off."""
        table, client = self.index.table, self.index.client
        for start in range(0, len(items), BATCH_WRITE_ITEMS):
            request: dict[str, Any] = {
                table: [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_ITEMS]]
            }
            for attempt in range(MAX_WRITE_ATTEMPTS):
                request = dict(client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {})
                if not request:
                    break
                self.sleep(min(2.0, 0.05 * 2**attempt))
            else:
                raise RuntimeError(
                    f"DynamoDB left {len(request.get(table, []))} index items unwritten after "
                    f"{MAX_WRITE_ATTEMPTS} attempts: run the rebuild again"
                )

    def _set_frontier(self, head: Head, frontier: bytes, last_time: str) -> tuple[RebuildStatus, str]:
        """The frontier into the head, only if it is still the head the tree was built for, with
        the last record's time as the floor of the next one's (a legacy head may name no time)."""
        try:
            self.heads.client.update_item(
                TableName=self.heads.table,
                Key={"tenant_id": {"S": head.tenant_id}},
                UpdateExpression="SET frontier = :frontier, tree_rebuilt_at = :now, recorded_floor = :floor",
                ConditionExpression="#seq = :n AND #hash = :h AND attribute_not_exists(frontier)",
                ExpressionAttributeNames={"#seq": "sequence", "#hash": "hash"},
                ExpressionAttributeValues={
                    ":frontier": {"B": frontier},
                    ":now": {"S": datetime.now(UTC).isoformat()},
                    ":floor": {"S": last_time},
                    ":n": {"N": str(head.sequence)},
                    ":h": {"S": head.hash},
                },
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            now = self.heads.get(head.tenant_id)
            if now.frontier and now.sequence == head.sequence and now.frontier == frontier:
                return RebuildStatus.REBUILT_BY_ANOTHER, "another rebuild set the same frontier first"
            return (
                RebuildStatus.HEAD_MOVED,
                f"the chain head changed while the tree was built (now {now.sequence} records"
                f"{', with a frontier' if now.frontier else ''}): not overwritten; run the rebuild again",
            )
        return RebuildStatus.REBUILT, ""


def _problem(record: dict[str, Any] | None, tenant_id: str, sequence: int, previous: str) -> str:
    """What is wrong with record ``sequence`` after a record whose hash is ``previous`` ("" when
    that one was wrong itself: no link is judged), or "" when nothing is."""
    if record is None:
        return "does not decrypt as a record of this tenant"
    if record.get("tenant_id") != tenant_id:
        return "a record of another tenant"
    if record.get("sequence") != sequence:
        return f"the record of sequence {record.get('sequence')} is at this position"
    if record_hash(record) != record.get("hash"):
        return "its content does not match its hash"
    if previous and record.get("prev_hash") != previous:
        return "its prev_hash does not link to the record before it"
    return ""
