"""Batched appends on moto: many events per call, one transaction and one object per batch, each
event exactly once under duplicates, concurrent writers and crashes between the writes; every
batch keeps the chain, the Merkle tree (checked with tests/support/rfc9162.py) and the verifier."""

from __future__ import annotations

import base64
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tenant_security import crypto
from tenant_security.audit.batches import MAX_BATCH_EVENTS
from tenant_security.audit.chain import json_object
from tenant_security.audit.cipher import record_context
from tenant_security.audit.writer import Appended
from tests.support import rfc9162
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack

EVERY = 10


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, EVERY, "acme", "beta") as built:
        yield built


def _events(tenant: str, numbers: range) -> list[dict[str, Any]]:
    return [activity_event(tenant, n, user=f"user{n % 4}") for n in numbers]


def test_a_batch_is_one_object_per_chain_and_batch_and_every_event_once(stack: AuditStack) -> None:
    events = _events("acme", range(40)) + _events("beta", range(5))
    outcomes = stack.writer().append_all(events)
    assert all(isinstance(o, Appended) and not o.duplicate for o in outcomes), outcomes
    assert [o.sequence for o in outcomes[:40]] == list(range(1, 41))  # type: ignore[union-attr]
    keys = stack.object_keys("acme")
    sizes = [int(k[-21:-5]) - int(k[-38:-22]) + 1 if "-" in k.rsplit("/", 1)[1] else 1 for k in keys]
    assert sizes == [MAX_BATCH_EVENTS, 40 - MAX_BATCH_EVENTS]
    assert len(stack.object_keys("beta")) == 1
    stored = stack.stored("acme", 40)
    assert [json_object(b)["sequence"] for b in stored] == list(range(1, 41))  # type: ignore[index]
    assert stack.valid("acme")["checked"] == 40
    # checkpoints: at the end of each batch that passed a multiple of EVERY
    checkpoint = stack.proofs().checkpoint("acme")
    assert checkpoint["tree_size"] == 40
    assert base64.b64decode(checkpoint["root_hash"]) == rfc9162.mth(stored)


def test_a_full_batch_costs_at_most_half_a_call_per_event(stack: AuditStack) -> None:
    """The chain's own calls (head, transaction, object); subject keys and tenant records are
    cached by a warm writer (benchmarks/test_audit_writer.py measures the function whole)."""
    calls: Counter[str] = Counter()
    chain_tables = {stack.settings.audit_heads_table, stack.settings.audit_index_table}

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        tables = {params.get("TableName")} | {
            item[kind]["TableName"] for item in params.get("TransactItems", []) for kind in item
        }
        if model.name in ("PutObject", "HeadObject") or tables & chain_tables:
            calls.update([model.name])

    writer = stack.writer()
    writer.append_all(_events("acme", range(4)))  # warm: the subjects' keys exist
    stack.ddb.meta.events.register("before-parameter-build.dynamodb.*", count)
    stack.s3.meta.events.register("before-parameter-build.s3.*", count)
    writer.append_all(_events("acme", range(100, 100 + MAX_BATCH_EVENTS)))
    # no read of the head (a warm writer knows the head it left), the transaction, the batch's
    # object -- and the checkpoint the batch passed (its object and the head's mark)
    assert (calls["GetItem"], calls["TransactWriteItems"], calls["PutObject"], calls["UpdateItem"]) == (
        0,
        1,
        2,
        1,
    ), calls
    assert sum(calls.values()) / MAX_BATCH_EVENTS <= 0.5, calls


def test_a_writer_whose_known_head_another_writer_moved_reads_it_again(stack: AuditStack) -> None:
    first, second = stack.writer(), stack.writer()
    first.append_all(_events("acme", range(3)))
    second.append_all(_events("acme", range(3, 5)))  # first's known head is now stale
    outcomes = first.append_all(_events("acme", range(5, 7)))
    assert [o.sequence for o in outcomes] == [6, 7]  # type: ignore[union-attr]
    assert stack.heads.get("acme").sequence == 7
    stack.valid("acme")


def test_duplicates_inside_and_across_batches_append_nothing(stack: AuditStack) -> None:
    writer = stack.writer()
    first, second, third = _events("acme", range(3))
    outcomes = writer.append_all([first, second, first])
    assert [(o.sequence, o.duplicate) for o in outcomes] == [(1, False), (2, False), (1, True)]  # type: ignore[union-attr]
    outcomes = writer.append_all([second, third, first])
    assert [(o.sequence, o.duplicate) for o in outcomes] == [(2, True), (3, False), (1, True)]  # type: ignore[union-attr]
    assert stack.heads.get("acme").sequence == 3
    stack.valid("acme")


@pytest.mark.parametrize("duplicates_first", [True, False], ids=["retried", "fresh"])
def test_a_crash_after_the_head_is_completed_by_the_retry_with_no_gap(
    stack: AuditStack, duplicates_first: bool
) -> None:
    writer = stack.writer()
    writer.append_all(_events("acme", range(2)))
    stack.faults["acme"] = "after_head"
    crashed = writer.append_all(_events("acme", range(2, 12)))
    assert all(isinstance(o, RuntimeError) for o in crashed)
    assert stack.heads.get("acme").sequence == 12  # claimed ...
    assert len(stack.object_keys("acme")) == 1  # ... its object not written: the writer "died"
    stack.faults.clear()
    again = stack.writer()  # a new execution environment
    if duplicates_first:  # the delivery retried: every event is a duplicate, the object completed
        outcomes = again.append_all(_events("acme", range(2, 12)))
        assert all(o.duplicate for o in outcomes)  # type: ignore[union-attr]
    again.append_all(_events("acme", range(12, 15)))  # the tenant's next batch completes it too
    assert len(stack.object_keys("acme")) == 3
    assert stack.heads.get("acme").sequence == 15
    stack.valid("acme")


