"""RFC 9162 §2.1 Merkle trees over a tenant's audit records, from stored subtree hashes.

The tree of ``n`` leaves is never held whole. What is stored is the hash of every *complete*
subtree, addressed by :class:`NodeId` (``level``, ``index``: the ``2**level`` leaves from
``index * 2**level``), written once when its last leaf is appended and never changed. Any
RFC 9162 range the algorithms need, MTH(D[start:end]), splits into at most two such nodes per
level, so a root or a proof reads O(log n) stored hashes:

- :func:`append` moves the *frontier* (the complete subtrees that make up the tree, largest
  first: one per set bit of ``n``) by new leaves and names the nodes completed on the way;
- :func:`inclusion_ranges` and :func:`consistency_ranges` are RFC 9162 §2.1.3.1 PATH and
  §2.1.4.1 SUBPROOF, producing ranges instead of hashes; :func:`nodes_needed` lists the stored
  nodes those ranges need, so one batched read serves a whole proof; :func:`range_hash` computes
  MTH of a range from them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

LEAF_PREFIX, NODE_PREFIX = b"\x00", b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


@dataclass(frozen=True, order=True)
class NodeId:
    """The complete subtree of the ``2**level`` leaves from ``index * 2**level``."""

    level: int
    index: int

    @property
    def start(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


Range = tuple[int, int]  # leaves [start, end)
Frontier = list[tuple[NodeId, bytes]]


def leaf_hash(stored_bytes: bytes) -> bytes:
    """SHA-256(0x00 ‖ the record's stored bytes)."""
    return hashlib.sha256(LEAF_PREFIX + stored_bytes).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """k: the largest power of two smaller than ``size`` (RFC 9162 §2.1.1; ``size`` > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def _complete(start: int, end: int) -> NodeId | None:
    """The node that is exactly [start, end), when the range is a complete, aligned subtree."""
    size = end - start
    if size > 0 and size & (size - 1) == 0 and start % size == 0:
        return NodeId(size.bit_length() - 1, start // size)
    return None


def _pieces(start: int, end: int) -> Iterator[NodeId]:
    """The stored nodes MTH(D[start:end]) is made of, as RFC 9162 splits the range."""
    node = _complete(start, end)
    if node is not None:
        yield node
        return
    if end - start < 1:
        raise ValueError(f"an empty range [{start}, {end}) has no stored nodes")
    k = _split(end - start)
    yield from _pieces(start, start + k)
    yield from _pieces(start + k, end)


def range_hash(start: int, end: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    """MTH(D[start:end]) from the stored nodes (``nodes`` must hold :func:`nodes_needed`'s)."""
    node = _complete(start, end)
    if node is not None:
        return nodes[node]
    k = _split(end - start)
    return node_hash(range_hash(start, start + k, nodes), range_hash(start + k, end, nodes))


def nodes_needed(ranges: Iterable[Range]) -> list[NodeId]:
    """Every stored node the ranges' hashes are made of (each once, sorted)."""
    return sorted({node for start, end in ranges for node in _pieces(start, end)})


def root_hash(size: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    """MTH of the first ``size`` leaves (the empty tree's is SHA-256 of nothing)."""
    return EMPTY_ROOT if size == 0 else range_hash(0, size, nodes)


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]) as ranges, leaf first (m = ``index`` < n = ``size``)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")

    def path(m: int, start: int, end: int) -> list[Range]:
        if end - start == 1:
            return []
        k = _split(end - start)
        if m < k:
            return [*path(m, start, start + k), (start + k, end)]
        return [*path(m - k, start + k, end), (start, start + k)]

    return path(index, 0, size)


def consistency_ranges(first: int, second: int) -> list[Range]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) as ranges (0 < m = ``first`` <= n = ``second``)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from a tree of {first} to one of {second}")

    def subproof(m: int, start: int, end: int, whole: bool) -> list[Range]:
        if m == end - start:
            return [] if whole else [(start, end)]
        k = _split(end - start)
        if m <= k:
            return [*subproof(m, start, start + k, whole), (start + k, end)]
        return [*subproof(m - k, start + k, end, False), (start, start + k)]

    return subproof(first, 0, second, True)


def frontier_ids(size: int) -> list[NodeId]:
    """The complete subtrees a tree of ``size`` leaves is made of, largest (leftmost) first."""
    ids, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            ids.append(NodeId(level, start >> level))
            start += 1 << level
    return ids


def append(frontier: Frontier, size: int, leaves: Sequence[bytes]) -> tuple[Frontier, Frontier]:
    """``(frontier, completed)`` after appending ``leaves`` to a tree of ``size`` leaves whose
    frontier is ``frontier``: the new frontier and every node completed (leaves included), each
    to be stored once."""
    if [node for node, _ in frontier] != frontier_ids(size):
        raise ValueError(f"the frontier does not describe a tree of {size} leaves")
    stack, completed = list(frontier), []
    for offset, leaf in enumerate(leaves):
        node, value = NodeId(0, size + offset), leaf
        completed.append((node, value))
        while stack and stack[-1][0].level == node.level:
            left_id, left = stack.pop()
            node, value = NodeId(node.level + 1, left_id.index // 2), node_hash(left, value)
            completed.append((node, value))
        stack.append((node, value))
    return stack, completed
