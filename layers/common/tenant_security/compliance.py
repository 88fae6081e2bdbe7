"""Compliance reports of a tenant for a period (SOX, GDPR, ISO 27001), built only from evidence.

A framework is a list of controls (SOX IT general controls, GDPR articles, ISO 27001 Annex A
controls), each mapped to the checks that evidence it; a check is computed once per report.

Each check ends ``pass``, ``fail`` or ``insufficient_evidence`` and cites what it rests on (users,
roles, audit sequence numbers, key and bucket state). The report is ``non_compliant`` if any check fails,
``insufficient_evidence`` if any lacks evidence, and ``compliant`` only when every check passed on
evidence -- never by default (the seed's reporter started from "compliant").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from tenant_security.audit.reader import AuditReader, decode_next
from tenant_security.audit.verify import ChainVerifier
from tenant_security.aws import error_code
from tenant_security.config import KEY_PURPOSES, Settings
from tenant_security.errors import NotFound, ValidationFailed
from tenant_security.identity.users import User, UserStore
from tenant_security.tenants import TenantRecord

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient_evidence"
PERIOD_PATTERN = r"^\d{4}-(Q[1-4]|(0[1-9]|1[0-2]))$"
_PERIOD = re.compile(PERIOD_PATTERN)
MAX_RECORDS = 10_000
PRIVILEGED_ACTIONS = (
    "tenants:Create",
    "tenants:Delete",
    "tenants:Suspend",
    "tenants:Reinstate",
    "users:Create",
    "users:Delete",
    "users:WriteRoles",
    "policies:Write",
    "quotas:Write",
    "sessions:Revoke",
    "secrets:Write",
    "gdpr:Erase",
)


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``2026-Q4`` or ``2026-11`` → [start, end) in UTC; 400 otherwise."""
    if not _PERIOD.fullmatch(period):
        raise ValidationFailed(
            "invalid period",
            fields=[{"field": "query.period", "message": "a quarter (2026-Q4) or a month (2026-11)"}],
        )
    year, part = period.split("-")
    if part.startswith("Q"):
        first_month, months = 3 * (int(part[1]) - 1) + 1, 3
    else:
        first_month, months = int(part), 1
    start = datetime(int(year), first_month, 1, tzinfo=UTC)
    end_month = first_month + months
    end = datetime(int(year) + (end_month > 12), (end_month - 1) % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _overall(statuses: Iterable[str]) -> str:
    found = set(statuses)
    if FAIL in found:
        return "non_compliant"
    if INSUFFICIENT in found:
        return "insufficient_evidence"
    return "compliant"


@dataclass(frozen=True)
class Evidence:
    """What a report may rest on: the tenant's users, its trail in the period and the chain
    verifier's answer; with ``tenant`` its policy, with ``platform`` the state of its keys and
    buckets (see :class:`TenantControls`)."""

    tenant_id: str
    period: str
    users: list[User]
    records: list[dict[str, Any]]
    truncated: bool
    integrity: dict[str, Any]
    tenant: TenantRecord | None = None
    platform: dict[str, Any] = field(default_factory=dict)


def _check(check_id: str, status: str, findings: list[Any], evidence: dict[str, Any]) -> dict[str, Any]:
    return {"id": check_id, "status": status, "findings": findings, "evidence": evidence}


class Checks:
    """Every check of every framework; each judges only what the evidence shows."""

    def __init__(self, conflicts: Iterable[tuple[str, str]]) -> None:
        self.conflicts = [tuple(sorted(pair)) for pair in conflicts]

    # ------------------------------------------------------------------ people and access
    def segregation_of_duties(self, e: Evidence) -> dict[str, Any]:
        findings = [
            {"user": u.username, "conflicting_roles": list(pair)}
            for u in e.users
            for pair in self.conflicts
            if set(pair) <= set(u.roles)
        ]
        status = INSUFFICIENT if not e.users else (FAIL if findings else PASS)
        evidence = {"users_examined": len(e.users), "conflicting_pairs": [list(p) for p in self.conflicts]}
        return _check("segregation_of_duties", status, findings, evidence)

    def privileged_actions(self, e: Evidence) -> dict[str, Any]:
        by_actor: dict[tuple[str, str], list[int]] = {}
        for r in e.records:
            if r.get("action") in PRIVILEGED_ACTIONS and r.get("outcome") == "success":
                key = (str(r["action"]), str((r.get("actor") or {}).get("user")))
                by_actor.setdefault(key, []).append(int(r["sequence"]))
        findings = [
            {"action": action, "user": user, "count": len(seqs), "audit_sequences": seqs[:50]}
            for (action, user), seqs in sorted(by_actor.items())
        ]
        # Privileged actions are reported, not judged; without a trail there is nothing to report.
        status = PASS if e.records else INSUFFICIENT
        return _check("privileged_actions", status, findings, {"records_examined": len(e.records)})

    def mfa_coverage(self, e: Evidence) -> dict[str, Any]:
        active = [u for u in e.users if u.status == "ACTIVE"]
        missing = sorted(u.username for u in active if not u.mfa_enrolled)
        findings: list[Any] = [{"user": name, "issue": "no MFA enrolled"} for name in missing]
        required = e.tenant.policies.access_control.mfa_required if e.tenant else None
        if required is False:
            findings.append({"policy": "access_control.mfa_required", "issue": "MFA is not required"})
        status = INSUFFICIENT if not active else (FAIL if findings else PASS)
        evidence = {
            "active_users": len(active),
            "enrolled": len(active) - len(missing),
            "mfa_required": required,
        }
        return _check("mfa_coverage", status, findings, evidence)

    def failed_sign_ins_and_lockouts(self, e: Evidence) -> dict[str, Any]:
        failed = [
            r
            for r in e.records
            if str(r.get("action", "")).startswith("auth:") and r.get("outcome") != "success"
        ]
        lockouts = [r for r in e.records if r.get("action") in ("security:lockout", "security:locked_out")]
        per_user = Counter(str((r.get("actor") or {}).get("user")) for r in failed)
        evidence = {
            "failed_sign_ins": len(failed),
            "lockouts": len(lockouts),
            "audit_sequences": sorted(int(r["sequence"]) for r in failed + lockouts)[:100],
        }
        findings = [{"user": u, "failed_sign_ins": n} for u, n in per_user.most_common(20)]
        return _check("failed_sign_ins_and_lockouts", PASS if e.records else INSUFFICIENT, findings, evidence)

    def network_access(self, e: Evidence) -> dict[str, Any]:
        if e.tenant is None:
            return _check("network_access", INSUFFICIENT, [], {})
        allowed = e.tenant.policies.access_control.ip_whitelist
        findings = (
            [] if allowed else [{"policy": "access_control.ip_whitelist", "issue": "any source address"}]
        )
        refused = [
            int(r["sequence"])
            for r in e.records
            if "source_ip" in str(r.get("reason", "")) or r.get("action") == "security:source_ip_not_allowed"
        ]
        evidence = {"ip_allow_list": allowed, "refusals_audit_sequences": refused[:100]}
        return _check("network_access", FAIL if findings else PASS, findings, evidence)

    # ------------------------------------------------------------------ logging
    def audit_chain_integrity(self, e: Evidence) -> dict[str, Any]:
        integrity = e.integrity
        if integrity.get("checked", 0) == 0:
            status = INSUFFICIENT
        else:
            status = PASS if integrity.get("status") == "VALID" else FAIL
        evidence = {k: integrity.get(k) for k in ("status", "checked", "from", "to", "checkpoints_checked")}
        return _check("audit_chain_integrity", status, integrity.get("problems", [])[:50], evidence)

    def audit_retention(self, e: Evidence) -> dict[str, Any]:
        lock = e.platform.get("audit_lock")
        if e.tenant is None or not lock:
            return _check("audit_retention", INSUFFICIENT, [], {"object_lock": lock})
        wanted = e.tenant.policies.audit_logging.retention_days
        findings = []
        if lock.get("mode") != "COMPLIANCE":
            findings.append({"issue": f"object lock mode {lock.get('mode')}, not COMPLIANCE"})
        if int(lock.get("days") or 0) < wanted:
            findings.append({"issue": f"retention {lock.get('days')} days, policy wants {wanted}"})
        evidence = {"object_lock": lock, "policy_retention_days": wanted}
        return _check("audit_retention", FAIL if findings else PASS, findings, evidence)

    def security_events(self, e: Evidence) -> dict[str, Any]:
        events = [r for r in e.records if str(r.get("action", "")).startswith("security:")]
        kinds = Counter(str(r["action"]) for r in events)
        findings = [{"event": k, "count": n} for k, n in sorted(kinds.items())]
        evidence = {"audit_sequences": sorted(int(r["sequence"]) for r in events)[:100]}
        return _check("security_events", PASS if e.records else INSUFFICIENT, findings, evidence)

    # ------------------------------------------------------------------ cryptography and data
    def encryption_at_rest(self, e: Evidence) -> dict[str, Any]:
        keys, bucket = e.platform.get("keys") or {}, e.platform.get("data_bucket_encryption")
        data_key = keys.get("data")
        if not data_key or bucket is None:
            return _check("encryption_at_rest", INSUFFICIENT, [], {"data_key": data_key, "bucket": bucket})
        findings = []
        if data_key.get("state") != "Enabled":
            findings.append({"key": "data", "issue": f"tenant data key is {data_key.get('state')}"})
        if bucket.get("algorithm") != "aws:kms" or bucket.get("key") != data_key.get("arn"):
            findings.append(
                {"bucket": "data", "issue": "default encryption is not SSE-KMS under the tenant data key"}
            )
        evidence = {"data_key": data_key, "data_bucket_encryption": bucket}
        return _check("encryption_at_rest", FAIL if findings else PASS, findings, evidence)

    def key_rotation(self, e: Evidence) -> dict[str, Any]:
        keys = {p: k for p, k in (e.platform.get("keys") or {}).items() if k}
        if not keys:
            return _check("key_rotation", INSUFFICIENT, [], {})
        findings = [
            {"key": p, "issue": "automatic rotation is off"}
            for p, k in keys.items()
            if not k["rotation_enabled"]
        ]
        evidence = {
            "keys": {
                p: {"rotation_enabled": k["rotation_enabled"], "state": k["state"]} for p, k in keys.items()
            },
            "policy_rotation_days": e.tenant.policies.data_protection.key_rotation_days if e.tenant else None,
        }
        return _check("key_rotation", FAIL if findings else PASS, findings, evidence)

    def data_locality(self, e: Evidence) -> dict[str, Any]:
        keys = {p: k for p, k in (e.platform.get("keys") or {}).items() if k}
        if e.tenant is None or not keys:
            return _check("data_locality", INSUFFICIENT, [], {})
        allowed = e.tenant.policies.data_protection.data_locality
        home = e.platform.get("region")
        findings: list[Any] = (
            [{"region": home, "issue": "data stored outside data_locality"}] if home not in allowed else []
        )
        findings += [
            {"key": p, "region": r, "issue": "key replica outside data_locality"}
            for p, k in keys.items()
            for r in k.get("replica_regions", [])
            if r not in allowed
        ]
        evidence = {
            "data_locality": allowed,
            "stored_in": home,
            "key_replicas": {p: k.get("replica_regions", []) for p, k in keys.items()},
            "cross_region_encryption": e.tenant.policies.data_protection.cross_region_encryption,
        }
        return _check("data_locality", FAIL if findings else PASS, findings, evidence)

    def pii_protection(self, e: Evidence) -> dict[str, Any]:
        if e.tenant is None:
            return _check("pii_protection", INSUFFICIENT, [], {})
        handling = e.tenant.policies.compliance.pii_handling
        findings = (
            [{"policy": "compliance.pii_handling", "issue": "PII is kept in clear"}]
            if handling == "none"
            else []
        )
        evidence = {
            "pii_handling": handling,
            "data_classification": e.tenant.policies.compliance.data_classification,
        }
        return _check("pii_protection", FAIL if findings else PASS, findings, evidence)

    def subject_requests(self, e: Evidence) -> dict[str, Any]:
        handled = [r for r in e.records if r.get("action") in ("gdpr:Export", "gdpr:Erase")]
        findings = [
            {"action": r["action"], "outcome": r.get("outcome"), "audit_sequence": int(r["sequence"])}
            for r in handled[:100]
        ]
        # Requests are reported, not judged (none in a period is no failure).
        status = PASS if e.records else INSUFFICIENT
        return _check("subject_requests", status, findings, {"requests": len(handled)})

    def tenant_separation(self, e: Evidence) -> dict[str, Any]:
        keys = e.platform.get("keys") or {}
        if e.tenant is None or not keys:
            return _check("tenant_separation", INSUFFICIENT, [], {})
        findings = [{"key": p, "issue": "the tenant has no key of its own"} for p, k in keys.items() if not k]
        if e.tenant.isolation not in ("database", "schema"):
            findings.append({"issue": f"unknown isolation {e.tenant.isolation!r}"})
        if e.platform.get("data_bucket_encryption") is None:
            findings.append({"issue": "the tenant has no data bucket of its own"})
        evidence = {
            "database_isolation": e.tenant.isolation,
            "own_keys": sorted(p for p, k in keys.items() if k),
            "own_buckets": [b for b in (e.platform.get("data_bucket"), e.platform.get("audit_bucket")) if b],
        }
        return _check("tenant_separation", FAIL if findings else PASS, findings, evidence)


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

    def __init__(self, framework: str, conflicts: Iterable[tuple[str, str]]) -> None:
        self.framework = framework_of(framework)
        self.checks = Checks(conflicts)

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


class TenantControls:
    """The state of a tenant's keys and buckets, as KMS and S3 report it (KMS, S3 clients given)."""

    def __init__(self, settings: Settings, kms: Any, s3: Any) -> None:
        self.settings = settings
        self.kms = kms
        self.s3 = s3

    def _key(self, tenant_id: str, purpose: str) -> dict[str, Any] | None:
        try:
            meta = self.kms.describe_key(KeyId=self.settings.tenant_key_arn(tenant_id, purpose))[
                "KeyMetadata"
            ]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                return None
            raise
        rotation = self.kms.get_key_rotation_status(KeyId=meta["KeyId"])
        replicas = (meta.get("MultiRegionConfiguration") or {}).get("ReplicaKeys") or []
        return {
            "arn": meta["Arn"],
            "state": meta["KeyState"],
            "rotation_enabled": bool(rotation.get("KeyRotationEnabled")),
            "multi_region": bool(meta.get("MultiRegion")),
            "replica_regions": sorted(str(r["Region"]) for r in replicas),
        }

    def _bucket_encryption(self, bucket: str) -> dict[str, Any] | None:
        try:
            rules = self.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        except Exception as exc:
            if error_code(exc) in ("NoSuchBucket", "ServerSideEncryptionConfigurationNotFoundError", "404"):
                return None
            raise
        default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
        return {"algorithm": default.get("SSEAlgorithm"), "key": default.get("KMSMasterKeyID")}

    def _audit_lock(self, bucket: str) -> dict[str, Any] | None:
        try:
            config = self.s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        except Exception as exc:
            if error_code(exc) in ("NoSuchBucket", "ObjectLockConfigurationNotFoundError", "404"):
                return None
            raise
        retention = (config.get("Rule") or {}).get("DefaultRetention") or {}
        return {"mode": retention.get("Mode"), "days": retention.get("Days")}

    def collect(self, tenant_id: str) -> dict[str, Any]:
        """Keys by purpose, the data bucket's default encryption, the audit bucket's object lock."""
        data, audit = self.settings.data_bucket(tenant_id), self.settings.audit_bucket(tenant_id)
        encryption = self._bucket_encryption(data)
        return {
            "region": self.settings.region,
            "keys": {purpose: self._key(tenant_id, purpose) for purpose in KEY_PURPOSES},
            "data_bucket": data if encryption is not None else None,
            "data_bucket_encryption": encryption,
            "audit_bucket": audit,
            "audit_lock": self._audit_lock(audit),
        }


def gather_evidence(
    tenant: TenantRecord,
    period: str,
    users: UserStore,
    reader: AuditReader,
    bucket: str,
    verifier: ChainVerifier,
    controls: TenantControls | None = None,
) -> Evidence:
    """The evidence of ``period``: users, up to MAX_RECORDS records, their chain, keys and buckets."""
    start, end = period_bounds(period)
    tenant_id = tenant.tenant_id
    records: list[dict[str, Any]] = []
    after, truncated = None, False
    while True:
        page = reader.query(
            tenant_id, bucket, start=start, end=end - timedelta(microseconds=1), limit=200, after=after
        )
        records += page["items"]
        if not page["next"]:
            break
        if len(records) >= MAX_RECORDS:
            truncated = True
            break
        after = decode_next(page["next"])
    sequences = [int(r["sequence"]) for r in records]
    integrity = verifier.verify(tenant_id, min(sequences), max(sequences)) if sequences else {"checked": 0}
    platform = controls.collect(tenant_id) if controls is not None else {}
    return Evidence(
        tenant_id, period, users.list_users(tenant_id), records, truncated, integrity, tenant, platform
    )


def render_html(report: dict[str, Any]) -> str:
    """A readable page of the report with an SVG bar chart of activity per day."""
    days = report["activity_by_day"]
    peak = max([d["records"] for d in days] + [1])
    width = max(1, 720 // max(len(days), 1))
    bars = "".join(
        f'<rect x="{i * width}" y="{120 - 110 * d["records"] // peak}" width="{max(width - 1, 1)}" '
        f'height="{110 * d["records"] // peak}"><title>{escape(d["day"])}: {d["records"]}</title></rect>'
        for i, d in enumerate(days)
    )
    rows = "".join(
        f"<tr><td>{escape(c['id'])}</td><td class='{escape(c['status'])}'>{escape(c['status'])}</td>"
        f"<td>{len(c['findings'])}</td><td><code>{escape(str(c['evidence']))}</code></td></tr>"
        for c in report["checks"]
    )
    controls = "".join(
        f"<tr><td>{escape(c['id'])}</td><td>{escape(c['title'])}</td>"
        f"<td class='{escape(c['status'])}'>{escape(c['status'])}</td>"
        f"<td>{escape(', '.join(c['checks']))}</td></tr>"
        for c in report.get("controls", [])
    )
    findings = "".join(
        f"<li><b>{escape(c['id'])}</b>: <code>{escape(str(f))}</code></li>"
        for c in report["checks"]
        for f in c["findings"]
    )
    framework = escape(report["framework"])
    title = f"{framework} report {escape(report['tenant_id'])} {escape(report['period']['id'])}"
    chart = f'<svg role="img" aria-label="audit records per day" width="720" height="125">{bars}</svg>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px 8px}}
.fail{{color:#b00}}.pass{{color:#070}}.insufficient_evidence{{color:#a60}}rect{{fill:#36c}}</style></head>
<body><h1>{framework} report — {escape(report["tenant_id"])}, {escape(report["period"]["id"])}</h1>
<p>Status: <b class="{escape(report["status"])}">{escape(report["status"])}</b>;
{report["records_examined"]} audit records examined; generated {escape(report["generated_at"])}.</p>
<h2>Activity per day</h2>{chart}
<h2>Controls</h2><table><tr><th>control</th><th>title</th><th>status</th><th>checks</th></tr>{controls}</table>
<h2>Checks</h2><table><tr><th>check</th><th>status</th><th>findings</th><th>evidence</th></tr>{rows}</table>
<h2>Findings</h2><ul>{findings or "<li>none</li>"}</ul></body></html>"""
