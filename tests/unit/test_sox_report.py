"""Compliance reports (SOX, GDPR, ISO 27001): statuses come only from evidence."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_security.compliance.evidence import period_bounds
from tenant_security.compliance.frameworks import FrameworkReporter, framework_of
from tenant_security.compliance.html_report import render_html
from tenant_security.errors import NotFound, ValidationFailed
from tenant_security.tenants import TenantProfile
from tests.support.compliance import VALID, evidence, platform, records, tenant, user

CONFLICTS = [("security-admin", "auditor")]
SOX = FrameworkReporter("sox", CONFLICTS)


def test_a_planted_conflict_is_non_compliant_and_names_the_user() -> None:
    users = [user("ada", ["tenant-admin"]), user("mallory", ["security-admin", "auditor"])]
    report = SOX.report("acme", "2026-Q4", users, records(), False, VALID)
    assert report["status"] == "non_compliant"
    sod = next(c for c in report["checks"] if c["id"] == "segregation_of_duties")
    assert sod["findings"] == [{"user": "mallory", "conflicting_roles": ["auditor", "security-admin"]}]
    privileged = next(c for c in report["checks"] if c["id"] == "privileged_actions")
    assert privileged["status"] == "pass"
    assert privileged["findings"] == []
    assert privileged["evidence"]["by_actor"] == [
        {"action": "users:Create", "user": "ada", "count": 1, "audit_sequences": [1]}
    ]
    sign_ins = next(c for c in report["checks"] if c["id"] == "failed_sign_ins_and_lockouts")
    assert sign_ins["evidence"]["audit_sequences"] == [2, 3]


def test_no_evidence_is_never_compliant() -> None:
    report = SOX.report("acme", "2026-Q4", [], [], False, {"checked": 0})
    assert report["status"] == "insufficient_evidence"
    assert {c["status"] for c in report["checks"]} == {"insufficient_evidence"}


def test_compliant_only_when_every_check_passes_on_evidence() -> None:
    users = [user("ada", ["tenant-admin"])]
    assert SOX.report("acme", "2026-Q4", users, records(), False, VALID)["status"] == "compliant"
    no_mfa = [user("ada", ["tenant-admin"], mfa=False)]
    assert SOX.report("acme", "2026-Q4", no_mfa, records(), False, VALID)["status"] == "non_compliant"
    broken = {**VALID, "status": "INVALID", "problems": [{"sequence": 2, "kind": "missing_record"}]}
    report = SOX.report("acme", "2026-Q4", users, records(), False, broken)
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
    users = [user("<script>", ["security-admin", "auditor"])]
    page = render_html(SOX.report("acme", "2026-Q4", users, records(), False, VALID))
    assert "non_compliant" in page
    assert "<svg" in page
    assert "<script>" not in page  # escaped
    assert "&lt;script&gt;" in page


@pytest.mark.parametrize("framework", ["gdpr", "ISO27001", "iso-27001", "SOX"])
def test_every_control_passes_on_good_evidence(framework: str) -> None:
    report = FrameworkReporter(framework, CONFLICTS).from_evidence(evidence())
    assert report["status"] == "compliant", [c for c in report["checks"] if c["status"] != "pass"]
    assert report["in_policy"] is True
    assert all(c["status"] == "compliant" for c in report["controls"])
    checks = {c["id"] for c in report["checks"]}
    assert all(set(c["checks"]) <= checks for c in report["controls"])


def test_iso27001_maps_annex_a_controls_to_evidence() -> None:
    report = FrameworkReporter("iso27001", CONFLICTS).from_evidence(evidence())
    assert report["framework"] == "ISO27001"
    controls = {c["id"]: c for c in report["controls"]}
    assert {"A.5.15", "A.8.24", "A.8.15", "A.8.16", "A.5.19", "A.8.22"} <= set(controls)
    assert controls["A.8.24"]["checks"] == ["encryption_at_rest", "key_rotation", "data_locality"]
    crypto_check = next(c for c in report["checks"] if c["id"] == "encryption_at_rest")
    assert crypto_check["evidence"]["data_key"]["arn"] == "arn:aws:kms:us-east-1:1:key/mrk-1"


@pytest.mark.parametrize(
    ("tenant_record", "platform_state", "check", "control"),
    [
        (tenant(compliance={"pii_handling": "none"}), platform(), "pii_protection", "Art. 25"),
        (tenant(), platform(rotation=False), "key_rotation", "Art. 32"),
        (tenant(), platform(replicas=("ap-south-1",)), "data_locality", "Art. 44"),
        (tenant(access_control={"ip_whitelist": []}), platform(), "network_access", "Art. 32"),
        (
            tenant(),
            {**platform(), "audit_lock": {"mode": "GOVERNANCE", "days": 1}},
            "audit_retention",
            "Art. 30",
        ),
    ],
)
def test_a_gdpr_failure_names_its_article_and_evidence(
    tenant_record: TenantProfile, platform_state: dict[str, Any], check: str, control: str
) -> None:
    report = FrameworkReporter("gdpr", CONFLICTS).from_evidence(
        evidence(tenant_record=tenant_record, platform_state=platform_state)
    )
    assert report["status"] == "non_compliant"
    failed = next(c for c in report["checks"] if c["id"] == check)
    assert failed["status"] == "fail"
    assert failed["findings"]
    assert next(c for c in report["controls"] if c["id"] == control)["status"] == "non_compliant"


def test_without_platform_evidence_a_gdpr_report_is_never_compliant() -> None:
    report = FrameworkReporter("gdpr", CONFLICTS).from_evidence(evidence(platform_state={}))
    assert report["status"] == "insufficient_evidence"
    assert (
        next(c for c in report["checks"] if c["id"] == "encryption_at_rest")["status"]
        == "insufficient_evidence"
    )


@pytest.mark.parametrize("name", ["hipaa", "soc2", "../sox", ""])
def test_frameworks_without_a_report_are_404(name: str) -> None:
    with pytest.raises(NotFound):
        framework_of(name)
