"""Personal data in platform events travels sealed, and only the audit writer opens it (moto).

Nothing on the bus, in the dead-letter queue or the outbox names a user, an e-mail address or a
source address in clear; the trail still gets them (under the tenant's pii_handling)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tenant_security.activity import Activity, EventPublisher
from tenant_security.event_pii import SEALED, PiiSealer
from tests.support.audit import AuditStack, audit_stack
from tests.support.moto import mocked_aws

pytestmark = pytest.mark.integration


class Bus:
    """Records what would be put on EventBridge."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AuditStack, PiiSealer]]:
    with mocked_aws(monkeypatch):
        stack = audit_stack()
        stack.add_tenant("acme")
        settings = stack.settings
        yield stack, PiiSealer(settings.audit_key_arn, settings.account_id, settings.partition, "platform")


def _event(entry: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "id": f"eb-{n}",
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "time": "2026-12-01T10:00:00Z",
        "detail": json.loads(entry["Detail"]),
    }


def test_activity_and_alerts_travel_without_personal_data_in_clear(
    world: tuple[AuditStack, PiiSealer],
) -> None:
    stack, sealer = world
    bus = Bus()
    publisher = EventPublisher(bus, "bus", "dcisionai.tenant-security", sealer=sealer)
    publisher.activity(
        Activity(
            tenant_id="acme",
            action="users:Create",
            outcome="success",
            category="admin",
            user="alice",
            source_ip="203.0.113.5",
            target_user="bob",
            target_email="bob@acme.example",
        )
    )
    publisher.security_alert("acme", "user_locked_out", user="carol", source_ip="198.51.100.7", failures=5)
    wire = json.dumps(bus.entries)
    for personal in ("alice", "203.0.113.5", "bob", "bob@acme.example", "carol", "198.51.100.7"):
        assert personal not in wire
    assert all(SEALED in json.loads(e["Detail"]) for e in bus.entries)
    assert json.loads(bus.entries[1]["Detail"])["alert"] == "user_locked_out"  # the rest stays readable
    writer = stack.writer()
    writer.sealer = sealer
    for n, entry in enumerate(bus.entries):
        writer.append(_event(entry, n))
    items = stack.reader().query("acme")["items"]
    assert (items[0]["actor"]["user"], items[0]["source_ip"], items[0]["target"]["email"]) == (
        "alice",
        "203.0.113.5",
        "bob@acme.example",
    )
    assert (items[1]["actor"]["user"], items[1]["source_ip"]) == ("carol", "198.51.100.7")


def test_a_seal_moved_to_another_tenants_event_does_not_open(world: tuple[AuditStack, PiiSealer]) -> None:
    stack, sealer = world
    stack.add_tenant("globex")
    sealed = sealer.seal({"tenant_id": "acme", "event_id": "e1", "action": "files:Read", "user": "alice"})
    moved = {**sealed, "tenant_id": "globex"}
    assert sealer.open(moved).get("user") is None  # not alice: the seal is acme's
    assert sealer.open(sealed)["user"] == "alice"
    assert sealer.open({**sealed, SEALED: "not base64!"}).get("user") is None
