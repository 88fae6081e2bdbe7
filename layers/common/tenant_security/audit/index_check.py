"""The verifier's check of the audit index against the records (see :mod:`.verify`).

Each check stands on what it checks alone, so no problem elsewhere in the trail -- a gap, a
lost batch, a record already named -- excuses tampering with the index beyond it:

- every complete subtree whose leaves are all genuine records is hashed from those records and
  compared with its stored node (a leaf's in its record's item), excused only by a problem of
  one of its own leaves;
- every record's indexed copy (body, the attributes reads go by, where its object is) is
  compared with the record, excused only by a problem of that record;
- an item beyond the trail, or a record entry where the trail has no record (a batch the
  writer gave up: its entries were gone), is planted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tenant_security.audit import merkle
from tenant_security.audit.chain import canonical
from tenant_security.audit.index_entries import EntryKey
from tenant_security.audit.problems import INDEX_MISMATCH, Problems
from tenant_security.audit.store import LostRange
from tenant_security.audit.tree import node_position, record_position

DecodeLines = Callable[[str, bytes], list[dict[str, Any] | None] | None]
EntryAttributes = Callable[[str, dict[str, Any]], dict[str, Any]]


def genuine_subtrees(genuine: Mapping[int, dict[str, Any]], last: int) -> dict[merkle.NodeId, bytes]:
    """Every complete subtree of records 1..``last`` whose leaves are all genuine, hashed from
    them (leaves included)."""
    level = {s - 1: merkle.leaf_hash(canonical(r)) for s, r in genuine.items() if 1 <= s <= last}
    nodes = {merkle.NodeId(0, i): h for i, h in level.items()}
    height = 0
    while len(level) > 1:
        pairs = [(i, h) for i, h in level.items() if not i % 2 and i + 1 in level]
        level = {i // 2: merkle.node_hash(h, level[i + 1]) for i, h in pairs}
        height += 1
        nodes.update({merkle.NodeId(height, i): h for i, h in level.items()})
    return nodes


def check_index(
    items: Mapping[str, dict[str, Any]],
    tenant_id: str,
    last: int,
    genuine: Mapping[int, dict[str, Any]],
    problems: Problems,
    *,
    decode_lines: DecodeLines,
    entry_attributes: EntryAttributes,
    located: Mapping[int, tuple[str, int]],
    covered: int | None,
    lost: tuple[LostRange, ...] = (),
) -> None:
    """The tenant's index ``items`` (by position) against records 1..``last`` (``genuine``);
    ``covered``: the head read after the items (None: a part of the trail, whose items beyond
    it are the rest's)."""
    expected = genuine_subtrees(genuine, last)
    for node, value in sorted(expected.items()):
        item = items.get(node_position(node)) or {}
        excused = problems.any_up_to(node.end, since=node.start)  # a problem of its own leaves
        if bytes(item.get("hash", {}).get("B", b"")) != value and not excused:
            detail = f"tree node {node.level}/{node.index} differs from the records"
            problems.add(node.end, INDEX_MISMATCH, detail)
    for sequence, record in sorted(genuine.items()):
        if sequence > last or problems.any_up_to(sequence, since=sequence - 1):
            continue
        item = items.get(record_position(sequence)) or {}
        copy = decode_lines(tenant_id, bytes(item["body"]["B"])) if "body" in item else None
        if copy != [record]:
            problems.add(sequence, INDEX_MISMATCH, "the indexed copy differs from the stored record")
            continue
        wanted = {**entry_attributes(tenant_id, record), "recorded_at": {"S": record["recorded_at"]}}
        if sequence in located:
            key, line = located[sequence]
            wanted |= {"object_key": {"S": key}, "line": {"N": str(line)}}
        names = set(wanted) | {str(k) for k in EntryKey}
        if differing := [n for n in sorted(names) if item.get(n) != wanted.get(n)]:
            detail = f"the indexed entry's {', '.join(differing)} differ from the record's"
            problems.add(sequence, INDEX_MISMATCH, detail)
    given_up = {s for r in lost for s in range(r.first, r.last + 1) if s not in genuine}
    for position in sorted(set(items) - {node_position(n) for n in expected}):
        at = _position_sequence(position)
        if at in given_up and position == record_position(at):
            problems.add(at, INDEX_MISMATCH, f"{position}: an entry for a record the writer gave up")
        elif covered is not None and (at is None or at > covered):
            problems.add(at, INDEX_MISMATCH, f"{position} is in the index but not in the trail")


def _position_sequence(position: str) -> int | None:
    """The last sequence an index position concerns (a record's, or a node's last leaf)."""
    if position.startswith("r#"):
        return int(position[2:]) if position[2:].isdigit() else None
    level, _, index = position[2:].partition("#")
    if not (level.isdigit() and index.isdigit()):
        return None
    return merkle.NodeId(int(level), int(index)).end
