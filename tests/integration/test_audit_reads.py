"""GET /audit's reader on the audit index (moto, the table and its indexes as template.yaml has
them): every filter against an oracle over the whole trail, paging without gap or duplicate,
page tokens bound to tenant and query, PII revealed as before (and ``[erased]`` at once after an
erasure, whatever is cached), the AWS calls of a page, the export's ranges."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tenant_security.audit.index_entries import entry_attributes
from tenant_security.audit.pii import ERASED, REDACTED
from tenant_security.audit.reader import AuditReader
from tenant_security.errors import ValidationFailed
from tenant_security.models.policies import parse_security_policies
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack

USERS = ("alice", "bob", "carol")
ACTIONS = ("files:Read", "files:Write", "users:Create")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    clear = parse_security_policies({"compliance": {"pii_handling": "none"}})
    with mocked_audit_stack(monkeypatch, 1000, "acme", "beta", policies={"open": clear}) as built:
        yield built


def _fill(stack: AuditStack, tenant: str, n: int) -> None:
    writer = stack.writer()
    for i in range(n):
        detail: dict[str, Any] = {"user": USERS[i % 3], "action": ACTIONS[i % len(ACTIONS)]}
        if i % 4 == 0:
            detail.update(target_user=USERS[(i + 1) % 3], target_email=f"u{i}@example.com")
        writer.append(activity_event(tenant, i, **detail))


def _all_pages(reader: AuditReader, tenant: str, limit: int, **filters: Any) -> list[dict[str, Any]]:
    items, after = [], None
    for _ in range(200):
        page = reader.query(tenant, limit=limit, after=after, **filters)
        assert len(page["items"]) <= limit
        items += page["items"]
        after = page["next"]
        if after is None:
            return items
    raise AssertionError("the pages never ended")


def _sequences(items: list[dict[str, Any]]) -> list[int]:
    return [r["sequence"] for r in items]


def _about(record: dict[str, Any], user: str) -> bool:
    return user in (record["actor"].get("user"), (record.get("target") or {}).get("user"))


@pytest.mark.parametrize("tenant", ["acme", "open"])  # PII encrypted per subject, or kept in clear
def test_every_filter_returns_what_a_scan_of_the_whole_trail_finds_page_by_page(
    stack: AuditStack, tenant: str
) -> None:
    _fill(stack, tenant, 24)
    _fill(stack, "beta", 6)  # another tenant's records, with the same users and actions
    reader = stack.reader()
    everything = reader.query(tenant, limit=200)["items"]
    assert _sequences(everything) == list(range(1, 25))
    times = [datetime.fromisoformat(r["recorded_at"]) for r in everything]
    start, end = times[5], times[17]
    cases: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        ({}, everything),
        ({"action": "files:Write"}, [r for r in everything if r["action"] == "files:Write"]),
        ({"actor": "bob"}, [r for r in everything if r["actor"]["user"] == "bob"]),
        (
            {"actor": "carol", "action": "users:Create"},
            [r for r in everything if r["actor"]["user"] == "carol" and r["action"] == "users:Create"],
        ),
        (
            {"start": start, "end": end},
            [r for r in everything if start <= datetime.fromisoformat(r["recorded_at"]) <= end],
        ),
        (
            {"start": start, "action": "files:Read"},
            [
                r
                for r in everything
                if r["action"] == "files:Read" and datetime.fromisoformat(r["recorded_at"]) >= start
            ],
        ),
        ({"subject": "bob"}, [r for r in everything if _about(r, "bob")]),
    ]
    for filters, expected in cases:
        assert expected, filters  # every case finds something
        for limit in (1, 3, 7, 200):
            found = _all_pages(reader, tenant, limit, **filters)
            assert _sequences(found) == _sequences(expected), (filters, limit)
        assert found == expected, filters  # PII revealed exactly as in the unfiltered page
    assert {r["tenant_id"] for r in everything} == {tenant}


def test_pii_is_revealed_to_the_reader_and_erased_at_once_whatever_is_cached(stack: AuditStack) -> None:
    _fill(stack, "acme", 6)
    reader = stack.reader()  # one warm reader: its subject keys stay cached between pages
    unwrapped: list[str] = []
    unwrap = reader.warm_keys.keys.unwrap
    reader.warm_keys.keys.unwrap = lambda t, k, w: unwrapped.append(k) or unwrap(t, k, w)  # type: ignore[method-assign]
    first = reader.query("acme", limit=6)["items"]
    assert [r["actor"]["user"] for r in first] == [USERS[i % 3] for i in range(6)]
    assert first[0]["target"]["email"] == "u0@example.com"
    keys_used = len(unwrapped)
    assert keys_used == 3  # alice, bob, carol: each subject key unwrapped once
    assert reader.query("acme", limit=6)["items"] == first
    assert len(unwrapped) == keys_used  # the second page: no KMS call, the keys were cached
    assert stack.keys.erase("acme", "bob")  # erased elsewhere (another function's SubjectKeys)
    after = reader.query("acme", limit=6)["items"]
    bobs = [r for r in after if r["actor"].get("pseudonym") == first[1]["actor"]["pseudonym"]]
    assert bobs
    assert all((r["actor"]["user"], r["source_ip"]) == (ERASED, ERASED) for r in bobs)
    assert after[0]["actor"]["user"] == "alice"
    assert reader.query("acme", actor="bob")["items"] == []  # the name no longer leads to the key
    # the subject's export reveals only the subject
    export = reader.query("acme", subject="carol", reveal_subject_only=True)["items"]
    assert export
    assert all(r["actor"]["user"] in ("carol", REDACTED) for r in export)


def _counting(stack: AuditStack) -> list[str]:
    calls: list[str] = []
    stack.ddb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    return calls


def test_a_page_of_twenty_costs_two_calls_and_a_filtered_one_three(stack: AuditStack) -> None:
    _fill(stack, "acme", 45)
    reader = AuditReader(
        stack.ddb, stack.settings.audit_index_table, stack.cipher.decode, stack.reader().pii, stack.keys
    )
    reader.query("acme", limit=20)  # warm: data keys and subject keys cached
    calls = _counting(stack)
    page = reader.query("acme", limit=20)
    assert len(page["items"]) == 20
    assert calls == ["Query", "BatchGetItem"]  # the page with its bodies; its subject keys
    calls.clear()
    second = reader.query("acme", limit=20, after=page["next"])
    assert _sequences(second["items"]) == list(range(21, 41))
    assert calls == ["Query", "BatchGetItem"]
    calls.clear()
    reader.query("acme", action="files:Write", limit=20)
    assert calls == ["Query", "BatchGetItem", "BatchGetItem"]  # the index, the bodies, the keys
    calls.clear()
    reader.query("acme", actor="alice", limit=20)  # the name's key, then the name and the key
    assert calls == ["GetItem", "Query", "Query", "BatchGetItem", "BatchGetItem"]


def _forged(token: str, **changes: Any) -> str:
    document = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    document.update(changes)
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def test_a_page_token_is_bound_to_its_tenant_and_its_query(stack: AuditStack) -> None:
    _fill(stack, "acme", 6)
    _fill(stack, "beta", 6)
    reader = stack.reader()
    token = reader.query("acme", limit=2)["next"]
    filtered = reader.query("acme", action="files:Read", limit=1)["next"]
    assert token
    assert filtered
    refused = [
        ("beta", token, {}),  # acme's token on beta: neither tenant's records
        ("acme", _forged(token, t="beta"), {}),  # relabelled: not this tenant's
        ("acme", token, {"action": "files:Read"}),  # another query's token
        ("acme", filtered, {}),
        ("acme", "not-a-token", {}),
        ("acme", _forged(token, s=0), {}),
        ("acme", _forged(token, s="3"), {}),
        ("acme", _forged(token, at="2026-01-01T00:00:00Z' OR 1=1"), {}),
        ("acme", _forged(token, v=1), {}),
        ("acme", base64.urlsafe_b64encode(b"audit/2026/11/26/0000000000000002.json").decode(), {}),
    ]
    for tenant, bad, filters in refused:
        with pytest.raises(ValidationFailed):
            reader.query(tenant, limit=2, after=bad, **filters)
    # a token of beta's own query, forged to start further on, only skips ahead in beta's trail
    beta = reader.query("beta", limit=2)["next"]
    assert {r["tenant_id"] for r in reader.query("beta", after=_forged(beta, s=4))["items"]} == {"beta"}
    assert _sequences(reader.query("acme", limit=10, after=token)["items"]) == [3, 4, 5, 6]


def test_the_index_keys_name_the_actor_by_clear_name_or_pseudonym_never_the_name_it_protects() -> None:
    protected = {
        "tenant_id": "acme",
        "sequence": 7,
        "recorded_at": "2026-11-26T12:00:00.5+00:00",
        "action": "users:Create",
        "actor": {"user": REDACTED, "pseudonym": "k-1"},
        "target": {"user": REDACTED, "email": REDACTED, "pseudonym": "k-2"},
        "pii": [
            {"key_id": "k-1", "fields": ["actor.user", "source_ip"], "ciphertext": "..."},
            {"key_id": "k-2", "fields": ["target.email", "target.user"], "ciphertext": "..."},
        ],
    }
    assert entry_attributes("acme", protected) == {
        "time_key": {"S": "2026-11-26T12:00:00.5+00:00#0000000000000007"},
        "action_key": {"S": "acme#users:Create"},
        "actor_key": {"S": "acme#key#k-1"},
        "target_key": {"S": "acme#key#k-2"},
    }
    clear = {**protected, "actor": {"user": "alice"}, "target": {"user": None}, "pii": []}
    assert entry_attributes("acme", clear)["actor_key"] == {"S": "acme#user#alice"}
    assert "target_key" not in entry_attributes("acme", clear)
    redacted = {**protected, "pii": [], "actor": {"user": REDACTED}, "target": {}}
    assert set(entry_attributes("acme", redacted)) == {"time_key", "action_key"}  # found by no name


def test_the_stored_range_pages_by_sequence_without_gap_or_duplicate(stack: AuditStack) -> None:
    _fill(stack, "acme", 23)
    reader = stack.reader()
    seen, start = [], 3
    while start is not None:
        records, start = reader.stored_range("acme", start, 20, 5)
        assert len(records) <= 5
        seen += records
    assert _sequences(seen) == list(range(3, 21))
    assert all(r["actor"]["user"] == REDACTED and "pii" in r for r in seen)  # as stored: nothing revealed
    assert reader.stored_range("acme", 24, 30, 5) == ([], None)
    assert reader.stored_range("beta", 1, 30, 5) == ([], None)
