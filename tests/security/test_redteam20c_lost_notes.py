"""Red team (issue 20, round 3): the verifier's checks beyond a lost batch rest on the head's note.

``_check_tree`` goes on past missing records only from a ``lost`` entry's frontier, and
``_check_index`` excuses every record copy after any problem not behind a noted loss. The note
and its frontier come from the heads table and are never tied to the records before the loss.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tenant_security.audit.tree import record_position
from tests.support.audit import AuditStack, activity_events, lose_a_batch, mocked_audit_stack
from tests.support.rfc9162 import decoded, verify_consistency


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 1000, "acme") as built:
        yield built


def _heads_update(stack: AuditStack, expression: str, values: dict[str, Any] | None = None) -> None:
    stack.ddb.update_item(
        TableName=stack.settings.audit_heads_table,
        Key={"tenant_id": {"S": "acme"}},
        UpdateExpression=expression,
        **({"ExpressionAttributeValues": values} if values else {}),
    )


def _tamper_action_key(stack: AuditStack, sequence: int) -> None:
    table = stack.settings.audit_index_table
    item = stack.ddb.get_item(
        TableName=table, Key={"tenant_id": {"S": "acme"}, "position": {"S": record_position(sequence)}}
    )["Item"]
    item["action_key"] = {"S": "acme#auth:Login"}  # GET /audit?action=... now finds it as a sign-in
    stack.ddb.put_item(TableName=table, Item=item)


def _lose_records_3_to_12(stack: AuditStack) -> None:
    lose_a_batch(stack, "acme")


def test_without_the_head_s_lost_note_index_tampering_after_a_loss_is_not_named(stack: AuditStack) -> None:
    """ATTACK (heads + index write): the loss is real and alarmed; then `lost` is REMOVEd from
    the head. The verifier is back to round 2: the tree stops at 3, every record copy after it
    is excused -- record 20's edited action_key (what the reader's filters find) goes unnamed."""
    _lose_records_3_to_12(stack)
    stack.writer().append_all(activity_events("acme", range(12, 40)))  # gives 3..12 up; records 13..40
    assert [(r.first, r.last) for r in stack.heads.get("acme").lost] == [(3, 12)]
    _heads_update(stack, "REMOVE lost")
    _tamper_action_key(stack, 20)
    problems = stack.problems("acme")
    assert (20, "index_mismatch") in problems, problems


def test_a_delete_marker_gap_excuses_every_later_record_copy(stack: AuditStack) -> None:
    """ATTACK (s3:DeleteObject, which Object Lock allows as a marker, + index write): a record
    copy's check needs only that record, yet any problem before it excuses it."""
    stack.writer().append_all(activity_events("acme", range(4)))
    stack.writer().append_all(activity_events("acme", range(4, 5)))  # record 5 alone in its object
    stack.writer().append_all(activity_events("acme", range(5, 40)))
    bucket = stack.settings.audit_bucket("acme")
    key = next(k for k in stack.object_keys("acme") if k.endswith("/0000000000000005.json"))
    stack.s3.delete_object(Bucket=bucket, Key=key)  # a delete marker: named missing_record 5
    _tamper_action_key(stack, 20)
    problems = stack.problems("acme")
    assert (5, "missing_record") in problems, problems
    assert (20, "index_mismatch") in problems, problems


