"""The verifier against a trail that grows while it reads: records appended between its read of
the head and its read of the audit index are the next verification's, not planted items (the
GET /audit/verify request's own record is one of them); an item beyond the head read after the
index still is one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tenant_security.audit.tree import AuditIndex, record_position
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 5, "acme") as built:
        yield built


class _GrowingIndex(AuditIndex):
    """The audit index, with ``grow()`` run just before the verifier reads the partition."""

    def __init__(self, index: AuditIndex, grow: Any) -> None:
        super().__init__(index.client, index.table, entry_attributes=index.entry_attributes)
        self.grow = grow

    def partition(self, tenant_id: str) -> dict[str, dict[str, Any]]:
        self.grow()
        return super().partition(tenant_id)


def _verifier(stack: AuditStack, grow: Any) -> Any:
    verifier = stack.verifier()
    verifier.index = _GrowingIndex(stack.index, grow)
    return verifier


def test_records_appended_while_the_verifier_reads_are_not_planted_items(stack: AuditStack) -> None:
    writer = stack.writer()
    writer.append_all([activity_event("acme", n) for n in range(7)])
    numbers = iter(range(100, 200))
    grow = lambda: writer.append_all([activity_event("acme", next(numbers)) for _ in range(6)])  # noqa: E731
    report = _verifier(stack, grow).verify("acme")
    assert report["status"] == "VALID", report["problems"]
    assert report["head_sequence"] == 7
    assert stack.heads.get("acme").sequence == 13
    stack.valid("acme")  # and the next verification checks them


def test_an_item_beyond_the_head_read_after_the_index_is_still_planted(stack: AuditStack) -> None:
    writer = stack.writer()
    writer.append_all([activity_event("acme", n) for n in range(7)])
    planted = {"tenant_id": {"S": "acme"}, "position": {"S": record_position(40)}, "hash": {"B": b"x" * 32}}

    def grow_and_plant() -> None:
        writer.append_all([activity_event("acme", 100)])
        stack.ddb.put_item(TableName=stack.settings.audit_index_table, Item=planted)

    problems = _verifier(stack, grow_and_plant).verify("acme")["problems"]
    assert [(p["sequence"], p["kind"]) for p in problems] == [(40, "index_mismatch")], problems
