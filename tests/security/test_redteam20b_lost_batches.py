"""Red team (issue 20, round 2): giving a batch up as lost.

A batch whose object was never written and whose index entries are gone is given up after
IN_FLIGHT_SECONDS (``ChainHeads.give_up``). These tests attack that: a batch given up that was
not lost, what the verifier still checks once a batch is lost, the time order after a give-up,
and a give-up racing the late writer's own put.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from moto.kms import models as kms_models
from moto.kms.exceptions import AccessDeniedException

from tenant_security.audit.merkle import NodeId
from tenant_security.audit.tree import node_position, record_position
from tenant_security.audit.writer import Appended
from tests.support.audit import (
    AuditStack,
    activity_events,
    age_the_claim,
    delete_index_records,
    lose_a_batch,
    mocked_audit_stack,
)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 1000, "acme") as built:
        yield built


def _age_the_claim(stack: AuditStack) -> None:
    age_the_claim(stack, "acme")


def _delete_entries(stack: AuditStack, sequences: range) -> None:
    delete_index_records(stack, "acme", sequences)


def _lose_records_3_to_12(stack: AuditStack) -> None:
    lose_a_batch(stack, "acme")


def _index_item(stack: AuditStack, position: str) -> dict[str, Any]:
    return stack.ddb.get_item(
        TableName=stack.settings.audit_index_table,
        Key={"tenant_id": {"S": "acme"}, "position": {"S": position}},
    )["Item"]


def _put_index_item(stack: AuditStack, item: dict[str, Any]) -> None:
    stack.ddb.put_item(TableName=stack.settings.audit_index_table, Item=item)


# --------------------------------------------------------------------------- a batch not lost


def test_a_batch_is_not_given_up_while_kms_refuses_to_decrypt_its_intact_index_entries(
    stack: AuditStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ATTACK: the writer's kms:Decrypt refused for a while (the audit key disabled, a key
    policy or IAM change) while a dead writer's batch waits for its object. Its index entries
    are all there, but ``_rebuilt`` reads a body that does not decrypt as "incomplete", so after
    60 s the batch is given up: the object can never be written, though the records were
    whole in the index, and the verifier says their entries were deleted."""
    stack.writer().append_all(activity_events("acme", range(2)))
    stack.faults["acme"] = "after_head"
    stack.writer().append_all(activity_events("acme", range(2, 12)))  # died before the object of 3..12
    stack.faults.clear()
    _age_the_claim(stack)

    audit_key = stack.settings.audit_log_key_id
    original = kms_models.KmsBackend.decrypt
    refusing = {"on": True}

    def decrypt(self: Any, ciphertext_blob: bytes, encryption_context: Any, key_id: Any = None) -> Any:
        plaintext, arn = original(self, ciphertext_blob, encryption_context, key_id)
        if refusing["on"] and arn.endswith(audit_key):
            raise AccessDeniedException("kms:Decrypt is not allowed (a passing misconfiguration)")
        return plaintext, arn

    monkeypatch.setattr(kms_models.KmsBackend, "decrypt", decrypt)
    writer = stack.writer()
    writer.append_all(activity_events("acme", range(12, 13)))  # fails or waits: either way, not a loss
    refusing["on"] = False
    assert writer.take_lost() == [], "an intact batch was given up as lost"
    assert stack.heads.get("acme").lost == ()
    later = stack.writer()
    outcomes = later.append_all(activity_events("acme", range(12, 14)))
    assert all(isinstance(o, Appended) for o in outcomes), outcomes
    stack.valid("acme")  # 3..12 are in their object, rebuilt from the index once KMS answered


# --------------------------------------------------------------------------- after a loss


def test_after_a_lost_batch_a_tampered_index_record_beyond_it_is_still_named(stack: AuditStack) -> None:
    """ATTACK: once a batch is lost (for good: the head notes it), the verifier skips every
    index check at or after a sequence with a problem -- so every record entry after the loss
    may be edited (what GET /audit and its filters serve) and is never named again."""
    _lose_records_3_to_12(stack)
    stack.writer().append_all(activity_events("acme", range(12, 40)))  # records 13..40
    item = _index_item(stack, record_position(20))
    item["action_key"] = {"S": "acme#auth:Login"}  # the reader now finds record 20 as a sign-in
    _put_index_item(stack, item)
    problems = stack.problems("acme")
    assert (20, "index_mismatch") in problems, problems


