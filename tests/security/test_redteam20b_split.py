"""Red team (issue 20, round 2): a batch split in two transactions (``batches.fitting``).

After 992 records, 32 more complete 36 inner nodes: 32 + 32 + 1 + 36 > 100 items, so the writer
appends them in two transactions. Attacks: a crash between the two (fault step "after_head" of
the first), the retry racing a concurrent writer, and the same events delivered to two writers
at once. Each event must land exactly once, the tree and chain whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tenant_security.audit.batches import MAX_BATCH_EVENTS, MAX_TRANSACTION_ITEMS, fitting
from tenant_security.audit.writer import Appended
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack

SPLIT_AT = 992


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 1000, "acme") as built:
        outcomes = built.writer().append_all([activity_event("acme", n) for n in range(SPLIT_AT)])
        assert all(isinstance(o, Appended) for o in outcomes)
        yield built


def _events(numbers: range) -> list[dict[str, Any]]:
    return [activity_event("acme", n) for n in numbers]


def _sequences_of_events(stack: AuditStack, numbers: range) -> list[int | None]:
    return [stack.heads.sequence_of_event("acme", f"acme-{n}") for n in numbers]


def test_the_batch_after_992_is_split() -> None:
    first = fitting(SPLIT_AT, MAX_BATCH_EVENTS)
    assert first < MAX_BATCH_EVENTS
    inner = first + SPLIT_AT.bit_count() - (SPLIT_AT + first).bit_count()
    assert 2 * first + 1 + inner <= MAX_TRANSACTION_ITEMS


def test_a_crash_between_the_two_transactions_then_the_retry_appends_each_event_once(
    stack: AuditStack,
) -> None:
    """HELD: the writer dies after the split batch's first transaction (its object unwritten);
    the retried delivery answers the first part as duplicates, writes the dead writer's object
    from the index and appends the rest."""
    crashed: list[str] = []

    def crash_once(tenant_id: str, step: str) -> None:
        if step == "after_head" and not crashed:
            crashed.append(step)
            raise RuntimeError("injected crash between the split batch's transactions")

    dying = stack.writer()
    dying.fault = crash_once
    first = dying.append_all(_events(range(SPLIT_AT, SPLIT_AT + 32)))
    assert all(isinstance(o, RuntimeError) for o in first), first
    head = stack.heads.get("acme")
    assert SPLIT_AT < head.sequence < SPLIT_AT + 32  # the first part only
    retried = stack.writer().append_all(_events(range(SPLIT_AT, SPLIT_AT + 32)))
    assert all(isinstance(o, Appended) for o in retried), retried
    appended = [o.sequence for o in retried if isinstance(o, Appended)]
    assert sorted(appended) == list(range(SPLIT_AT + 1, SPLIT_AT + 33))
    assert _sequences_of_events(stack, range(SPLIT_AT, SPLIT_AT + 32)) == appended
    stack.valid("acme")


def test_the_same_split_batch_delivered_to_parallel_writers_lands_once(stack: AuditStack) -> None:
    """HELD: four writers get the same 32 events at once (at-least-once delivery), each splitting
    them; beside them a fifth appends others. Each event lands once, no gap."""
    writers = [stack.writer() for _ in range(5)]
    results: list[list[Any]] = [[] for _ in writers]

    def run(number: int) -> None:
        numbers = range(SPLIT_AT, SPLIT_AT + 32) if number < 4 else range(5000, 5040)
        results[number].extend(writers[number].append_all(_events(numbers)))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outcomes in results:
        assert all(isinstance(o, Appended) for o in outcomes), outcomes
    firsts = [o for outcomes in results[:4] for o in outcomes if not o.duplicate]
    assert len(firsts) == 32  # each of the 32 appended once, the rest answered as duplicates
    head = stack.heads.get("acme")
    assert head.sequence == SPLIT_AT + 32 + 40
    landed = [s for s in _sequences_of_events(stack, range(SPLIT_AT, SPLIT_AT + 32)) if s is not None]
    landed += [s for s in _sequences_of_events(stack, range(5000, 5040)) if s is not None]
    assert sorted(landed) == list(range(SPLIT_AT + 1, head.sequence + 1))
    stack.valid("acme")
