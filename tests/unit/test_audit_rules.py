"""Pure rules of the audit trail: the chain's encoding, records from events, what the policy records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tenant_security.activity import Activity, category_of, outcome_of, should_record
from tenant_security.audit.chain import (
    GENESIS_HASH,
    canonical,
    checkpoint_key,
    record_hash,
    record_key,
    seal,
    sequence_of_checkpoint_key,
    sequence_of_record_key,
)
from tenant_security.audit.events import event_id_of, record_content, tenant_of
from tenant_security.models.policies import parse_security_policies


def test_the_canonical_encoding_ignores_key_order_and_keeps_unicode() -> None:
    assert canonical({"b": 1, "a": {"d": 2, "c": "é"}}) == canonical({"a": {"c": "é", "d": 2}, "b": 1})
    assert canonical({"a": "é"}) == '{"a":"é"}'.encode()


def test_the_hash_covers_every_field_but_itself() -> None:
    record = seal({"sequence": 1, "prev_hash": GENESIS_HASH, "action": "files:Read"})
    assert record["hash"] == record_hash(record)
    assert record_hash({**record, "hash": "x"}) == record["hash"]
    for field, value in (("sequence", 2), ("prev_hash", "1" * 64), ("action", "files:Write")):
        assert record_hash({**record, field: value}) != record["hash"]


def test_record_and_checkpoint_keys_name_their_sequence() -> None:
    key = record_key(42, datetime(2026, 11, 26, 23, 59, tzinfo=UTC))
    assert key == "audit/2026/11/26/0000000000000042.json"
    assert sequence_of_record_key(key) == 42
    assert sequence_of_checkpoint_key(checkpoint_key(7)) == 7
    for bad in ("audit/2026/11/26/42.json", "audit/x/0000000000000042.json", "other/0000000000000042.json"):
        assert sequence_of_record_key(bad) is None


def _event(detail_type: str, **detail: Any) -> dict[str, Any]:
    return {"id": "eb-1", "source": "dcisionai.tenant-security", "detail-type": detail_type, "detail": detail}


def test_a_user_activity_becomes_a_record() -> None:
    event = _event(
        "User Activity",
        event_id="e-1",
        tenant_id="acme",
        action="users:Create",
        category="admin",
        outcome="success",
        user="ada",
        source_ip="10.0.0.1",
        status=201,
        target_user="bob",
        target_email="bob@example.com",
    )
    content = record_content(event, "acme")
    assert content["event_id"] == "e-1"
    assert (content["action"], content["category"], content["outcome"], content["status"]) == (
        "users:Create",
        "admin",
        "success",
        201,
    )
    assert content["actor"] == {"tenant_id": "acme", "user": "ada"}
    assert content["target"] == {"user": "bob", "email": "bob@example.com"}


def test_alerts_and_lifecycle_events_become_records() -> None:
    alert = record_content(
        _event("Security Alert", tenant_id="acme", alert="totp_replay", user="ada"), "acme"
    )
    assert (alert["action"], alert["category"], alert["outcome"]) == (
        "security:totp_replay",
        "security",
        "success",
    )
    failed = record_content(_event("Tenant Onboarding Failed", tenant_id="newco", reason="boom"), "platform")
    assert (failed["action"], failed["outcome"]) == ("lifecycle:Tenant Onboarding Failed", "failure")
    assert failed["details"]["about_tenant"] == "newco"


def test_a_record_stays_small_whatever_the_event_carries() -> None:
    huge = {f"field{i}": "x" * 10_000 for i in range(100)}
    content = record_content(_event("User Activity", tenant_id="acme", action="y" * 10_000, **huge), "acme")
    assert len(content["action"]) == 256
    assert len(content["details"]) <= 20
    assert all(len(str(v)) <= 256 for v in content["details"].values())
    assert len(canonical(content)) < 10_000


def test_the_event_id_and_tenant_come_from_the_detail_with_safe_fallbacks() -> None:
    assert event_id_of(_event("User Activity", event_id="mine")) == "mine"
    assert event_id_of(_event("User Activity")) == "eb-1"
    assert tenant_of(_event("User Activity", tenant_id="acme"), "platform") == "acme"
    for bad in ("../etc", "ACME", "a" * 100, 7, None):
        assert tenant_of(_event("User Activity", tenant_id=bad), "platform") == "platform"


@pytest.mark.parametrize(
    ("action", "method", "category"),
    [
        ("files:Read", "GET", "data"),
        ("audit:Read", "GET", "data"),
        ("gdpr:Export", "GET", "data"),
        ("users:Create", "POST", "admin"),
        ("users:List", "GET", "operation"),
        ("auth:Logout", "POST", "authentication"),
    ],
)
def test_categories(action: str, method: str, category: str) -> None:
    assert category_of(action, method) == category


def test_outcomes() -> None:
    assert [outcome_of(s) for s in (200, 204, 400, 401, 403, 404, 429, 500)] == [
        "success",
        "success",
        "failure",
        "denied",
        "denied",
        "failure",
        "denied",
        "failure",
    ]


def test_the_policy_flags_decide_routine_records_but_never_refusals_or_security_events() -> None:
    quiet = parse_security_policies(
        {"audit_logging": {"log_all_operations": False, "log_data_access": False, "log_admin_actions": False}}
    )
    for category in ("operation", "data", "admin"):
        assert not should_record(category, "success", quiet)
        assert should_record(category, "denied", quiet)
        assert should_record(category, "success", parse_security_policies({}))
    for category in ("authentication", "security", "lifecycle"):
        assert should_record(category, "success", quiet)


def test_an_activity_detail_leaves_out_what_is_unknown() -> None:
    detail = Activity(tenant_id="acme", action="files:Read", outcome="success", category="data").detail()
    assert set(detail) == {"tenant_id", "action", "outcome", "category", "event_id"}
