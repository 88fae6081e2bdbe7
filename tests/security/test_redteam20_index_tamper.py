"""Red team, issue 20: tampering with the audit index's *secondary* keys and planting entries.

The verifier checks the index's Merkle nodes and each record entry's encrypted copy (``body``)
against the locked records. But GET /audit's filters and the OCSF export read what the index's
other attributes say -- ``time_key``, ``action_key``, ``actor_key``, ``target_key`` -- and the
entries beyond the head. Someone with write access to the index table (no KMS, no S3) can hide
a record from a filtered read, or serve a record twice, and the verifier should name it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tenant_security.errors import NotFound
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack

TENANT = "acme"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 1000, TENANT) as built:
        yield built


def _fill(stack: AuditStack, n: int) -> None:
    writer = stack.writer()
    for i in range(n):
        action = "users:Delete" if i == 2 else "files:Read"  # record 3 is the one to hide
        writer.append(activity_event(TENANT, i, action=action, user="alice"))


def _position(sequence: int) -> dict[str, Any]:
    return {"tenant_id": {"S": TENANT}, "position": {"S": f"r#{sequence:016d}"}}


def test_an_entry_stripped_of_its_action_key_hides_the_record_and_is_named(stack: AuditStack) -> None:
    _fill(stack, 5)
    reader = stack.reader()
    assert [r["sequence"] for r in reader.query(TENANT, action="users:Delete")["items"]] == [3]
    # an insider with dynamodb:UpdateItem on the index table hides the deletion from the filter
    stack.ddb.update_item(
        TableName=stack.settings.audit_index_table, Key=_position(3), UpdateExpression="REMOVE action_key"
    )
    hidden = reader.query(TENANT, action="users:Delete")["items"]
    kinds = stack.problems(TENANT)
    # the filtered read now misses record 3: the verifier must say the index lies
    assert hidden == [], (hidden, kinds)
    assert (3, "index_mismatch") in kinds, (hidden, kinds)


def test_an_entry_whose_time_key_moved_hides_the_record_from_a_time_range_and_is_named(
    stack: AuditStack,
) -> None:
    _fill(stack, 5)
    reader = stack.reader()
    everything = reader.query(TENANT, limit=50)["items"]
    from datetime import datetime

    start = datetime.fromisoformat(everything[0]["recorded_at"])
    assert 3 in [r["sequence"] for r in reader.query(TENANT, start=start)["items"]]
    stack.ddb.update_item(
        TableName=stack.settings.audit_index_table,
        Key=_position(3),
        UpdateExpression="SET time_key = :t",
        ExpressionAttributeValues={":t": {"S": "0001-01-01T00:00:00+00:00#0000000000000003"}},
    )
    seen = [r["sequence"] for r in reader.query(TENANT, start=start)["items"]]
    kinds = stack.problems(TENANT)
    assert 3 in seen or (3, "index_mismatch") in kinds, (seen, kinds)


def test_an_entry_stripped_of_its_actor_key_hides_the_record_from_the_actor_filter_and_is_named(
    stack: AuditStack,
) -> None:
    _fill(stack, 5)
    reader = stack.reader()
    assert 3 in [r["sequence"] for r in reader.query(TENANT, actor="alice")["items"]]
    stack.ddb.update_item(
        TableName=stack.settings.audit_index_table, Key=_position(3), UpdateExpression="REMOVE actor_key"
    )
    seen = [r["sequence"] for r in reader.query(TENANT, actor="alice")["items"]]
    kinds = stack.problems(TENANT)
    assert 3 in seen or (3, "index_mismatch") in kinds, (seen, kinds)


def _plant_copy_of(stack: AuditStack, sequence: int, at: int) -> None:
    """A new index entry at ``at`` (beyond the head) holding record ``sequence``'s genuine
    encrypted copy: no key needed, only dynamodb:PutItem on the index table."""
    item = stack.ddb.get_item(TableName=stack.settings.audit_index_table, Key=_position(sequence))["Item"]
    item = {**item, "position": {"S": f"r#{at:016d}"}}
    item["time_key"] = {"S": f"9999-01-01T00:00:00+00:00#{at:016d}"}
    stack.ddb.put_item(TableName=stack.settings.audit_index_table, Item=item)


def test_an_entry_planted_beyond_the_head_is_named_by_the_verifier(stack: AuditStack) -> None:
    _fill(stack, 4)
    assert stack.problems(TENANT) == []
    _plant_copy_of(stack, 2, at=50)
    kinds = stack.problems(TENANT)
    assert any(kind == "index_mismatch" for _, kind in kinds), kinds


def test_an_entry_planted_beyond_the_head_is_not_served_by_get_audit_or_the_export(
    stack: AuditStack,
) -> None:
    _fill(stack, 4)
    _plant_copy_of(stack, 2, at=50)
    reader = stack.reader()
    listed = [r["sequence"] for r in reader.query(TENANT, limit=50)["items"]]
    exported, _ = reader.stored_range(TENANT, 1, 10**16 - 1, 1000)
    # record 2 shown twice: the second copy at a position the trail never had
    assert listed == [1, 2, 3, 4], listed
    assert [r["sequence"] for r in exported] == [1, 2, 3, 4]


def test_records_of_a_planted_position_beyond_the_head_are_a_404(stack: AuditStack) -> None:
    _fill(stack, 4)
    _plant_copy_of(stack, 2, at=50)
    with pytest.raises(NotFound):
        stack.proofs().stored_bytes(TENANT, 50)


def test_a_copy_moved_to_another_position_inside_the_head_is_not_served_as_that_position(
    stack: AuditStack,
) -> None:
    """A body swap inside the head is named (test_audit_proofs); the reader should not serve
    record 2's content as position 3 either (it decodes the body without checking its sequence)."""
    _fill(stack, 4)
    other = stack.ddb.get_item(TableName=stack.settings.audit_index_table, Key=_position(2))["Item"]
    stack.ddb.update_item(
        TableName=stack.settings.audit_index_table,
        Key=_position(3),
        UpdateExpression="SET body = :b",
        ExpressionAttributeValues={":b": other["body"]},
    )
    listed = [r["sequence"] for r in stack.reader().query(TENANT, limit=50)["items"]]
    assert listed.count(2) == 1, listed
