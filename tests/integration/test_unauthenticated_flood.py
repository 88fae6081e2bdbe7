"""A flood of unauthenticated requests costs one counter write each and one audit record per
source address and minute -- not a `Security Alert` (e-mail and record) per request; callers who
proved who they are keep one record per refusal (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from tenant_security.authz.decision import RequestAuthorizer
from tenant_security.errors import Unauthorized
from tenant_security.identity.tokens import TokenVerifier
from tenant_security.refusals import RefusalCounter, RefusalKind
from tests.support.audit import AuditStack, audit_stack
from tests.support.clock import ManualClock
from tests.support.identity_fakes import LocalKeys, LocalSigner, RecordingPublisher
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration


@pytest.fixture
def flood(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AuditStack, RefusalCounter, ManualClock]]:
    with mocked_aws(monkeypatch):
        stack = audit_stack()
        create_table(stack.ddb, stack.settings.counters_table, "pk", "sk")
        clock = ManualClock()
        yield stack, RefusalCounter(stack.ddb, stack.settings.counters_table, clock), clock


def _garbage(source_ip: str) -> dict[str, Any]:
    return {
        "headers": {"Authorization": "Bearer not-a-token"},
        "httpMethod": "GET",
        "resource": "/tenants/{tenant_id}",
        "methodArn": "arn:aws:execute-api:us-east-1:1:api/dev/GET/tenants/acme",
        "requestContext": {"identity": {"sourceIp": source_ip}},
    }


def test_a_flood_of_bad_tokens_becomes_one_record_per_address_and_minute(
    flood: tuple[AuditStack, RefusalCounter, ManualClock],
) -> None:
    stack, refusals, clock = flood
    publisher = RecordingPublisher()
    authorizer = RequestAuthorizer(
        TokenVerifier(LocalKeys(LocalSigner()), "iss", "aud"),  # type: ignore[arg-type]
        stack,
        None,  # type: ignore[arg-type]
        publisher,  # type: ignore[arg-type]
        "platform",
        refusals=refusals,
    )

    def refuse(source_ip: str) -> None:
        with pytest.raises(Unauthorized):
            authorizer.authorize(_garbage(source_ip))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(refuse, ["203.0.113.7"] * 40 + ["198.51.100.9"] * 10))
    assert publisher.events == []  # no Security Alert (and so no e-mail) per request
    writer = stack.writer()
    writer.clock = lambda: datetime.fromtimestamp(clock.now, UTC)
    refusals.clock = clock
    clock.now += 120  # the minute is over
    assert writer.summarise_refusals(refusals) == 50
    records = stack.reader().query("platform", limit=200)["items"]
    summaries = {r["source_ip"]: r for r in records if r["action"] == "security:unauthenticated_refusals"}
    assert set(summaries) == {"203.0.113.7", "198.51.100.9"}
    assert summaries["203.0.113.7"]["details"]["attempts"] == 40
    assert summaries["198.51.100.9"]["details"]["attempts"] == 10
    assert summaries["203.0.113.7"]["reason"] == RefusalKind.INVALID_TOKEN
    # a second run (or a concurrent one) appends nothing again
    writer.heads.client.delete_item(
        TableName=stack.settings.audit_heads_table, Key={"tenant_id": {"S": "#refusals"}}
    )
    assert writer.summarise_refusals(refusals) == 50  # counted again ...
    again = stack.reader().query("platform", limit=200)["items"]
    assert len(again) == len(records)  # ... but no record twice (idempotent per counter)
    assert stack.verifier().verify("platform")["status"] == "VALID"


def test_a_minute_still_running_is_not_summarised(
    flood: tuple[AuditStack, RefusalCounter, ManualClock],
) -> None:
    stack, refusals, clock = flood
    refusals.count(RefusalKind.UNKNOWN_ACCOUNT, "192.0.2.1", "acme")
    writer = stack.writer()
    assert writer.summarise_refusals(refusals) == 0  # its minute is not over
    clock.now += 61
    stack.add_tenant("acme")
    assert writer.summarise_refusals(refusals) == 1
    records = stack.reader().query("acme", limit=10)["items"]
    assert [(r["action"], r["details"]["attempts"]) for r in records] == [
        ("security:unauthenticated_refusals", 1)
    ]


def test_a_distributed_flood_cannot_stall_the_summaries(
    flood: tuple[AuditStack, RefusalCounter, ManualClock],
) -> None:
    from tenant_security.audit.writer import MAX_SUMMARIES_PER_MINUTE

    stack, refusals, clock = flood
    sources = MAX_SUMMARIES_PER_MINUTE + 40
    for n in range(sources):  # one minute: many addresses, one attempt each (and one loud one)
        refusals.count(RefusalKind.INVALID_TOKEN, f"203.0.{n // 250}.{n % 250}")
    for _ in range(9):
        refusals.count(RefusalKind.INVALID_TOKEN, "203.0.0.0")
    clock.now += 60
    stack.add_tenant("acme")
    for _ in range(3):  # the next minute: the attack that matters
        refusals.count(RefusalKind.UNKNOWN_ACCOUNT, "192.0.2.50", "acme")
    clock.now += 60
    writer = stack.writer()
    writer.clock = lambda: datetime.fromtimestamp(clock.now, UTC)
    assert writer.summarise_refusals(refusals) == sources + 9 + 3
    platform = stack.reader().query("platform", limit=200)["items"]
    summaries = [r for r in platform if r["action"] == "security:unauthenticated_refusals"]
    assert len(summaries) == MAX_SUMMARIES_PER_MINUTE + 1  # the busiest, then one for the rest
    assert summaries[0]["details"]["attempts"] == 10  # the loud one first
    (overflow,) = [r for r in summaries if "addresses" in r["details"]]
    assert (overflow["details"]["addresses"], overflow["details"]["attempts"]) == (
        sources - MAX_SUMMARIES_PER_MINUTE,
        40,
    )
    acme = stack.reader().query("acme", limit=10)["items"]
    assert [(r["source_ip"], r["details"]["attempts"]) for r in acme] == [("192.0.2.50", 3)]


def test_a_run_out_of_time_leaves_the_rest_to_the_next(
    flood: tuple[AuditStack, RefusalCounter, ManualClock],
) -> None:
    stack, refusals, clock = flood
    for minute in range(3):
        refusals.count(RefusalKind.INVALID_TOKEN, f"198.51.100.{minute}")
        clock.now += 60
    writer = stack.writer()
    writer.clock = lambda: datetime.fromtimestamp(clock.now, UTC)
    assert writer.summarise_refusals(refusals, budget_seconds=-1) == 0  # out of time at once
    assert writer.summarise_refusals(refusals) == 3  # the next run does it all
