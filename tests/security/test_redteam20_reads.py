"""Red team, issue 20: the index reader and the export under odd ranges, and PII under redact.

The export's range is two 16-digit positions compared as strings (``r#<16 digits>``); the routes
take any ``from``/``to`` >= 1 with no upper bound, so a sequence of 17 digits sorts before one of
16 and DynamoDB refuses a BETWEEN whose low end is above its high end (a 500, not a 400)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tenant_security.audit.ocsf import ocsf_lines
from tenant_security.errors import ValidationFailed
from tenant_security.models.policies import parse_security_policies
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    redact = parse_security_policies({"compliance": {"pii_handling": "redact"}})
    with mocked_audit_stack(monkeypatch, 1000, "acme", policies={"quiet": redact}) as built:
        yield built


def _fill(stack: AuditStack, tenant: str, n: int) -> None:
    writer = stack.writer()
    for i in range(n):
        writer.append(
            activity_event(tenant, i, user="alice", target_user="bob", target_email="bob@example.com")
        )


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (9 * 10**15, 10**16),  # 16 digits to 17: low sorts above high
        (10**15, 10**17),
        (1, 10**30),
        (10**16, 10**16 + 5),
        (10**40, 10**41),
        (5, 5),
        (6, 10),  # beyond the head
    ],
)
def test_the_export_range_is_never_a_500_whatever_from_and_to_say(
    stack: AuditStack, first: int, last: int
) -> None:
    _fill(stack, "acme", 5)
    reader = stack.reader()
    ranges: list[tuple[str, str]] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        values = params.get("ExpressionAttributeValues") or {}
        if ":low" in values and ":high" in values:
            ranges.append((values[":low"]["S"], values[":high"]["S"]))

    stack.ddb.meta.events.register("provide-client-params.dynamodb.Query", seen)
    try:
        records, following = reader.stored_range("acme", first, last, 1000)
    except ValidationFailed:
        return  # a 400 is fine
    # DynamoDB (not moto) refuses BETWEEN :low AND :high with low > high: ValidationException, a 500
    assert all(low <= high for low, high in ranges), ranges
    expected = [s for s in range(1, 6) if first <= s <= last]
    assert [r["sequence"] for r in records] == expected
    assert following is None


def test_a_redact_tenants_reads_and_export_never_hold_a_name(stack: AuditStack) -> None:
    _fill(stack, "quiet", 4)
    reader = stack.reader()
    page = reader.query("quiet", limit=50)["items"]
    assert len(page) == 4
    exported, _ = reader.stored_range("quiet", 1, 10, 1000)
    text = json.dumps(page) + json.dumps(exported)
    text += b"".join(ocsf_lines(exported, "quiet", "test", region="us-east-1")).decode()
    for secret in ("alice", "bob@example.com", "10.1.2.3"):
        assert secret not in text
    assert reader.query("quiet", actor="alice")["items"] == []
    assert reader.query("quiet", subject="bob")["items"] == []


def test_an_erased_subjects_records_are_not_found_by_name_and_the_export_holds_no_name(
    stack: AuditStack,
) -> None:
    _fill(stack, "acme", 4)
    reader = stack.reader()
    assert len(reader.query("acme", actor="alice")["items"]) == 4
    assert stack.keys.erase("acme", "alice")
    assert reader.query("acme", actor="alice")["items"] == []
    assert reader.query("acme", subject="alice")["items"] == []
    exported, _ = reader.stored_range("acme", 1, 10, 1000)
    lines = b"".join(ocsf_lines(exported, "acme", "test", region="us-east-1")).decode()
    assert "alice" not in lines
    assert "alice" not in json.dumps(exported)
    shown: list[dict[str, Any]] = reader.query("acme", limit=50)["items"]
    assert all(r["actor"]["user"] != "alice" for r in shown)