def test_a_forged_frontier_noted_with_a_fabricated_loss_forks_the_signed_tree_unseen(
    stack: AuditStack,
) -> None:
    """ATTACK (heads write only): records 1..4 and a checkpoint of them. The head is moved to a
    record 5 that never existed, its `pending` claimed long ago and its frontier replaced (the
    subtree of 1..4 is no longer theirs). The next writer gives 5 up noting that frontier, goes
    on from it, and the hourly run signs a tree of 10 that does not contain records 1..4: no
    consistency proof from the checkpoint of 4 can exist. The verifier names only record 5."""
    writer = stack.writer()
    writer.append_all(activity_events("acme", range(4)))
    assert writer.checkpoint_all() == [{"tenant_id": "acme", "sequence": 4}]
    head = stack.heads.get("acme")
    forged_frontier = b"\x11" * 32 + b"\x22" * 32  # frontier_ids(5): n#02#0 (1..4), leaf 5
    now = time.time() - 3600
    stack.ddb.update_item(
        TableName=stack.settings.audit_heads_table,
        Key={"tenant_id": {"S": "acme"}},
        UpdateExpression="SET #s = :s, #h = :h, frontier = :f, pending = :p",
        ExpressionAttributeNames={"#s": "sequence", "#h": "hash"},
        ExpressionAttributeValues={
            ":s": {"N": "5"},
            ":h": {"S": "ab" * 32},
            ":f": {"B": forged_frontier},
            ":p": {
                "M": {
                    "sequence": {"N": "5"},
                    "first": {"N": "5"},
                    "event_id": {"S": "ghost"},
                    "key": {"S": "audit/2026/01/01/0000000000000005.json"},
                    "body": {"B": b""},
                    "retain_until": {"S": "2030-01-01T00:00:00+00:00"},
                    "claimed_at": {"N": repr(now)},
                    "recorded_at": {"S": head.pending.recorded_at if head.pending else ""},
                }
            },
        },
    )
    later = stack.writer()
    later.append_all(activity_events("acme", range(10, 15)))  # gives 5 up (noting the forged frontier), 6..10
    assert [(r.first, r.last) for r in stack.heads.get("acme").lost] == [(5, 5)]
    assert later.checkpoint_all() == [{"tenant_id": "acme", "sequence": 10}]
    # The fork is real: the checkpoints of 4 and 10 admit no consistency proof.
    proofs = stack.proofs()
    first = _signed_root(stack, 4)
    second = _signed_root(stack, 10)
    path = decoded(proofs.consistency("acme", 4, 10)["proof"])
    assert not verify_consistency(4, 10, path, first, second)
    problems = stack.problems("acme")
    assert problems != [(5, "missing_record")], (
        "the verifier names only the fabricated loss; the signed tree after it no longer "
        "contains records 1..4"
    )


def _signed_root(stack: AuditStack, size: int) -> bytes:
    import base64
    import json

    from tenant_security.audit.chain import checkpoint_key

    bucket = stack.settings.audit_bucket("acme")
    body = stack.s3.get_object(Bucket=bucket, Key=checkpoint_key(size))["Body"].read()
    return base64.b64decode(json.loads(body)["root_hash"])


def test_an_index_entry_planted_at_a_lost_sequence_is_not_named(stack: AuditStack) -> None:
    """ATTACK (index write + kms:GenerateDataKey on the audit key, which every producer holds
    with no purpose condition, `SealEventPii`): records 3..12 are lost; an entry for 7 is put
    back with a made-up record. The records API serves it as record 7, and the verifier -- which
    says 7's "index entries were deleted" -- never looks at r#7: the final loop skips every
    position at or below the head that the tree walk did not compute."""
    import json

    from tenant_security.audit.chain import canonical, seal
    from tenant_security.audit.index_entries import entry_attributes

    _lose_records_3_to_12(stack)
    stack.writer().append_all(activity_events("acme", range(12, 40)))
    fake = seal(
        {
            "tenant_id": "acme",
            "sequence": 7,
            "prev_hash": "00" * 32,
            "action": "made-up",
            "recorded_at": "2026-01-01T00:00:00+00:00",
        }
    )
    stored = canonical(fake)
    stack.ddb.put_item(
        TableName=stack.settings.audit_index_table,
        Item={
            **entry_attributes("acme", fake),
            "tenant_id": {"S": "acme"},
            "position": {"S": record_position(7)},
            "hash": {"B": b"\x00" * 32},
            "object_key": {"S": "audit/2026/01/01/0000000000000007.json"},
            "line": {"N": "0"},
            "body": {"B": stack.cipher.encrypt_bytes("acme", stored)},
            "recorded_at": {"S": fake["recorded_at"]},
        },
    )
    assert json.loads(stack.proofs().stored_bytes("acme", 7))["action"] == "made-up"
    problems = stack.problems("acme")
    assert (7, "index_mismatch") in problems, problems
