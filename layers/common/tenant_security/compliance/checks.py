"""Every check of every framework, each judging only what the evidence shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from tenant_security.alerts import REVIEW_REQUIRED, SECURITY_ACTION_PREFIX, AlertKind, action_of
from tenant_security.audit.pii import subject_of
from tenant_security.compliance.evidence import Evidence
from tenant_security.config import Settings
from tenant_security.identity.users import UserStatus
from tenant_security.models.onboarding import Isolation

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient_evidence"
PRIVILEGED_ACTIONS = (
    "tenants:Create",
    "tenants:Delete",
    "tenants:Suspend",
    "tenants:Reinstate",
    "users:Create",
    "users:Delete",
    "users:WriteRoles",
    "roles:Write",
    "roles:Delete",
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
        active = [u for u in e.users if u.status == UserStatus.ACTIVE]
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
