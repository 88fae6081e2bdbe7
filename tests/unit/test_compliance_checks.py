"""Each compliance check on its own: it fails on exactly the findings its evidence shows, passes
when there are none, and lacks evidence without any -- never passing because a trail exists."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tenant_security.activity import SECURITY_ALERT
from tenant_security.alerts import REVIEW_REQUIRED, AlertKind, action_of
from tenant_security.audit.events import record_content
from tenant_security.compliance.checks import (
    FAIL,
    FAILED_PRIVILEGED_ACTIONS_TO_REVIEW,
    FAILED_SIGN_INS_TO_REVIEW,
    INSUFFICIENT,
    PASS,
    Checks,
)
from tenant_security.compliance.evidence import Evidence, period_bounds
from tenant_security.errors import ValidationFailed
from tests.support.compliance import (
    PERIOD,
    TENANT,
    VALID,
    evidence,
    platform,
    record,
    records,
    tenant,
    user,
)

CHECKS = Checks([("security-admin", "auditor")], platform_tenant="platform")
EVERY_CHECK = sorted(name for name in vars(Checks) if not name.startswith("_"))
MISSING_RECORD = {"sequence": 2, "kind": "missing_record", "detail": "no record for this sequence"}


def _run(check_id: str, e: Evidence) -> dict[str, Any]:
    result: dict[str, Any] = getattr(CHECKS, check_id)(e)
    assert result["id"] == check_id
    return result


def _trail(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The harmless trail of :func:`records` (sequences 1-3) and then ``extra``."""
    return [*records(), *extra]


def _cited(count: int, first: int, **what: Any) -> dict[str, Any]:
    return {**what, "count": count, "audit_sequences": list(range(first, first + count))}


def _alert(sequence: int, kind: AlertKind, user_name: str = "ada") -> dict[str, Any]:
    """A `Security Alert` as the audit writer records it (record_content), at ``sequence``."""
    event = {
        "id": f"eb-{sequence}",
        "source": "dcisionai.tenant-security",
        "detail-type": SECURITY_ALERT,
        "detail": {
            "event_id": f"alert-{sequence}",
            "tenant_id": TENANT,
            "alert": kind,
            "outcome": "denied",
            "user": user_name,
        },
    }
    return {**record_content(event, TENANT), "sequence": sequence, "recorded_at": "2026-11-02T10:00:00+00:00"}


def _key(**changes: Any) -> dict[str, Any]:
    return {**platform()["keys"]["data"], **changes}


