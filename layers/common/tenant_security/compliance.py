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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from tenant_security.alerts import REVIEW_REQUIRED, SECURITY_ACTION_PREFIX, AlertKind, action_of
from tenant_security.audit.chain import RECORD_PREFIX, sequence_of_record_key
from tenant_security.audit.pii import subject_of
from tenant_security.audit.reader import AuditReader, decode_next
from tenant_security.audit.store import LockedObjects
from tenant_security.audit.verify import ChainVerifier
from tenant_security.aws import error_code
from tenant_security.config import KEY_PURPOSES, Settings
from tenant_security.errors import NotFound, ValidationFailed
from tenant_security.headers import standalone_page_csp
from tenant_security.identity.users import User, UserStore
from tenant_security.models.onboarding import Isolation
from tenant_security.tenants import TenantRecord

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient_evidence"
# Years 1970-9998: a period has a start and an end that datetime can hold (red team B: 9999-Q4
# and 0000-01 passed the old pattern and were a 500).
PERIOD_PATTERN = r"^(19[7-9]\d|[2-8]\d{3}|9[0-8]\d{2}|99[0-8]\d|999[0-8])-(Q[1-4]|(0[1-9]|1[0-2]))$"
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
GDPR_REQUESTS = ("gdpr:Export", "gdpr:Erase")
SIGN_IN_PREFIX = "auth:"
LOCKOUT = action_of(AlertKind.USER_LOCKED_OUT)
SOURCE_IP_REFUSED = action_of(AlertKind.SOURCE_IP_NOT_ALLOWED)
REVIEW_ACTIONS = frozenset(action_of(kind) for kind in REVIEW_REQUIRED)
# Failed sign-ins of one user in a period that an auditor must look at: twice the five consecutive
# failures that lock a user out, so someone kept trying across lockouts or between successes.
FAILED_SIGN_INS_TO_REVIEW = 10
# Refused or failed privileged actions of one actor in a period that an auditor must look at.
FAILED_PRIVILEGED_ACTIONS_TO_REVIEW = 3
MAX_CITED = 100  # audit sequence numbers cited per finding or evidence list
# Only a platform-admin of the platform tenant may act in another tenant (authz/rbac.py).
DEFAULT_PLATFORM_TENANT: str = Settings.model_fields["platform_tenant_id"].default


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
    verifier's answer from the period's first record through the chain head; with ``tenant`` its
    policy, with ``platform`` the state of its keys and buckets (see :class:`TenantControls`)."""

    tenant_id: str
    period: str
    users: list[User]
    records: list[dict[str, Any]]
    truncated: bool
    integrity: dict[str, Any]
    tenant: TenantRecord | None = None
    platform: dict[str, Any] = field(default_factory=dict)


def _check(
    check_id: str, findings: list[Any], evidence: dict[str, Any], *, examined: bool = True
) -> dict[str, Any]:
    """A check's result, its status following from its findings and never from a default.

    ``examined``: whether there was anything to judge (a trail, users, a policy, keys...).
    """
    status = INSUFFICIENT if not examined else (FAIL if findings else PASS)
    return {"id": check_id, "status": status, "findings": findings, "evidence": evidence}


def _cited(records: list[dict[str, Any]], **what: Any) -> dict[str, Any]:
    """``what``, with how many records show it and their audit sequence numbers."""
    return {**what, "count": len(records), "audit_sequences": _sequences(records)}


def _sequences(records: Iterable[dict[str, Any]]) -> list[int]:
    return sorted(int(r["sequence"]) for r in records)[:MAX_CITED]


def _grouped(
    records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> dict[Any, list[dict[str, Any]]]:
    """The records by ``key``, keys in sorted order (a report reads the same every time)."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return dict(sorted(groups.items()))


def _action(record: dict[str, Any]) -> str:
    return str(record.get("action", ""))


def _actor_field(record: dict[str, Any], name: str) -> Any:
    return (record.get("actor") or {}).get(name)


def _actor(record: dict[str, Any]) -> str:
    """Who acted, named as the trail names a subject (``tenant:user`` from another tenant)."""
    return subject_of(record, "actor")


def _succeeded(record: dict[str, Any]) -> bool:
    return record.get("outcome") == "success"


