"""The SOX report's statuses come only from evidence."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_security.compliance import SoxReporter, period_bounds, render_html
from tenant_security.errors import ValidationFailed
from tenant_security.identity.users import User

CONFLICTS = [("security-admin", "auditor")]
VALID = {"status": "VALID", "checked": 3, "from": 1, "to": 3, "checkpoints_checked": 0, "problems": []}


def _user(name: str, roles: list[str], mfa: bool = True) -> User:
    return User(
        tenant_id="acme",
        username=name,
        email=f"{name}@x.example",
        roles=roles,
        password_hash="h",
        mfa_enrolled=mfa,
    )


def _records(n: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "sequence": i + 1,
            "action": "users:Create" if i == 0 else "auth:Login",
            "outcome": "success" if i == 0 else "failure",
            "actor": {"user": "ada"},
            "recorded_at": "2026-11-02T10:00:00+00:00",
        }
        for i in range(n)
    ]


def test_a_planted_conflict_is_non_compliant_and_names_the_user() -> None:
    users = [_user("ada", ["tenant-admin"]), _user("mallory", ["security-admin", "auditor"])]
    report = SoxReporter(CONFLICTS).report("acme", "2026-Q4", users, _records(), False, VALID)
    assert report["status"] == "non_compliant"
    sod = next(c for c in report["checks"] if c["id"] == "segregation_of_duties")
    assert sod["findings"] == [{"user": "mallory", "conflicting_roles": ["auditor", "security-admin"]}]
    privileged = next(c for c in report["checks"] if c["id"] == "privileged_actions")
    assert privileged["findings"][0] == {
        "action": "users:Create",
        "user": "ada",
        "count": 1,
        "audit_sequences": [1],
    }
    sign_ins = next(c for c in report["checks"] if c["id"] == "failed_sign_ins_and_lockouts")
    assert sign_ins["evidence"]["audit_sequences"] == [2, 3]


def test_no_evidence_is_never_compliant() -> None:
    report = SoxReporter(CONFLICTS).report("acme", "2026-Q4", [], [], False, {"checked": 0})
    assert report["status"] == "insufficient_evidence"
    assert {c["status"] for c in report["checks"]} == {"insufficient_evidence"}


def test_compliant_only_when_every_check_passes_on_evidence() -> None:
    users = [_user("ada", ["tenant-admin"])]
    assert (
        SoxReporter(CONFLICTS).report("acme", "2026-Q4", users, _records(), False, VALID)["status"]
        == "compliant"
    )
    no_mfa = [_user("ada", ["tenant-admin"], mfa=False)]
    assert (
        SoxReporter(CONFLICTS).report("acme", "2026-Q4", no_mfa, _records(), False, VALID)["status"]
        == "non_compliant"
    )
    broken = {**VALID, "status": "INVALID", "problems": [{"sequence": 2, "kind": "missing_record"}]}
    report = SoxReporter(CONFLICTS).report("acme", "2026-Q4", users, _records(), False, broken)
    assert report["status"] == "non_compliant"


def test_periods() -> None:
    start, end = period_bounds("2026-Q4")
    assert (start.isoformat(), end.isoformat()) == ("2026-10-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00")
    start, end = period_bounds("2026-02")
    assert (start.day, end.month) == (1, 3)
    for bad in ("2026-Q5", "2026-13", "26-Q1", "2026", "'; DROP"):
        with pytest.raises(ValidationFailed):
            period_bounds(bad)


def test_the_html_shows_the_status_the_findings_and_a_chart() -> None:
    users = [_user("<script>", ["security-admin", "auditor"])]
    page = render_html(SoxReporter(CONFLICTS).report("acme", "2026-Q4", users, _records(), False, VALID))
    assert "non_compliant" in page
    assert "<svg" in page
    assert "<script>" not in page  # escaped
    assert "&lt;script&gt;" in page