FAILING = [
    pytest.param(
        "segregation_of_duties",
        evidence(users=[user("mallory", ["security-admin", "auditor"])]),
        [{"user": "mallory", "conflicting_roles": ["auditor", "security-admin"]}],
        id="segregation_of_duties",
    ),
    pytest.param(
        "privileged_actions",
        evidence(trail=_trail(record(4, "users:Delete", user=None))),
        [_cited(1, 4, issue="no attributable user", action="users:Delete")],
        id="privileged_actions-unattributed",
    ),
    pytest.param(
        "privileged_actions",
        evidence(trail=_trail(record(4, "policies:Write", user="eve", actor_tenant="globex"))),
        [
            _cited(
                1, 4, issue="done by a caller outside the tenant", action="policies:Write", user="globex:eve"
            )
        ],
        id="privileged_actions-outsider",
    ),
    pytest.param(
        "privileged_actions",
        evidence(
            trail=_trail(
                *(
                    record(4 + i, "users:WriteRoles", "denied", user="bob")
                    for i in range(FAILED_PRIVILEGED_ACTIONS_TO_REVIEW)
                )
            )
        ),
        [
            _cited(
                FAILED_PRIVILEGED_ACTIONS_TO_REVIEW,
                4,
                issue="privileged actions refused or failed repeatedly",
                user="bob",
            )
        ],
        id="privileged_actions-refused-repeatedly",
    ),
    pytest.param(
        "mfa_coverage",
        evidence(users=[user("ada", ["tenant-admin"], mfa=False)]),
        [{"user": "ada", "issue": "no MFA enrolled"}],
        id="mfa_coverage-not-enrolled",
    ),
    pytest.param(
        "mfa_coverage",
        evidence(tenant_record=tenant(access_control={"mfa_required": False})),
        [{"policy": "access_control.mfa_required", "issue": "MFA is not required"}],
        id="mfa_coverage-not-required",
    ),
    pytest.param(
        "failed_sign_ins_and_lockouts",
        evidence(trail=_trail(_alert(4, AlertKind.USER_LOCKED_OUT))),
        [_cited(1, 4, issue="locked out", user="ada")],
        id="failed_sign_ins_and_lockouts-lockout",
    ),
    pytest.param(
        "failed_sign_ins_and_lockouts",
        evidence(
            trail=[record(i, "auth:MfaVerify", "failure", user="bob") for i in range(1, 11)],
        ),
        [_cited(FAILED_SIGN_INS_TO_REVIEW, 1, issue="10 or more failed sign-ins", user="bob")],
        id="failed_sign_ins_and_lockouts-many-failures",
    ),
    pytest.param(
        "network_access",
        evidence(tenant_record=tenant(access_control={"ip_whitelist": []})),
        [{"policy": "access_control.ip_whitelist", "issue": "any source address"}],
        id="network_access",
    ),
    pytest.param(
        "audit_chain_integrity",
        evidence(integrity={**VALID, "status": "INVALID", "problems": [MISSING_RECORD]}),
        [MISSING_RECORD],
        id="audit_chain_integrity",
    ),
    pytest.param(
        "audit_chain_integrity",
        # an object forged beyond the head: nothing in range checked, yet a problem found
        evidence(
            integrity={
                **VALID,
                "status": "INVALID",
                "checked": 0,
                "problems": [{"sequence": 9, "kind": "inserted_record", "detail": "beyond the head"}],
            }
        ),
        [{"sequence": 9, "kind": "inserted_record", "detail": "beyond the head"}],
        id="audit_chain_integrity-beyond-the-head",
    ),
    pytest.param(
        "audit_retention",
        evidence(platform_state={**platform(), "audit_lock": {"mode": "GOVERNANCE", "days": 1}}),
        [
            {"issue": "object lock mode GOVERNANCE, not COMPLIANCE"},
            {"issue": "retention 1 days, policy wants 2555"},
        ],
        id="audit_retention",
    ),
    pytest.param(
        "security_events",
        evidence(trail=_trail(_alert(4, AlertKind.TOTP_REPLAY), _alert(5, AlertKind.MFA_REQUIRED))),
        [_cited(1, 4, event="security:totp_replay", issue="may be an attack: review")],
        id="security_events",
    ),
    pytest.param(
        "encryption_at_rest",
        evidence(
            platform_state={
                **platform(),
                "keys": {**platform()["keys"], "data": _key(state="Disabled")},
                "data_bucket_encryption": {"algorithm": "AES256", "key": None},
            }
        ),
        [
            {"key": "data", "issue": "tenant data key is Disabled"},
            {"bucket": "data", "issue": "default encryption is not SSE-KMS under the tenant data key"},
        ],
        id="encryption_at_rest",
    ),
    pytest.param(
        "key_rotation",
        evidence(
            platform_state={
                **platform(),
                "keys": {**platform()["keys"], "secrets": _key(rotation_enabled=False)},
            }
        ),
        [{"key": "secrets", "issue": "automatic rotation is off"}],
        id="key_rotation",
    ),
    pytest.param(
        "data_locality",
        evidence(
            platform_state={
                **platform(),
                "region": "eu-west-1",
                "keys": {"data": _key(replica_regions=["ap-south-1"])},
            }
        ),
        [
            {"region": "eu-west-1", "issue": "data stored outside data_locality"},
            {"key": "data", "region": "ap-south-1", "issue": "key replica outside data_locality"},
        ],
        id="data_locality",
    ),
    pytest.param(
        "pii_protection",
        evidence(tenant_record=tenant(compliance={"pii_handling": "none"})),
        [{"policy": "compliance.pii_handling", "issue": "PII is kept in clear"}],
        id="pii_protection",
    ),
    pytest.param(
        "subject_requests",
        evidence(trail=_trail(record(4, "gdpr:Erase", "failure"), record(5, "gdpr:Export"))),
        [_cited(1, 4, issue="the request did not succeed", action="gdpr:Erase", outcome="failure")],
        id="subject_requests",
    ),
    pytest.param(
        "tenant_separation",
        evidence(
            tenant_record=replace(tenant(), isolation="shared"),
            platform_state={
                **platform(),
                "keys": {**platform()["keys"], "api-keys": None},
                "data_bucket_encryption": None,
            },
        ),
        [
            {"key": "api-keys", "issue": "the tenant has no key of its own"},
            {"issue": "unknown isolation 'shared'"},
            {"issue": "the tenant has no data bucket of its own"},
        ],
        id="tenant_separation",
    ),
]