def test_parallel_batches_of_one_chain_never_fork_skip_or_repeat(stack: AuditStack) -> None:
    errors: list[BaseException] = []

    def put(start: int) -> None:
        try:
            outcomes = stack.writer().append_all(_events("acme", range(start, start + 30)))
            errors.extend(o for o in outcomes if isinstance(o, Exception))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(1000 * t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stored = stack.stored("acme", 180)
    records = [json_object(b) for b in stored]
    assert sorted(r["event_id"] for r in records) == sorted(  # type: ignore[index]
        f"acme-{1000 * t + n}" for t in range(6) for n in range(30)
    )
    stack.valid("acme")
    assert base64.b64decode(stack.proofs().checkpoint("acme")["root_hash"]) == rfc9162.mth(
        stored[: stack.proofs().checkpoint("acme")["tree_size"]]
    )


def test_times_follow_the_sequence_whatever_the_writers_clock_says(stack: AuditStack) -> None:
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    moments = iter([noon, noon - timedelta(hours=1), noon + timedelta(hours=1)])
    writer = stack.writer()
    writer.clock = lambda: next(moments)
    for start in (0, 2, 4):  # the second batch's writer clock is an hour behind the first's
        writer.append_all(_events("acme", range(start, start + 2)))
    times = [json_object(b)["recorded_at"] for b in stack.stored("acme", 6)]  # type: ignore[index]
    assert times == [noon.isoformat()] * 4 + [(noon + timedelta(hours=1)).isoformat()] * 2
    stack.valid("acme")


def test_a_batch_object_edited_or_hidden_is_named_for_each_of_its_records(stack: AuditStack) -> None:
    stack.writer().append_all(_events("acme", range(6)))
    stack.writer().append_all(_events("acme", range(6, 9)))
    first, second = stack.object_keys("acme")
    bucket = stack.settings.audit_bucket("acme")
    # a new version of the second object, one record changed, validly encrypted
    records = [json_object(stack.proofs().stored_bytes("acme", s)) for s in (7, 8, 9)]
    records[1]["action"] = "files:Delete"  # type: ignore[index]
    from tenant_security.audit.chain import canonical

    body = b"\n".join(canonical(r) for r in records)
    stack.s3.put_object(
        Bucket=bucket,
        Key=second,
        Body=crypto.encrypt(body, stack.settings.audit_key_arn, record_context("acme")),
    )
    kinds = {(p["sequence"], p["kind"]) for p in stack.verifier().verify("acme")["problems"]}
    assert (8, "modified_record") in kinds
    assert {s for s, k in kinds if k == "modified_record"} <= {7, 8, 9}
    stack.s3.delete_object(Bucket=bucket, Key=first)  # a delete marker over the first batch
    kinds = {(p["sequence"], p["kind"]) for p in stack.verifier().verify("acme")["problems"]}
    assert {(s, "missing_record") for s in range(1, 7)} <= kinds


def test_an_object_with_more_records_than_its_key_names_is_named(stack: AuditStack) -> None:
    stack.writer().append_all(_events("acme", range(3)))
    bucket = stack.settings.audit_bucket("acme")
    (key,) = stack.object_keys("acme")
    stored = stack.stored("acme", 3)
    extra = key.replace("-0000000000000003.json", "-0000000000000004.json")
    body = b"\n".join([*stored, stored[0]])
    stack.s3.put_object(
        Bucket=bucket,
        Key=extra,
        Body=crypto.encrypt(body, stack.settings.audit_key_arn, record_context("acme")),
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1),
    )
    kinds = {(p["sequence"], p["kind"]) for p in stack.verifier().verify("acme")["problems"]}
    assert (4, "inserted_record") in kinds  # beyond the head
    assert any(k == "inserted_record" and s in (1, 2, 3) for s, k in kinds)  # a second copy


def test_an_erasure_changes_no_leaf_of_a_batch(stack: AuditStack) -> None:
    stack.writer().append_all(_events("acme", range(EVERY)))
    before = stack.stored("acme", EVERY)
    assert stack.keys.erase("acme", "user2")
    assert stack.stored("acme", EVERY) == before
    root = base64.b64decode(stack.proofs().checkpoint("acme")["root_hash"])
    assert rfc9162.mth(before) == root
    stack.valid("acme")


def test_a_batch_the_tree_leaves_too_little_room_for_goes_in_two_transactions(
    stack: AuditStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction of 50 items: 32 records need 97, so the batch goes as 16 and 16, each
    event once, two objects, the tree and the chain whole."""
    from tenant_security.audit import batches

    monkeypatch.setattr(batches, "MAX_TRANSACTION_ITEMS", 50)
    outcomes = stack.writer().append_all(_events("acme", range(MAX_BATCH_EVENTS)))
    assert [o.sequence for o in outcomes] == list(range(1, MAX_BATCH_EVENTS + 1))  # type: ignore[union-attr]
    assert len(stack.object_keys("acme")) == 2
    stored = stack.stored("acme", MAX_BATCH_EVENTS)
    assert base64.b64decode(stack.proofs().checkpoint("acme")["root_hash"]) == rfc9162.mth(stored)
    stack.valid("acme")
