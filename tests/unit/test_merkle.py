"""The stored-subtree Merkle tree against RFC 9162's definitions (tests/support/rfc9162.py)."""

from __future__ import annotations

import pytest

from tenant_security.audit import merkle
from tenant_security.audit.merkle import NodeId
from tests.support import rfc9162

ENTRIES = [f'{{"sequence":{i + 1}}}'.encode() for i in range(70)]


def _grown(size: int, batches: list[int] | None = None) -> tuple[merkle.Frontier, dict[NodeId, bytes]]:
    """The frontier and every stored node after appending the first ``size`` entries in batches."""
    frontier: merkle.Frontier = []
    stored: dict[NodeId, bytes] = {}
    done = 0
    for batch in batches or [1] * size:
        leaves = [merkle.leaf_hash(e) for e in ENTRIES[done : done + batch]]
        frontier, completed = merkle.append(frontier, done, leaves)
        for node, value in completed:
            assert node not in stored  # each node is written once, never changed
            stored[node] = value
        done += batch
    assert done == size
    return frontier, stored


def _proof(ranges: list[merkle.Range], stored: dict[NodeId, bytes]) -> list[bytes]:
    needed = merkle.nodes_needed(ranges)
    available = {node: stored[node] for node in needed}
    return [merkle.range_hash(start, end, available) for start, end in ranges]


@pytest.mark.parametrize("size", range(0, 71))
def test_the_root_of_every_size_is_rfc_9162_s_mth(size: int) -> None:
    frontier, stored = _grown(size)
    assert merkle.root_hash(size, stored) == rfc9162.mth(ENTRIES[:size])
    assert [node for node, _ in frontier] == merkle.frontier_ids(size)
    # the frontier alone is enough for the root: what a writer keeps in the chain head
    assert merkle.root_hash(size, dict(frontier)) == rfc9162.mth(ENTRIES[:size])


def test_batches_store_the_same_nodes_as_single_appends() -> None:
    assert _grown(70, [3, 1, 7, 16, 20, 23]) == _grown(70)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 70])
def test_every_inclusion_proof_verifies_and_no_other_leaf_does(size: int) -> None:
    _, stored = _grown(size)
    root = rfc9162.mth(ENTRIES[:size])
    for index in range(size):
        path = _proof(merkle.inclusion_ranges(index, size), stored)
        assert len(path) <= size.bit_length()
        leaf = merkle.leaf_hash(ENTRIES[index])
        assert rfc9162.verify_inclusion(index, size, leaf, path, root)
        other = merkle.leaf_hash(ENTRIES[(index + 1) % len(ENTRIES)])
        assert not rfc9162.verify_inclusion(index, size, other, path, root)
        if path:
            assert not rfc9162.verify_inclusion(index, size, leaf, path[:-1], root)


@pytest.mark.parametrize("second", [1, 2, 3, 5, 8, 9, 13, 16, 17, 32, 45, 70])
def test_every_consistency_proof_verifies(second: int) -> None:
    _, stored = _grown(second)
    second_root = rfc9162.mth(ENTRIES[:second])
    for first in range(1, second + 1):
        proof = _proof(merkle.consistency_ranges(first, second), stored)
        first_root = rfc9162.mth(ENTRIES[:first])
        assert rfc9162.verify_consistency(first, second, proof, first_root, second_root)
        forked = rfc9162.mth([b"forked", *ENTRIES[1:first]])
        assert not rfc9162.verify_consistency(first, second, proof, forked, second_root)


def test_a_proof_needs_few_stored_nodes() -> None:
    size = 10**9 + 7
    assert len(merkle.nodes_needed(merkle.inclusion_ranges(123_456_789, size))) <= 2 * 31
    assert len(merkle.nodes_needed(merkle.consistency_ranges(999_999, size))) <= 2 * 31


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (merkle.inclusion_ranges, (5, 5)),
        (merkle.inclusion_ranges, (-1, 5)),
        (merkle.consistency_ranges, (0, 5)),
        (merkle.consistency_ranges, (6, 5)),
    ],
)
def test_positions_outside_the_tree_are_refused(call: object, args: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=r"tree|proof"):
        call(*args)  # type: ignore[operator]


def test_a_frontier_of_another_size_is_refused() -> None:
    frontier, _ = _grown(5)
    with pytest.raises(ValueError, match="frontier"):
        merkle.append(frontier, 6, [merkle.leaf_hash(b"x")])
