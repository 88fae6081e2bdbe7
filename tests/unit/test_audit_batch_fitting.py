"""How many records one batch transaction takes: never more than DynamoDB's 100 items (a claim
and a record item each, the head, every inner node the records complete, counted by building
the tree), and never fewer than fit."""

from __future__ import annotations

import hashlib
import random

import pytest

from tenant_security.audit import merkle
from tenant_security.audit.batches import MAX_BATCH_EVENTS, MAX_TRANSACTION_ITEMS, fitting


def _items(size: int, k: int) -> int:
    """The transaction's items when k records follow a tree of ``size`` leaves, by building it."""
    frontier = [(node, hashlib.sha256(repr(node).encode()).digest()) for node in merkle.frontier_ids(size)]
    _, completed = merkle.append(frontier, size, [hashlib.sha256(b"%d" % i).digest() for i in range(k)])
    inner = sum(1 for node, _ in completed if node.level > 0)
    return 2 * k + 1 + inner


SIZES = [0, 1, 31, 32, 1023, 2**20 - 1, 2**39 - 1, 2**40 - 2, *random.Random(7).sample(range(2**40), 40)]


@pytest.mark.parametrize("size", SIZES)
def test_a_batch_fits_one_transaction_and_takes_all_that_fit(size: int) -> None:
    k = fitting(size, MAX_BATCH_EVENTS)
    assert 1 <= k <= MAX_BATCH_EVENTS
    assert _items(size, k) <= MAX_TRANSACTION_ITEMS
    if k < MAX_BATCH_EVENTS:
        assert _items(size, k + 1) > MAX_TRANSACTION_ITEMS


def test_a_young_tree_takes_full_batches_but_where_a_carry_runs_long() -> None:
    taken = {size: fitting(size, MAX_BATCH_EVENTS) for size in range(0, 2048, MAX_BATCH_EVENTS)}
    # 992 + 32 = 1024 (and 2016 + 32 = 2048): that batch completes 36 inner nodes, one more than
    # 32 records leave room for
    assert {size for size, k in taken.items() if k < MAX_BATCH_EVENTS} == {992, 2016}
    assert taken[992] == taken[2016] == MAX_BATCH_EVENTS - 1


def test_a_tree_whose_carries_need_many_nodes_takes_fewer() -> None:
    # 2^40 - 1 leaves: the next leaf completes 40 inner nodes at once
    assert fitting(2**40 - 1, MAX_BATCH_EVENTS) < MAX_BATCH_EVENTS
