"""The chain verifier: walks a tenant's records and checkpoints and names every problem.

Problems, each with the sequence number it concerns:

- ``modified_record``: an object overwritten by a new version, a body that does not decrypt
  under the platform audit key, content that does not match its hash, content that differs from
  what the next record (or the chain head, or a signed checkpoint) committed to;
- ``missing_record``: no object for a sequence, one hidden by a delete marker, or one of a batch
  the writer gave up (its index entries deleted before its object was written);
- ``inserted_record``: an object the chain does not account for (beyond the head, outside the
  key layout, a second object for one sequence, another tenant's record);
- ``reordering``: a record found at another sequence's position;
- ``bad_checkpoint_signature``: a checkpoint not signed by our key, or signing another position;
  ``missing_checkpoint``: a checkpoint hidden by a delete marker;
- ``tree_mismatch``: records that do not hash (RFC 9162) to a signed root, no earlier record
  having a problem of its own; ``index_mismatch``: a Merkle node or record copy in the audit
  index that differs from the records (proofs or reads would not match the trail).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tenant_security.audit import merkle
from tenant_security.audit.chain import (
    CHECKPOINT_PREFIX,
    GENESIS_HASH,
    RECORD_PREFIX,
    canonical,
    json_object,
    record_hash,
    record_key,
    record_range,
    sequence_of_checkpoint_key,
)
from tenant_security.audit.checkpoints import Checkpoints
from tenant_security.audit.index_check import check_index
from tenant_security.audit.objects import LockedObjects
from tenant_security.audit.problems import (
    BAD_SIGNATURE,
    INSERTED,
    MISSING,
    MISSING_CHECKPOINT,
    MODIFIED,
    REORDERED,
    TREE_MISMATCH,
    Problems,
)
from tenant_security.audit.store import ChainHeads, LostRange
from tenant_security.audit.tree import AuditIndex, b64, unpack_frontier

PROGRESS_EVERY = 100  # records between two progress reports of a long verification
_LOST = "no record for this sequence: its index entries were deleted before its object was written"

# An object's records (one a line; None for a line that is none), or None if it does not decrypt.
DecodeLines = Callable[[str, bytes], list[dict[str, Any] | None] | None]


class ChainVerifier:
    """Verifies one tenant's chain in its audit bucket against its head and checkpoints."""

    def __init__(
        self,
        heads: ChainHeads,
        objects: LockedObjects,
        checkpoints: Checkpoints,
        decode_lines: DecodeLines,
        bucket_of: Callable[[str], str],
        index: AuditIndex | None = None,
    ) -> None:
        """``decode_lines(tenant_id, body)``: an object's records; ``index``: the audit index."""
        self.index = index
        self.heads = heads
        self.objects = objects
        self.checkpoints = checkpoints
        self.decode_lines = decode_lines
        self.bucket_of = bucket_of
        self._objects: dict[str, list[dict[str, Any] | None] | None] = {}
        self._located: dict[int, tuple[str, int]] = {}

    def verify(
        self,
        tenant_id: str,
        first: int = 1,
        last: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """``{status: VALID|INVALID, checked, problems, ...}`` for sequences ``first``..``last``;
        ``progress(sequence, last)`` is told every PROGRESS_EVERY records and at the end."""
        bucket = self.bucket_of(tenant_id)
        head = self.heads.get(tenant_id)
        top = head.sequence
        first, last = max(1, first), top if last is None else min(last, top)
        # The head's last batch may be in flight (claimed, its object a moment away).
        pending = head.pending if head.pending is not None and head.pending.in_flight() else None
        in_flight_range = range(pending.first_sequence, pending.sequence + 1) if pending else range(0)
        problems = Problems()
        records = self.objects.versions(bucket, RECORD_PREFIX)
        self._objects = {}  # each object read and decrypted once per verification
        self._located = {}  # where each genuine record is: its object's key and line
        keys_of: dict[int, list[str]] = {}
        for key in sorted(records):
            found_range = record_range(key)
            if found_range is None:
                problems.add(None, INSERTED, f"{key[:200]} is not a record of the chain's layout")
                continue
            low, high = found_range
            if high > top:
                problems.add(max(low, top + 1), INSERTED, f"{key} is beyond the chain head ({top})")
            for sequence in range(low, min(high, top) + 1):
                keys_of.setdefault(sequence, []).append(key)

        genuine: dict[int, dict[str, Any]] = {}
        for sequence in range(max(1, first - 1), min(top, last + 1) + 1):
            in_range = first <= sequence <= last
            found = self._candidates(
                tenant_id, bucket, sequence, keys_of.get(sequence, []), records, problems, in_range
            )
            if not found:
                if in_range and sequence not in in_flight_range and not problems.has(sequence, MISSING):
                    lost = any(r.first <= sequence <= r.last for r in head.lost)
                    problems.add(sequence, MISSING, _LOST if lost else "no record for this sequence")
                continue
            previous = genuine.get(sequence - 1)
            # The genuine record of a sequence: the most consistent, then the first written.
            found.sort(
                key=lambda c: (*self._rank(c[0], c[1], sequence, tenant_id, previous), -c[2]), reverse=True
            )
            (key, record, _written), extra = found[0], found[1:]
            located = record_range(key)
            if located is not None:
                self._located[sequence] = (key, sequence - located[0])
            for other_key, _other, _ in extra:
                if in_range:
                    problems.add(sequence, INSERTED, f"{other_key} is a second record for this sequence")
            if in_range:
                self._check(record, sequence, tenant_id, previous, problems, first)
            genuine[sequence] = record
            if progress is not None and in_range and (sequence % PROGRESS_EVERY == 0 or sequence == last):
                progress(sequence, last)

        if last == top and top in genuine and genuine[top].get("hash") != head.hash:
            problems.add(top, MODIFIED, "the last record differs from the chain head")
        roots: dict[int, str] = {}
        checked_checkpoints = self._check_checkpoints(
            tenant_id, bucket, first, last, genuine, problems, roots
        )
        if first == 1:  # roots are recomputed from the first record
            self._check_tree(tenant_id, last, genuine, roots, problems, last == top, head.lost)
        listed = problems.listed()
        return {
            "tenant_id": tenant_id,
            "status": "INVALID" if listed else "VALID",
            "checked": max(0, last - first + 1),
            "from": first,
            "to": last,
            "head_sequence": top,
            "checkpoints_checked": checked_checkpoints,
            "problems": listed,
        }

    def _candidates(
        self,
        tenant_id: str,
        bucket: str,
        sequence: int,
        keys: list[str],
        records: dict[str, dict[str, Any]],
        problems: Problems,
        in_range: bool,
    ) -> list[tuple[str, dict[str, Any], float]]:
        """The readable records stored for ``sequence``, each with the time it was first written."""
        found = []
        for key in keys:
            entry = records[key]
            if entry["deleted"]:
                if in_range:
                    problems.add(sequence, MISSING, f"{key} is hidden by a delete marker")
                continue
            if len(entry["versions"]) > 1 and in_range:
                problems.add(sequence, MODIFIED, f"{key} was overwritten ({len(entry['versions'])} versions)")
            record = self._record_in(tenant_id, bucket, key, sequence)
            if record is None:
                if in_range:
                    kind = INSERTED if len(keys) > 1 else MODIFIED
                    problems.add(sequence, kind, f"{key} does not decrypt as a record of this tenant")
                continue
            found.append((key, record, entry["versions"][0]["LastModified"].timestamp()))
        return found

    def _record_in(self, tenant_id: str, bucket: str, key: str, sequence: int) -> dict[str, Any] | None:
        """Record ``sequence`` of the object at ``key`` (its line ``sequence - first``), or None
        when the object does not decrypt or has no such line."""
        if key not in self._objects:
            self._objects[key] = self.decode_lines(tenant_id, self.objects.read(bucket, key))
        lines, found_range = self._objects[key], record_range(key)
        if lines is None or found_range is None or len(lines) != found_range[1] - found_range[0] + 1:
            return None
        return lines[sequence - found_range[0]]

    @staticmethod
    def _rank(
        key: str, record: dict[str, Any], sequence: int, tenant_id: str, previous: dict[str, Any] | None
    ) -> tuple[bool, ...]:
        found_range = record_range(key)
        try:
            at_its_own_key = found_range is not None and key == record_key(
                found_range[0], datetime.fromisoformat(str(record.get("recorded_at"))), found_range[1]
            )
        except ValueError:
            at_its_own_key = False
        return (
            at_its_own_key,
            record.get("tenant_id") == tenant_id,
            record.get("sequence") == sequence,
            record_hash(record) == record.get("hash"),
            previous is None or record.get("prev_hash") == previous.get("hash"),
        )

    @staticmethod
    def _check(
        record: dict[str, Any],
        sequence: int,
        tenant_id: str,
        previous: dict[str, Any] | None,
        problems: Problems,
        first: int,
    ) -> None:
        if record.get("tenant_id") != tenant_id:
            problems.add(sequence, INSERTED, "a record of another tenant")
            return
        if record.get("sequence") != sequence:
            problems.add(
                sequence, REORDERED, f"the record of sequence {record.get('sequence')} is at this position"
            )
            return
        if record_hash(record) != record.get("hash"):
            problems.add(sequence, MODIFIED, "its content does not match its hash")
            return
        if sequence == 1 and record.get("prev_hash") != GENESIS_HASH:
            problems.add(sequence, MODIFIED, "the first record does not start the chain")
        if previous is not None and record.get("prev_hash") != previous.get("hash") and sequence - 1 >= first:
            # This record is intact, so it is the one before that no longer matches it.
            problems.add(sequence - 1, MODIFIED, f"differs from the hash record {sequence} commits to")

    def _check_checkpoints(
        self,
        tenant_id: str,
        bucket: str,
        first: int,
        last: int,
        genuine: dict[int, dict[str, Any]],
        problems: Problems,
        roots: dict[int, str],
    ) -> int:
        """Every checkpoint's signature and position; ``roots`` gets each valid one's signed root."""
        checked = 0
        for key, entry in sorted(self.objects.versions(bucket, CHECKPOINT_PREFIX).items()):
            sequence = sequence_of_checkpoint_key(key)
            if entry["deleted"]:
                problems.add(sequence, MISSING_CHECKPOINT, f"{key} is hidden by a delete marker")
                continue
            checked += 1
            signed = json_object(self.objects.read(bucket, key))
            if signed is None or not self.checkpoints.signature_valid(signed):
                problems.add(sequence, BAD_SIGNATURE, f"{key} is not signed by the platform checkpoint key")
                continue
            if signed.get("tenant_id") != tenant_id or signed.get("sequence") != sequence:
                problems.add(sequence, BAD_SIGNATURE, f"{key} signs another chain position")
                continue
            if isinstance(signed.get("root_hash"), str) and sequence is not None:
                roots[sequence] = str(signed["root_hash"])
            record = genuine.get(sequence) if sequence is not None else None
            in_range = sequence is not None and first <= sequence <= last
            if in_range and record is not None and record.get("hash") != signed.get("hash"):
                problems.add(sequence, MODIFIED, "differs from the signed checkpoint")
        return checked

    def _check_tree(
        self,
        tenant_id: str,
        last: int,
        genuine: dict[int, dict[str, Any]],
        roots: dict[int, str],
        problems: Problems,
        whole: bool,
        lost: tuple[LostRange, ...] = (),
    ) -> None:
        """The RFC 9162 tree of records 1..last against the signed roots and the audit index
        (``whole``: last is the head, so nothing may be stored beyond it). Past a batch given up
        (``lost``) the roots are recomputed from the frontier noted after it, once its nodes
        before the batch are the records' own: earlier problems excuse no later one."""
        frontier: merkle.Frontier = []
        resumed: list[int] = []  # the last sequences of the lost batches the tree went on past
        size = 1
        while size <= last:
            record = genuine.get(size)
            if record is None:  # missing: no root past it, but from a lost batch's noted frontier
                skip = next((r for r in lost if r.first <= size <= r.last <= last), None)
                noted = _noted_frontier(skip, frontier, size - 1) if skip else None
                if skip is None or noted is None:
                    if skip is not None:
                        problems.add(skip.last, TREE_MISMATCH, _FORKED)
                    break
                frontier, size = noted, skip.last + 1
                resumed.append(skip.last)
                signed = roots.get(skip.last)
                if signed is not None and signed != b64(merkle.root_hash(skip.last, dict(noted))):
                    problems.add(skip.last, TREE_MISMATCH, _FORKED)
                continue
            frontier, _ = merkle.append(frontier, size - 1, [merkle.leaf_hash(canonical(record))])
            signed_root = roots.get(size)
            root = b64(merkle.root_hash(size, dict(frontier))) if signed_root is not None else None
            if root != signed_root and not problems.any_up_to(size, _since(resumed, size)):
                message = "the records do not hash to the root this checkpoint signed"
                problems.add(size, TREE_MISMATCH, message)
            size += 1
        if self.index is not None:
            items = self.index.partition(tenant_id)
            # Read after the index, the head covers the items appended since (one transaction each).
            covered = max(last, self.heads.get(tenant_id).sequence) if whole else None
            check_index(
                items,
                tenant_id,
                last,
                genuine,
                problems,
                decode_lines=self.decode_lines,
                entry_attributes=self.index.entry_attributes,
                located=self._located,
                covered=covered,
                lost=lost,
            )


_FORKED = "the tree the head noted after a lost batch does not continue the records before it"


def _noted_frontier(skip: LostRange, walked: merkle.Frontier, size: int) -> merkle.Frontier | None:
    """A lost batch's noted frontier, if it is one and its nodes wholly before the batch are the
    ones the records before it hash to (``walked``: the frontier of those ``size`` records)."""
    try:
        noted = unpack_frontier(skip.frontier, skip.last)
    except ValueError:
        return None
    # A node of the noted frontier that ends before the gap is one of the walked frontier's.
    before = dict(walked)
    return noted if all(before.get(node) == h for node, h in noted if node.end <= size) else None


def _since(resumed: list[int], sequence: int) -> int:
    """The end of the last lost batch the tree went on past before ``sequence`` (0: none)."""
    return max((end for end in resumed if end < sequence), default=0)
