"""A policy change: RFC 7396 merge patches, field-level differences, If-Match and the lock-out guard."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tenant_security.errors import Conflict
from tenant_security.models.policies import parse_security_policies
from tenant_security.policy.changes import (
    RolledOutField,
    field_changes,
    merge_patch,
    rolled_out,
    without_read_only,
)
from tenant_security.policy.lockout import (
    CallerSession,
    LockoutReason,
    WouldLockOut,
    guard,
    lockout_reasons,
)
from tenant_security.policy.revisions import etag, if_match_allows


# RFC 7396 Appendix A, every example
@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_is_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_changes_neither_input() -> None:
    target, patch = {"a": {"b": 1}}, {"a": {"b": None, "c": 2}}
    merge_patch(target, patch)
    assert target == {"a": {"b": 1}}
    assert patch == {"a": {"b": None, "c": 2}}


def test_null_in_a_patch_gives_a_field_its_default_again() -> None:
    stored = parse_security_policies({"access_control": {"session_timeout_minutes": 30}})
    patched = merge_patch(
        stored.model_dump(mode="json"), {"access_control": {"session_timeout_minutes": None}}
    )
    assert parse_security_policies(patched).access_control.session_timeout_minutes == 480


def test_field_changes_name_each_leaf_by_its_path() -> None:
    old = parse_security_policies({}).model_dump(mode="json")
    new = parse_security_policies(
        {"access_control": {"ip_whitelist": ["203.0.113.0/24"], "mfa_required": False}}
    ).model_dump(mode="json")
    changes = {c.field: (c.old, c.new) for c in field_changes(old, new)}
    assert changes == {
        "access_control.ip_whitelist": ([], ["203.0.113.0/24"]),
        "access_control.mfa_required": (True, False),
    }
    assert field_changes(old, old) == []


def test_only_the_fields_that_live_in_aws_need_a_rollout() -> None:
    old = parse_security_policies({}).model_dump(mode="json")
    new = parse_security_policies(
        {"data_protection": {"key_rotation_days": 180}, "access_control": {"mfa_required": False}}
    ).model_dump(mode="json")
    assert [c.field for c in rolled_out(field_changes(old, new))] == [RolledOutField.KEY_ROTATION_DAYS]


def test_what_get_adds_is_not_part_of_the_document() -> None:
    assert without_read_only({"revision": 3, "rollout": {}, "version": "1.0.0"}) == {"version": "1.0.0"}


@pytest.mark.parametrize(
    ("header", "revision", "allowed"),
    [
        (None, 3, True),
        ('"3"', 3, True),
        ('"2"', 3, False),
        ('"2", "3"', 3, True),
        ("*", 0, True),
        ('W/"3"', 3, False),  # If-Match compares strongly
        ("3", 3, False),  # an entity tag is quoted
        ("", 3, False),
    ],
)
def test_if_match(header: str | None, revision: int, allowed: bool) -> None:
    assert if_match_allows(header, revision) is allowed
    assert etag(revision) == f'"{revision}"'


def _caller(ip: str = "203.0.113.9", amr: tuple[str, ...] = ("pwd", "otp"), age: float = 60) -> CallerSession:
    now = time.time()
    return CallerSession(source_ip=ip, amr=amr, session_started_at=now - age, now=now)


@pytest.mark.parametrize(
    ("change", "caller", "reasons"),
    [
        ({"access_control": {"ip_whitelist": ["10.0.0.0/8"]}}, _caller(), [LockoutReason.SOURCE_ADDRESS]),
        ({"access_control": {"ip_whitelist": ["203.0.113.0/24"]}}, _caller(), []),
        ({"access_control": {"mfa_required": True}}, _caller(amr=("pwd",)), [LockoutReason.MFA]),
        ({"access_control": {"mfa_required": False}}, _caller(amr=("pwd",)), []),
        ({"access_control": {"session_timeout_minutes": 5}}, _caller(age=301), [LockoutReason.SESSION_AGE]),
        ({"access_control": {"session_timeout_minutes": 5}}, _caller(age=299), []),
        (
            {"access_control": {"ip_whitelist": ["10.0.0.0/8"], "session_timeout_minutes": 5}},
            _caller(amr=("pwd",), age=600),
            [LockoutReason.SOURCE_ADDRESS, LockoutReason.MFA, LockoutReason.SESSION_AGE],
        ),
    ],
)
def test_the_lockout_guard_names_each_rule_that_would_refuse_the_caller(
    change: dict[str, Any], caller: CallerSession, reasons: list[LockoutReason]
) -> None:
    policy = parse_security_policies(change)
    assert lockout_reasons(policy, caller) == reasons
    if reasons:
        with pytest.raises(WouldLockOut) as refused:
            guard(policy, caller, force=False)
        assert isinstance(refused.value, Conflict)
        assert refused.value.status == 409
        assert refused.value.code == "would_lock_out"
        assert {f["message"] for f in refused.value.body()["fields"]} == {r.value for r in reasons}
        assert guard(policy, caller, force=True) == reasons  # forced: made, and the reasons named
    else:
        assert guard(policy, caller, force=False) == []


def test_a_caller_of_another_tenant_is_not_judged_by_this_policy() -> None:
    policy = parse_security_policies({"access_control": {"ip_whitelist": ["10.0.0.0/8"]}})
    assert guard(policy, None, force=False) == []