@pytest.mark.parametrize(("check_id", "e", "findings"), FAILING)
def test_a_check_fails_on_exactly_its_findings(check_id: str, e: Evidence, findings: list[Any]) -> None:
    result = _run(check_id, e)
    assert result["findings"] == findings
    assert result["status"] == FAIL


def test_every_check_has_a_failing_case() -> None:
    assert {p.values[0] for p in FAILING} == set(EVERY_CHECK)


@pytest.mark.parametrize("check_id", EVERY_CHECK)
def test_every_check_passes_on_good_evidence(check_id: str) -> None:
    result = _run(check_id, evidence())
    assert (result["status"], result["findings"]) == (PASS, [])


@pytest.mark.parametrize("check_id", EVERY_CHECK)
def test_without_evidence_every_check_lacks_evidence(check_id: str) -> None:
    result = _run(check_id, Evidence(TENANT, PERIOD, [], [], False, {"checked": 0}))
    assert (result["status"], result["findings"]) == (INSUFFICIENT, [])


# ---------------------------------------------------------------------- privileged actions


def test_privileged_actions_of_the_tenant_and_of_platform_admins_are_evidence_not_findings() -> None:
    trail = _trail(
        record(4, "tenants:Suspend", user="root", actor_tenant="platform"),
        *(
            record(5 + i, "users:WriteRoles", "denied", user="bob")
            for i in range(FAILED_PRIVILEGED_ACTIONS_TO_REVIEW - 1)
        ),
    )
    result = _run("privileged_actions", evidence(trail=trail))
    assert (result["status"], result["findings"]) == (PASS, [])
    assert result["evidence"] == {
        "records_examined": len(trail),
        "refused_or_failed": FAILED_PRIVILEGED_ACTIONS_TO_REVIEW - 1,
        "by_actor": [
            _cited(1, 4, action="tenants:Suspend", user="platform:root"),
            _cited(1, 1, action="users:Create", user="ada"),
        ],
    }


def test_an_unattributed_privileged_action_that_failed_is_not_a_finding_on_its_own() -> None:
    result = _run(
        "privileged_actions", evidence(trail=_trail(record(4, "users:Delete", "failure", user=None)))
    )
    assert (result["status"], result["findings"]) == (PASS, [])


def test_the_platform_tenant_is_a_parameter() -> None:
    trail = _trail(record(4, "tenants:Suspend", user="root", actor_tenant="ops"))
    assert _run("privileged_actions", evidence(trail=trail))["status"] == FAIL
    operated = Checks([], platform_tenant="ops").privileged_actions(evidence(trail=trail))
    assert (operated["status"], operated["findings"]) == (PASS, [])


# ---------------------------------------------------------------------- sign-ins and lockouts


