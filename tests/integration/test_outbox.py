"""No write without its record (moto): the request middleware holds a write's `User Activity` in
the outbox before the handler runs; what never reached the bus is drained into the trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenant_security.activity import EventPublisher
from tenant_security.context import protected_middleware
from tenant_security.http import make_resolver
from tenant_security.outbox import OUTCOME_UNKNOWN, Outbox
from tenant_security.tenants import TenantProfile
from tests.support.audit import AuditStack, audit_stack
from tests.support.clock import ManualClock
from tests.support.identity_fakes import live_session
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration


class Bus:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        if not self.up:
            raise ConnectionError("EventBridge is unreachable")
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mocked_aws(monkeypatch):
        stack = audit_stack()
        stack.add_tenant("acme")
        create_table(stack.ddb, stack.settings.counters_table, "pk", "sk")
        clock = ManualClock()
        yield {
            "stack": stack,
            "outbox": Outbox(stack.ddb, stack.settings.counters_table, clock),
            "clock": clock,
        }


def _app(stack: AuditStack, bus: Bus, outbox: Outbox, writes: list[str], sealer: Any = None) -> Any:
    publisher = EventPublisher(bus, "bus", "dcisionai.tenant-security", sealer=sealer)
    app = make_resolver()
    app.use(
        [
            protected_middleware(
                lambda tenant, _max_age: stack.get(tenant),
                live_session,
                "platform",
                activity=lambda: publisher,
                outbox=lambda: outbox,
            )
        ]
    )

    @app.post("/tenants/<tenant_id>/users")
    def write(tenant_id: str) -> dict[str, Any]:
        writes.append(tenant_id)
        return {"written": True}

    return app


def _request() -> dict[str, Any]:
    return {
        "resource": "/tenants/{tenant_id}/users",
        "path": "/tenants/acme/users",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "pathParameters": {"tenant_id": "acme"},
        "requestContext": {
            "requestId": "req-1",
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": {
                "tenant_id": "acme",
                "user": "ada",
                "roles": "tenant-admin",
                "sid": "s",
                "amr": "pwd,otp",
            },
        },
        "body": "{}",
        "isBase64Encoded": False,
    }


def _trail(stack: AuditStack) -> list[dict[str, Any]]:
    return stack.reader().query("acme", limit=50)["items"]


def test_a_write_whose_record_the_bus_refused_reaches_the_trail_from_the_outbox(
    world: dict[str, Any],
) -> None:
    stack, outbox, clock = world["stack"], world["outbox"], world["clock"]
    writes: list[str] = []
    reply = _app(stack, Bus(up=False), outbox, writes).resolve(_request(), None)
    assert reply["statusCode"] == 200
    assert writes == ["acme"]
    writer = stack.writer()
    assert writer.drain_outbox(outbox) == 0  # not before a minute: the request may still be putting it
    clock.now += 61
    assert writer.drain_outbox(outbox) == 1
    assert writer.drain_outbox(outbox) == 0  # once
    (record,) = _trail(stack)
    assert (record["action"], record["outcome"], record["status"]) == ("users:Create", "success", 200)


def test_a_write_that_died_half_way_is_recorded_with_an_unknown_outcome(world: dict[str, Any]) -> None:
    stack, outbox, clock = world["stack"], world["outbox"], world["clock"]
    outbox.hold(
        {"event_id": "ev-1", "tenant_id": "acme", "action": "files:Write", "category": "data", "status": 0}
    )
    # ... the function is killed here (a timeout): no record was put, the item stays
    clock.now += 61
    assert stack.writer().drain_outbox(outbox) == 1
    (record,) = _trail(stack)
    assert (record["action"], record["outcome"]) == ("files:Write", OUTCOME_UNKNOWN)


def test_a_write_put_on_the_bus_leaves_nothing_behind_and_is_recorded_once(world: dict[str, Any]) -> None:
    stack, outbox, clock = world["stack"], world["outbox"], world["clock"]
    bus = Bus()
    _app(stack, bus, outbox, []).resolve(_request(), None)
    (entry,) = bus.entries
    clock.now += 61
    assert stack.writer().drain_outbox(outbox) == 0
    writer = stack.writer()
    writer.append(
        {
            "id": "eb",
            "source": entry["Source"],
            "detail-type": entry["DetailType"],
            "detail": json.loads(entry["Detail"]),
        }
    )
    assert len(_trail(stack)) == 1


def test_no_write_runs_when_its_record_cannot_be_held(world: dict[str, Any]) -> None:
    stack = world["stack"]
    writes: list[str] = []
    broken = Outbox(stack.ddb, "no-such-table")
    reply = _app(stack, Bus(), broken, writes).resolve(_request(), None)
    assert reply["statusCode"] == 503
    assert json.loads(reply["body"])["error"] == "service_unavailable"
    assert writes == []  # nothing done
    assert isinstance(stack.tenants["acme"], TenantProfile)


class ThrottledAfterHold:
    """Seals the held draft, then KMS throttles (a data-key cache renewal) for the next ``fails``."""

    def __init__(self, fails: int) -> None:
        self.calls, self.fails = 0, fails

    def seal(self, detail: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if 1 < self.calls <= 1 + self.fails:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GenerateDataKey"
            )
        return dict(detail)


@pytest.mark.parametrize("fails", [1, 2], ids=["the record's seal fails", "every later seal fails"])
def test_a_write_whose_record_cannot_be_sealed_is_answered_as_it_ran_and_recorded_finished(
    world: dict[str, Any], fails: int
) -> None:
    """Red team A: a seal failing after the write turned its 200 into a 5xx and an `unknown` record."""
    stack, outbox, clock = world["stack"], world["outbox"], world["clock"]
    writes: list[str] = []
    bus = Bus()
    reply = _app(stack, bus, outbox, writes, sealer=ThrottledAfterHold(fails)).resolve(_request(), None)
    assert writes == ["acme"]
    assert reply["statusCode"] == 200  # the write happened: the caller is told so
    assert bus.entries == []  # its record could not be sealed, so it was not put ...
    clock.now += 61
    assert stack.writer().drain_outbox(outbox) == 1  # ... and the outbox holds it, finished
    (record,) = _trail(stack)
    assert (record["action"], record["outcome"], record["status"]) == ("users:Create", "success", 200)
    assert record.get("reason") is None  # not "the request did not finish"
