"""The frameworks' catalogue of controls, each mapped to the checks that evidence it, and a
framework's report from the evidence."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tenant_security.compliance.checks import DEFAULT_PLATFORM_TENANT, FAIL, INSUFFICIENT, Checks
from tenant_security.compliance.evidence import Evidence, period_bounds
from tenant_security.errors import NotFound
from tenant_security.identity.users import User


def _overall(statuses: Iterable[str]) -> str:
    """A control's or report's status from its checks' statuses: compliant only when all passed."""
    found = set(statuses)
    if FAIL in found:
        return "non_compliant"
    if INSUFFICIENT in found:
        return "insufficient_evidence"
    return "compliant"


@dataclass(frozen=True)
class Control:
    """A framework's control (or article) and the checks that evidence it."""

    id: str
    title: str
    checks: tuple[str, ...]


FRAMEWORKS: dict[str, tuple[str, tuple[Control, ...]]] = {
    "sox": (
        "SOX",
        (
            Control("ITGC-AC-1", "Segregation of duties", ("segregation_of_duties",)),
            Control("ITGC-AC-2", "Privileged access is logged and attributable", ("privileged_actions",)),
            Control("ITGC-AC-3", "Authentication", ("mfa_coverage", "failed_sign_ins_and_lockouts")),
            Control("ITGC-OP-1", "Audit trail integrity", ("audit_chain_integrity",)),
        ),
    ),
    "gdpr": (
        "GDPR",
        (
            Control(
                "Art. 5(1)(f)",
                "Integrity and confidentiality",
                ("encryption_at_rest", "audit_chain_integrity"),
            ),
            Control("Art. 15, 17, 20", "Data subject access, erasure and portability", ("subject_requests",)),
            Control(
                "Art. 25", "Data protection by design and by default", ("pii_protection", "mfa_coverage")
            ),
            Control("Art. 30", "Records of processing", ("audit_chain_integrity", "audit_retention")),
            Control(
                "Art. 32", "Security of processing", ("encryption_at_rest", "key_rotation", "network_access")
            ),
            Control("Art. 33", "Breach detection and notification", ("security_events",)),
            Control("Art. 44", "Transfers outside the agreed regions", ("data_locality",)),
        ),
    ),
    "iso27001": (
        "ISO27001",
        (
            Control("A.5.3", "Segregation of duties", ("segregation_of_duties",)),
            Control("A.5.15", "Access control", ("network_access", "mfa_coverage")),
            Control("A.5.19", "Supplier relationships: tenant separation", ("tenant_separation",)),
            Control("A.8.2", "Privileged access rights", ("privileged_actions",)),
            Control("A.8.5", "Secure authentication", ("mfa_coverage", "failed_sign_ins_and_lockouts")),
            Control("A.8.15", "Logging", ("audit_chain_integrity", "audit_retention")),
            Control("A.8.16", "Monitoring activities", ("security_events", "failed_sign_ins_and_lockouts")),
            Control("A.8.22", "Segregation of networks and tenants", ("tenant_separation", "network_access")),
            Control("A.8.24", "Use of cryptography", ("encryption_at_rest", "key_rotation", "data_locality")),
        ),
    ),
}


def framework_of(name: str) -> str:
    """The report id of a framework name (``SOX``, ``gdpr``, ``ISO27001``...); 404 if it has none."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in FRAMEWORKS:
        raise NotFound(f"no report for framework {name[:32]!r}; there are reports for {sorted(FRAMEWORKS)}")
    return key


class FrameworkReporter:
    """A framework's report: its controls, each with the checks that evidence it."""

    def __init__(
        self,
        framework: str,
        conflicts: Iterable[tuple[str, str]],
        platform_tenant: str = DEFAULT_PLATFORM_TENANT,
    ) -> None:
        """``conflicts`` and ``platform_tenant`` as :class:`Checks` takes them."""
        self.framework = framework_of(framework)
        self.checks = Checks(conflicts, platform_tenant)

    def from_evidence(self, e: Evidence) -> dict[str, Any]:
        name, controls = FRAMEWORKS[self.framework]
        start, end = period_bounds(e.period)
        wanted = list(dict.fromkeys(c for control in controls for c in control.checks))
        results = {check_id: getattr(self.checks, check_id)(e) for check_id in wanted}
        return {
            "tenant_id": e.tenant_id,
            "framework": name,
            "in_policy": name in e.tenant.policies.compliance.frameworks if e.tenant else None,
            "period": {"id": e.period, "from": start.isoformat(), "to": end.isoformat()},
            "generated_at": datetime.now(UTC).isoformat(),
            "status": _overall(r["status"] for r in results.values()),
            "records_examined": len(e.records),
            "records_truncated": e.truncated,
            "controls": [
                {
                    "id": c.id,
                    "title": c.title,
                    "status": _overall(results[i]["status"] for i in c.checks),
                    "checks": list(c.checks),
                }
                for c in controls
            ],
            "checks": list(results.values()),
            "activity_by_day": _by_day(e.records, start, end),
        }

    def report(
        self,
        tenant_id: str,
        period: str,
        users: list[User],
        records: list[dict[str, Any]],
        truncated: bool,
        integrity: dict[str, Any],
    ) -> dict[str, Any]:
        """The report on users, trail and chain alone (no tenant policy, no platform evidence)."""
        return self.from_evidence(Evidence(tenant_id, period, users, records, truncated, integrity))


def _by_day(records: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    counts = Counter(str(r.get("recorded_at", ""))[:10] for r in records)
    days, day = [], start.date()
    while day < end.date():
        days.append({"day": day.isoformat(), "records": counts.get(day.isoformat(), 0)})
        day += timedelta(days=1)
    return days
