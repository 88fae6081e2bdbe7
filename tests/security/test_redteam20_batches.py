"""Red team, issue 20: the audit queue's batches -- exactly once per event, whatever is mixed in a
batch (tenants, the platform chain, forged and unreadable messages, an event that fails to
prepare), and a crash whose retry brings another composition to the same warm writer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tenant_security.audit.inbox import append_messages
from tenant_security.audit.pii import PiiProtector
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 7, "acme", "beta") as built:
        yield built


def _sqs(event: Any, n: int) -> dict[str, Any]:
    body = event if isinstance(event, str) else json.dumps(event)
    return {"messageId": f"m-{n}", "body": body, "attributes": {}, "messageAttributes": {}}


def _trail(stack: AuditStack, tenant: str) -> list[dict[str, Any]]:
    return stack.reader().query(tenant, limit=200)["items"]


def test_a_mixed_batch_fails_only_the_event_that_failed_and_appends_the_rest_once(
    stack: AuditStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = PiiProtector.protect

    def protect(self: PiiProtector, record: dict[str, Any], mode: str) -> dict[str, Any]:
        if (record.get("actor") or {}).get("user") == "boom":
            raise RuntimeError("KMS refused the subject key")
        return original(self, record, mode)

    monkeypatch.setattr(PiiProtector, "protect", protect)
    genuine = [activity_event("acme", n) for n in range(5)] + [activity_event("beta", n) for n in range(3)]
    same_id = {**activity_event("beta", 99), "id": genuine[0]["id"]}  # one event id, another tenant
    failing = activity_event("acme", 50, user="boom")
    forged = {**activity_event("acme", 60, action="tenants:Delete"), "source": "attacker.example"}
    messages = [
        *(_sqs(e, i) for i, e in enumerate(genuine)),
        _sqs(genuine[1], 100),  # the same event twice in one batch
        _sqs(same_id, 101),
        _sqs(failing, 102),
        _sqs(forged, 103),
        _sqs("not json at all", 104),
        _sqs({"id": "x", "detail": "not an object"}, 105),
    ]
    report = append_messages(stack.writer(), messages)
    assert report.failed == ["m-102"]
    assert report.duplicates == 1
    acme = _trail(stack, "acme")
    assert [r["event_id"] for r in acme] == [f"acme-{n}" for n in range(5)]
    assert sorted(r["event_id"] for r in _trail(stack, "beta")) == sorted(
        [f"beta-{n}" for n in range(3)] + ["beta-99"]
    )
    platform = _trail(stack, stack.settings.platform_tenant_id)
    assert len(platform) == 3  # the forged event and the two unreadable messages, each once
    assert all("forged" in r["action"] or "unreadable" in json.dumps(r).lower() for r in platform)
    for tenant in ("acme", "beta", stack.settings.platform_tenant_id):
        stack.valid(tenant)
    # the retried message alone, once the key is back
    monkeypatch.setattr(PiiProtector, "protect", original)
    again = append_messages(stack.writer(), [_sqs(failing, 102), _sqs(genuine[2], 2)])
    assert again.failed == []
    assert again.duplicates == 1
    assert [r["sequence"] for r in _trail(stack, "acme")] == list(range(1, 7))
    stack.valid("acme")


def test_a_crash_then_a_retry_of_another_composition_in_the_same_warm_writer(stack: AuditStack) -> None:
    writer = stack.writer()
    writer.append_all([activity_event("acme", n) for n in range(3)])
    stack.faults["acme"] = "after_head"
    crashed = writer.append_all([activity_event("acme", n) for n in range(3, 9)])
    assert all(isinstance(o, Exception) for o in crashed)
    stack.faults.clear()
    # the queue brings some of them back, with new ones, to the same warm writer (its cached head)
    mixed = [activity_event("acme", n) for n in (5, 9, 3, 10, 11)]
    outcomes = writer.append_all(mixed)
    assert [o.duplicate for o in outcomes] == [True, False, True, False, False]  # type: ignore[union-attr]
    assert [o.sequence for o in outcomes] == [6, 10, 4, 11, 12]  # type: ignore[union-attr]
    trail = _trail(stack, "acme")
    assert [r["sequence"] for r in trail] == list(range(1, 13))
    assert len({r["event_id"] for r in trail}) == 12
    stack.valid("acme")


def test_a_warm_writer_whose_head_another_writer_moved_after_its_crash(stack: AuditStack) -> None:
    first, second = stack.writer(), stack.writer()
    first.append_all([activity_event("acme", n) for n in range(2)])
    stack.faults["acme"] = "after_head"
    first.append_all([activity_event("acme", n) for n in range(2, 5)])  # claimed, object not written
    stack.faults.clear()
    second.append_all([activity_event("acme", n) for n in range(5, 8)])  # completes it, moves on
    outcomes = first.append_all([activity_event("acme", n) for n in (2, 8)])  # stale cached head
    assert [o.sequence for o in outcomes] == [3, 9]  # type: ignore[union-attr]
    assert [r["sequence"] for r in _trail(stack, "acme")] == list(range(1, 10))
    stack.valid("acme")