def test_a_lockout_is_counted_under_the_action_the_trail_records() -> None:
    lockout = _alert(4, AlertKind.USER_LOCKED_OUT)
    assert lockout["action"] == "security:user_locked_out"  # what the writer puts in the trail
    result = _run("failed_sign_ins_and_lockouts", evidence(trail=_trail(lockout)))
    assert result["evidence"] == {
        "failed_sign_ins": 2,
        "lockouts": 1,
        "failed_sign_ins_by_user": {"ada": 2},
        "audit_sequences": [2, 3, 4],
    }
    assert result["status"] == FAIL


def test_failed_sign_ins_below_the_threshold_are_evidence_only() -> None:
    trail = [record(i, "auth:Login", "failure", user="bob") for i in range(1, FAILED_SIGN_INS_TO_REVIEW)]
    result = _run("failed_sign_ins_and_lockouts", evidence(trail=trail))
    assert (result["status"], result["findings"]) == (PASS, [])
    assert result["evidence"]["failed_sign_ins"] == FAILED_SIGN_INS_TO_REVIEW - 1
    assert result["evidence"]["lockouts"] == 0


# ---------------------------------------------------------------------- security events


@pytest.mark.parametrize("kind", sorted(REVIEW_REQUIRED))
def test_an_alert_that_requires_review_is_a_finding(kind: AlertKind) -> None:
    result = _run("security_events", evidence(trail=_trail(_alert(4, kind), _alert(5, kind))))
    assert result["findings"] == [_cited(2, 4, event=action_of(kind), issue="may be an attack: review")]
    assert result["status"] == FAIL


@pytest.mark.parametrize("kind", sorted(set(AlertKind) - REVIEW_REQUIRED))
def test_other_security_events_are_evidence_only(kind: AlertKind) -> None:
    result = _run("security_events", evidence(trail=_trail(_alert(4, kind))))
    assert (result["status"], result["findings"]) == (PASS, [])
    assert result["evidence"] == {"events": {action_of(kind): 1}, "audit_sequences": [4]}


# ---------------------------------------------------------------------- network access


def test_source_ip_refusals_are_cited_as_evidence() -> None:
    trail = _trail(_alert(4, AlertKind.SOURCE_IP_NOT_ALLOWED), record(5, "files:Read", reason="source_ip"))
    result = _run("network_access", evidence(trail=trail))
    assert (result["status"], result["findings"]) == (PASS, [])
    assert result["evidence"] == {"ip_allow_list": ["10.0.0.0/8"], "refusals_audit_sequences": [4]}


# ---------------------------------------------------------------------- subject requests


def test_subject_requests_that_succeeded_are_evidence_only() -> None:
    trail = _trail(record(4, "gdpr:Export", target={"user": "bob"}), record(5, "gdpr:Erase"))
    result = _run("subject_requests", evidence(trail=trail))
    assert (result["status"], result["findings"]) == (PASS, [])
    assert result["evidence"] == {
        "requests": 2,
        "by_action": {"gdpr:Erase": 1, "gdpr:Export": 1},
        "audit_sequences": [4, 5],
    }


def test_a_refused_subject_request_is_a_finding_too() -> None:
    result = _run("subject_requests", evidence(trail=_trail(record(4, "gdpr:Export", "denied"))))
    assert result["findings"] == [
        _cited(1, 4, issue="the request did not succeed", action="gdpr:Export", outcome="denied")
    ]
    assert result["status"] == FAIL


@pytest.mark.parametrize("period", ["1970-01", "2026-Q4", "9998-Q4", "9998-12"])
def test_every_period_the_pattern_admits_has_bounds(period: str) -> None:
    start, end = period_bounds(period)
    assert start < end


@pytest.mark.parametrize("period", ["9999-Q4", "9999-12", "0000-01", "1969-12"])
def test_a_period_at_the_edge_of_time_is_a_400(period: str) -> None:
    with pytest.raises(ValidationFailed):
        period_bounds(period)