class Checks:
    """Every check of every framework; each judges only what the evidence shows.

    Findings are what an auditor must look at, evidence is what was examined: a check fails when it
    has findings, passes when it has none on real evidence, and lacks evidence otherwise.
    """

    def __init__(
        self, conflicts: Iterable[tuple[str, str]], platform_tenant: str = DEFAULT_PLATFORM_TENANT
    ) -> None:
        """``conflicts``: the role pairs no user may hold together; ``platform_tenant``: the
        tenant whose platform-admins may act in every tenant."""
        self.conflicts = [tuple(sorted(pair)) for pair in conflicts]
        self.platform_tenant = platform_tenant

    # ------------------------------------------------------------------ people and access
    def segregation_of_duties(self, e: Evidence) -> dict[str, Any]:
        """Each user holding both roles of a conflicting pair is a finding."""
        findings = [
            {"user": u.username, "conflicting_roles": list(pair)}
            for u in e.users
            for pair in self.conflicts
            if set(pair) <= set(u.roles)
        ]
        evidence = {"users_examined": len(e.users), "conflicting_pairs": [list(p) for p in self.conflicts]}
        return _check("segregation_of_duties", findings, evidence, examined=bool(e.users))

    def privileged_actions(self, e: Evidence) -> dict[str, Any]:
        """Findings: a privileged action done by no attributable user, or by a caller of another
        tenant than this one and the platform's, and an actor whose privileged actions were refused
        or failed FAILED_PRIVILEGED_ACTIONS_TO_REVIEW times or more. Who did what is evidence."""
        privileged = [r for r in e.records if r.get("action") in PRIVILEGED_ACTIONS]
        done = [r for r in privileged if _succeeded(r)]
        trusted_tenants = (None, e.tenant_id, self.platform_tenant)
        unattributed = [r for r in done if not _actor_field(r, "user")]
        outsiders = [
            r for r in done if _actor_field(r, "user") and _actor_field(r, "tenant_id") not in trusted_tenants
        ]
        refused = _grouped((r for r in privileged if not _succeeded(r)), _actor)
        findings = [
            _cited(records, issue="no attributable user", action=action)
            for action, records in _grouped(unattributed, _action).items()
        ]
        findings += [
            _cited(records, issue="done by a caller outside the tenant", action=action, user=user)
            for (action, user), records in _grouped(outsiders, lambda r: (_action(r), _actor(r))).items()
        ]
        findings += [
            _cited(records, issue="privileged actions refused or failed repeatedly", user=user)
            for user, records in refused.items()
            if len(records) >= FAILED_PRIVILEGED_ACTIONS_TO_REVIEW
        ]
        evidence = {
            "records_examined": len(e.records),
            "refused_or_failed": sum(len(records) for records in refused.values()),
            "by_actor": [
                _cited(records, action=action, user=user)
                for (action, user), records in _grouped(done, lambda r: (_action(r), _actor(r))).items()
            ],
        }
        return _check("privileged_actions", findings, evidence, examined=bool(e.records))

    def mfa_coverage(self, e: Evidence) -> dict[str, Any]:
        """Each active user without MFA, and a policy that does not require MFA, are findings."""
        active = [u for u in e.users if u.status == "ACTIVE"]
        missing = sorted(u.username for u in active if not u.mfa_enrolled)
        findings: list[Any] = [{"user": name, "issue": "no MFA enrolled"} for name in missing]
        required = e.tenant.policies.access_control.mfa_required if e.tenant else None
        if required is False:
            findings.append({"policy": "access_control.mfa_required", "issue": "MFA is not required"})
        evidence = {
            "active_users": len(active),
            "enrolled": len(active) - len(missing),
            "mfa_required": required,
        }
        return _check("mfa_coverage", findings, evidence, examined=bool(active))

    def failed_sign_ins_and_lockouts(self, e: Evidence) -> dict[str, Any]:
        """Findings: every user locked out, and every user with FAILED_SIGN_INS_TO_REVIEW failed
        sign-ins or more in the period; the counts are evidence."""
        failed = [r for r in e.records if _action(r).startswith(SIGN_IN_PREFIX) and not _succeeded(r)]
        lockouts = [r for r in e.records if r.get("action") == LOCKOUT]
        failed_by_user = _grouped(failed, _actor)
        findings = [
            _cited(records, issue="locked out", user=user)
            for user, records in _grouped(lockouts, _actor).items()
        ]
        findings += [
            _cited(records, issue=f"{FAILED_SIGN_INS_TO_REVIEW} or more failed sign-ins", user=user)
            for user, records in failed_by_user.items()
            if len(records) >= FAILED_SIGN_INS_TO_REVIEW
        ]
        evidence = {
            "failed_sign_ins": len(failed),
            "lockouts": len(lockouts),
            "failed_sign_ins_by_user": dict(
                Counter({user: len(records) for user, records in failed_by_user.items()}).most_common(20)
            ),
            "audit_sequences": _sequences(failed + lockouts),
        }
        return _check("failed_sign_ins_and_lockouts", findings, evidence, examined=bool(e.records))

    def network_access(self, e: Evidence) -> dict[str, Any]:
        """A policy that allows any source address is a finding; refusals are evidence."""
        if e.tenant is None:
            return _check("network_access", [], {}, examined=False)
        allowed = e.tenant.policies.access_control.ip_whitelist
        findings = (
            [] if allowed else [{"policy": "access_control.ip_whitelist", "issue": "any source address"}]
        )
        refused = [r for r in e.records if r.get("action") == SOURCE_IP_REFUSED]
        evidence = {"ip_allow_list": allowed, "refusals_audit_sequences": _sequences(refused)}
        return _check("network_access", findings, evidence)

    # ------------------------------------------------------------------ logging
    def audit_chain_integrity(self, e: Evidence) -> dict[str, Any]:
        """Every problem the verifier found is a finding; nothing verified is no evidence."""
        integrity = e.integrity
        problems = integrity.get("problems", [])
        evidence = {
            k: integrity.get(k)
            for k in ("status", "checked", "from", "to", "head_sequence", "checkpoints_checked")
        }
        # A problem found outside what was checked (an object beyond the head) still fails.
        examined = integrity.get("checked", 0) > 0 or bool(problems)
        return _check("audit_chain_integrity", problems[:50], evidence, examined=examined)

    def audit_retention(self, e: Evidence) -> dict[str, Any]:
        """An object lock other than COMPLIANCE, or shorter than the policy's retention, is a finding."""
        lock = e.platform.get("audit_lock")
        if e.tenant is None or not lock:
            return _check("audit_retention", [], {"object_lock": lock}, examined=False)
        wanted = e.tenant.policies.audit_logging.retention_days
        findings = []
        if lock.get("mode") != "COMPLIANCE":
            findings.append({"issue": f"object lock mode {lock.get('mode')}, not COMPLIANCE"})
        if int(lock.get("days") or 0) < wanted:
            findings.append({"issue": f"retention {lock.get('days')} days, policy wants {wanted}"})
        evidence = {"object_lock": lock, "policy_retention_days": wanted}
        return _check("audit_retention", findings, evidence)

    def security_events(self, e: Evidence) -> dict[str, Any]:
        """Alerts of a kind in REVIEW_REQUIRED are findings; every security event is evidence."""
        events = [r for r in e.records if _action(r).startswith(SECURITY_ACTION_PREFIX)]
        by_kind = _grouped(events, _action)
        findings = [
            _cited(records, event=kind, issue="may be an attack: review")
            for kind, records in by_kind.items()
            if kind in REVIEW_ACTIONS
        ]
        evidence = {
            "events": {kind: len(records) for kind, records in by_kind.items()},
            "audit_sequences": _sequences(events),
        }
        return _check("security_events", findings, evidence, examined=bool(e.records))

    # ------------------------------------------------------------------ cryptography and data
    def encryption_at_rest(self, e: Evidence) -> dict[str, Any]:
        """A data key not enabled, or a data bucket not encrypted under it by default, is a finding."""
        keys, bucket = e.platform.get("keys") or {}, e.platform.get("data_bucket_encryption")
        data_key = keys.get("data")
        if not data_key or bucket is None:
            evidence = {"data_key": data_key, "bucket": bucket}
            return _check("encryption_at_rest", [], evidence, examined=False)
        findings = []
        if data_key.get("state") != "Enabled":
            findings.append({"key": "data", "issue": f"tenant data key is {data_key.get('state')}"})
        if bucket.get("algorithm") != "aws:kms" or bucket.get("key") != data_key.get("arn"):
            findings.append(
                {"bucket": "data", "issue": "default encryption is not SSE-KMS under the tenant data key"}
            )
        evidence = {"data_key": data_key, "data_bucket_encryption": bucket}
        return _check("encryption_at_rest", findings, evidence)

    def key_rotation(self, e: Evidence) -> dict[str, Any]:
        """Each tenant key without automatic rotation is a finding."""
        keys = {p: k for p, k in (e.platform.get("keys") or {}).items() if k}
        if not keys:
            return _check("key_rotation", [], {}, examined=False)
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
        return _check("key_rotation", findings, evidence)

    def data_locality(self, e: Evidence) -> dict[str, Any]:
        """Data stored, or a key replicated, outside the policy's data_locality is a finding."""
        keys = {p: k for p, k in (e.platform.get("keys") or {}).items() if k}
        if e.tenant is None or not keys:
            return _check("data_locality", [], {}, examined=False)
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
        return _check("data_locality", findings, evidence)

    def pii_protection(self, e: Evidence) -> dict[str, Any]:
        """A policy that keeps PII in clear (``pii_handling: none``) is a finding."""
        if e.tenant is None:
            return _check("pii_protection", [], {}, examined=False)
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
        return _check("pii_protection", findings, evidence)

    def subject_requests(self, e: Evidence) -> dict[str, Any]:
        """A GDPR request (export, erasure) that did not end in success is a finding; the
        requests are evidence (none in a period is no failure)."""
        requests = [r for r in e.records if r.get("action") in GDPR_REQUESTS]
        findings = [
            _cited(records, issue="the request did not succeed", action=action, outcome=outcome)
            for (action, outcome), records in _grouped(
                (r for r in requests if not _succeeded(r)), lambda r: (_action(r), str(r.get("outcome")))
            ).items()
        ]
        evidence = {
            "requests": len(requests),
            "by_action": {action: len(records) for action, records in _grouped(requests, _action).items()},
            "audit_sequences": _sequences(requests),
        }
        return _check("subject_requests", findings, evidence, examined=bool(e.records))

    def tenant_separation(self, e: Evidence) -> dict[str, Any]:
        """A tenant key or data bucket missing, or an unknown database isolation, is a finding."""
        keys = e.platform.get("keys") or {}
        if e.tenant is None or not keys:
            return _check("tenant_separation", [], {}, examined=False)
        findings = [{"key": p, "issue": "the tenant has no key of its own"} for p, k in keys.items() if not k]
        if e.tenant.isolation not in tuple(Isolation):
            findings.append({"issue": f"unknown isolation {e.tenant.isolation!r}"})
        if e.platform.get("data_bucket_encryption") is None:
            findings.append({"issue": "the tenant has no data bucket of its own"})
        evidence = {
            "database_isolation": e.tenant.isolation,
            "own_keys": sorted(p for p, k in keys.items() if k),
            "own_buckets": [b for b in (e.platform.get("data_bucket"), e.platform.get("audit_bucket")) if b],
        }
        return _check("tenant_separation", findings, evidence)


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