def test_after_a_lost_batch_a_tampered_tree_node_beyond_it_is_still_named(stack: AuditStack) -> None:
    """ATTACK: the same for the Merkle nodes proofs are served from: the verifier recomputes
    the tree only up to the first missing record, so a node completed after a lost batch (here
    the subtree of leaves 17..32) may be replaced and inclusion proofs of records 17..32 no
    longer verify against any checkpoint -- with no index_mismatch."""
    _lose_records_3_to_12(stack)
    stack.writer().append_all(activity_events("acme", range(12, 40)))  # records 13..40
    position = node_position(NodeId(4, 1))  # leaves 16..31: records 17..32
    item = _index_item(stack, position)
    item["hash"] = {"B": b"\x00" * 32}
    _put_index_item(stack, item)
    problems = stack.problems("acme")
    assert any(kind == "index_mismatch" and s is not None and s > 12 for s, kind in problems), problems


# --------------------------------------------------------------------------- time order


def test_a_give_up_keeps_the_trail_s_time_order_against_a_slow_clock(stack: AuditStack) -> None:
    """ATTACK: ``stage`` keeps a batch's time at or after the head's last records only through
    ``head.pending.recorded_at``; ``give_up`` REMOVEs ``pending``, so the next writer whose clock
    is behind records times before records 1..2 (and the lost ones) -- breaking the README's
    "times follow its sequence whatever the writers' clocks say" the by-time index relies on."""
    _lose_records_3_to_12(stack)
    assert stack.writer().checkpoint_all()  # the scheduled run gives the batch up
    assert _ranges(stack.heads.get("acme")) == [(3, 12)]
    slow = stack.writer()
    fast_now = slow.clock()
    slow.clock = lambda: fast_now - timedelta(hours=1)  # a writer an hour behind
    slow.append_all(activity_events("acme", range(12, 13)))  # record 13
    times = [stack.index.record("acme", s) for s in (1, 2, 13)]
    recorded = [stack.cipher.decode("acme", t.body)["recorded_at"] for t in times if t is not None]  # type: ignore[index]
    assert recorded == sorted(recorded), recorded


# --------------------------------------------------------------------------- give-up racing the put


def test_a_give_up_racing_the_late_writer_s_put_leaves_a_trail_with_no_false_loss(stack: AuditStack) -> None:
    """HELD: the batch's own writer is still at work after 60 s (slow) when its index entries are
    deleted and another writer gives the batch up and appends after it; then the late writer
    puts its object. The records exist and chain on; the verifier names no missing or modified
    record, only the index entries that really were deleted (index_mismatch within 3..12; the
    verifier names the first of a run). (The writer that gave it up still counts AuditRecordsLost
    for records that are there: a false alarm, noted in the report.)"""
    stack.writer().append_all(activity_events("acme", range(2)))
    late = stack.writer()
    raced: list[Any] = []

    def slow_then_raced(tenant_id: str, step: str) -> None:
        if step != "after_head" or raced:
            return
        _delete_entries(stack, range(3, 13))
        _age_the_claim(stack)
        other = stack.writer()
        raced.extend(
            other.append_all(activity_events("acme", range(50, 52)))
        )  # gives 3..12 up, appends 13, 14
        raced.append(other.take_lost())

    late.fault = slow_then_raced
    outcomes = late.append_all(activity_events("acme", range(2, 12)))
    assert [o.sequence for o in outcomes] == list(range(3, 13))  # type: ignore[union-attr]
    assert [o.sequence for o in raced[:2]] == [13, 14]
    head = stack.heads.get("acme")
    assert (head.sequence, _ranges(head)) == (14, [(3, 12)])
    report = stack.verifier().verify("acme")
    kinds = {(p["sequence"], p["kind"]) for p in report["problems"]}
    assert kinds, report  # the deleted entries are named ...
    assert all(kind == "index_mismatch" and 3 <= s <= 12 for s, kind in kinds), report["problems"]
    # ... and nothing is falsely missing or modified: every record is in its object, chained
    assert [o.sequence for o in stack.writer().append_all(activity_events("acme", range(60, 61)))] == [15]  # type: ignore[union-attr]


def _ranges(head: Any) -> list[tuple[int, int]]:
    """The head's lost batches, first and last record."""
    return [(r.first, r.last) for r in head.lost]
