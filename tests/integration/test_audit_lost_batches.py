"""A batch whose object was never written (its writer died after the head's transaction) and
whose index entries were then deleted cannot be rebuilt. Its writer's successors wait while it
may still be in flight, then give it up -- once, whoever gets there first -- so the tenant's
trail goes on; the head names the lost range, the writer reports it (the AuditRecordsLost
alarm), and the verifier names every lost record missing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tenant_security.audit.store import IN_FLIGHT_SECONDS, ChainBusy, LostBatch
from tenant_security.audit.writer import Appended
from tests.support.audit import (
    AuditStack,
    activity_event,
    activity_events,
    age_the_claim,
    crash_after_the_head,
    delete_index_records,
    mocked_audit_stack,
)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 1000, "acme") as built:
        yield built


def _crash_then_delete_its_index_entries(stack: AuditStack) -> None:
    """Records 3..12 claimed by a writer that died before their object; then their index
    entries deleted (someone with write access to the index table)."""
    stack.writer().append_all(activity_events("acme", range(2)))
    crash_after_the_head(stack, "acme", range(2, 12))
    delete_index_records(stack, "acme", range(3, 13))


def _age_the_claim(stack: AuditStack) -> None:
    age_the_claim(stack, "acme")


def test_a_lost_batch_waits_out_its_flight_then_is_given_up_and_the_trail_goes_on(stack: AuditStack) -> None:
    _crash_then_delete_its_index_entries(stack)
    writer = stack.writer()
    early = writer.append_all(activity_events("acme", range(12, 14)))
    assert all(isinstance(o, ChainBusy) for o in early), early  # maybe not visible yet: retried
    assert stack.heads.get("acme").sequence == 12
    assert writer.take_lost() == []

    _age_the_claim(stack)
    outcomes = writer.append_all(activity_events("acme", range(12, 14)))
    assert [(o.sequence, o.duplicate) for o in outcomes] == [(13, False), (14, False)]  # type: ignore[union-attr]
    assert writer.take_lost() == [LostBatch("acme", 3, 12)]
    assert writer.take_lost() == []  # reported once
    head = stack.heads.get("acme")
    assert (head.sequence, _ranges(head), head.pending.first_sequence) == (14, [(3, 12)], 13)  # type: ignore[union-attr]
    problems = stack.problems("acme")
    assert {s for s, kind in problems if kind == "missing_record"} == set(range(3, 13)), problems
    assert {kind for _, kind in problems} <= {"missing_record", "index_mismatch"}, problems
    assert all(s is not None and 3 <= s <= 12 for s, _ in problems), problems
    report = stack.verifier().verify("acme")["problems"]
    assert all(
        "deleted before its object was written" in p["detail"]
        for p in report
        if p["kind"] == "missing_record"
    )


def test_a_retried_delivery_of_the_lost_events_is_answered_as_duplicates(stack: AuditStack) -> None:
    _crash_then_delete_its_index_entries(stack)
    _age_the_claim(stack)
    outcomes = stack.writer().append_all(activity_events("acme", range(2, 12)))  # the dead writer's own retry
    assert all(isinstance(o, Appended) and o.duplicate for o in outcomes), outcomes
    assert _ranges(stack.heads.get("acme")) == [(3, 12)]
    assert [o.sequence for o in stack.writer().append_all(activity_events("acme", range(12, 13)))] == [13]  # type: ignore[union-attr]


def test_parallel_writers_give_the_batch_up_once_and_append_every_event_once(stack: AuditStack) -> None:
    _crash_then_delete_its_index_entries(stack)
    _age_the_claim(stack)
    writers = [stack.writer() for _ in range(5)]
    results: list[Any] = []

    def put(number: int) -> None:
        results.extend(
            writers[number].append_all(activity_events("acme", range(100 + 10 * number, 110 + 10 * number)))
        )

    threads = [threading.Thread(target=put, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(o, Appended) and not o.duplicate for o in results), results
    assert sorted(o.sequence for o in results) == list(range(13, 63))
    lost = [batch for w in writers for batch in w.take_lost()]
    assert lost == [LostBatch("acme", 3, 12)]
    assert _ranges(stack.heads.get("acme")) == [(3, 12)]


def test_the_scheduled_checkpoint_gives_a_lost_batch_up_and_still_signs(stack: AuditStack) -> None:
    _crash_then_delete_its_index_entries(stack)
    _age_the_claim(stack)
    writer = stack.writer()
    assert writer.checkpoint_all() == [{"tenant_id": "acme", "sequence": 12}]
    assert writer.take_lost() == [LostBatch("acme", 3, 12)]
    assert stack.proofs().checkpoint("acme")["tree_size"] == 12


def test_a_batch_whose_index_is_whole_is_rebuilt_not_given_up(stack: AuditStack) -> None:
    stack.writer().append_all(activity_events("acme", range(2)))
    stack.faults["acme"] = "after_head"
    stack.writer().append_all(activity_events("acme", range(2, 12)))
    stack.faults.clear()
    _age_the_claim(stack)
    writer = stack.writer()
    writer.append_all(activity_events("acme", range(12, 13)))
    assert writer.take_lost() == []
    assert stack.heads.get("acme").lost == ()
    stack.valid("acme")


def _ranges(head: Any) -> list[tuple[int, int]]:
    """The head's lost batches, first and last record."""
    return [(r.first, r.last) for r in head.lost]


def test_a_claim_dated_in_the_future_does_not_keep_a_lost_batch_in_flight_for_good(stack: AuditStack) -> None:
    _crash_then_delete_its_index_entries(stack)
    age_the_claim(stack, "acme", -10 * IN_FLIGHT_SECONDS)  # a writer's clock far ahead, or an edited head
    writer = stack.writer()
    assert [o.sequence for o in writer.append_all(activity_events("acme", range(12, 13)))] == [13]  # type: ignore[union-attr]
    assert writer.take_lost() == [LostBatch("acme", 3, 12)]


def test_the_scheduled_checkpoints_go_on_past_a_chain_whose_last_batch_is_in_flight(
    stack: AuditStack,
) -> None:
    stack.add_tenant("beta")
    _crash_then_delete_its_index_entries(stack)  # acme's last batch: in flight for 60 s
    stack.writer().append_all([activity_event("beta", n) for n in range(3)])
    written = stack.writer().checkpoint_all()
    assert written == [{"tenant_id": "beta", "sequence": 3}]
    assert stack.heads.get("acme").pending is not None  # not given up: still in flight