def _first_sequence_from(objects: LockedObjects, bucket: str, start: datetime) -> int | None:
    """The lowest sequence stored under a day from ``start`` on, hidden records included (None
    when there is none).

    Record keys name the day they were appended (``audit/YYYY/MM/DD/<sequence>.json``) and a locked
    version cannot be removed, only hidden by a delete marker, which still lists its key: hiding
    the first records of a period cannot move where its verification starts. A record key added
    out of place can only move it earlier, so more is verified, and the verifier names the key.
    """
    first_day = f"{RECORD_PREFIX}{start:%Y/%m/%d}/"
    sequences = (
        sequence_of_record_key(key) for key in objects.versions(bucket, RECORD_PREFIX) if key >= first_day
    )
    return min((s for s in sequences if s is not None), default=None)


def gather_evidence(
    tenant: TenantRecord,
    period: str,
    users: UserStore,
    reader: AuditReader,
    bucket: str,
    verifier: ChainVerifier,
    controls: TenantControls | None = None,
) -> Evidence:
    """The evidence of ``period``: users, up to MAX_RECORDS records, keys and buckets, and the
    chain verified from the period's first sequence through its head."""
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
    first = _first_sequence_from(verifier.objects, bucket, start)
    # Through the chain head (no last sequence), not the last record listed: records hidden at the
    # end of the period, or after it, are then missing records instead of passing unseen.
    integrity = verifier.verify(tenant_id, first) if first is not None else {"checked": 0}
    platform = controls.collect(tenant_id) if controls is not None else {}
    return Evidence(
        tenant_id, period, users.list_users(tenant_id), records, truncated, integrity, tenant, platform
    )


# The HTML report's one style sheet, inline (the page is self-contained: an auditor can keep it);
# its CSP allows exactly this text by hash (REPORT_CSP).
REPORT_STYLE = (
    "body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px}"
    ".fail{color:#b00}.pass{color:#070}.insufficient_evidence{color:#a60}rect{fill:#36c}"
)
REPORT_CSP = standalone_page_csp(REPORT_STYLE)


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
<style>{REPORT_STYLE}</style></head>
<body><h1>{framework} report — {escape(report["tenant_id"])}, {escape(report["period"]["id"])}</h1>
<p>Status: <b class="{escape(report["status"])}">{escape(report["status"])}</b>;
{report["records_examined"]} audit records examined; generated {escape(report["generated_at"])}.</p>
<h2>Activity per day</h2>{chart}
<h2>Controls</h2><table><tr><th>control</th><th>title</th><th>status</th><th>checks</th></tr>{controls}</table>
<h2>Checks</h2><table><tr><th>check</th><th>status</th><th>findings</th><th>evidence</th></tr>{rows}</table>
<h2>Findings</h2><ul>{findings or "<li>none</li>"}</ul></body></html>"""
