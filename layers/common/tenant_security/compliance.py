"""The SOX report of a tenant for a period, built only from evidence.

Each check ends ``pass``, ``fail`` or ``insufficient_evidence`` and cites what it rests on (users,
roles, audit sequence numbers). The report is ``non_compliant`` if any check fails,
``insufficient_evidence`` if any lacks evidence, and ``compliant`` only when every check passed on
evidence -- never by default (the seed's reporter started from "compliant").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from tenant_security.audit.reader import AuditReader, decode_next
from tenant_security.audit.verify import ChainVerifier
from tenant_security.errors import ValidationFailed
from tenant_security.identity.users import User, UserStore

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


class SoxReporter:
    """Builds the report from the tenant's users, its trail and the chain verifier's answer."""

    def __init__(self, conflicts: Iterable[tuple[str, str]]) -> None:
        self.conflicts = [tuple(sorted(pair)) for pair in conflicts]

    def report(
        self,
        tenant_id: str,
        period: str,
        users: list[User],
        records: list[dict[str, Any]],
        truncated: bool,
        integrity: dict[str, Any],
    ) -> dict[str, Any]:
        start, end = period_bounds(period)
        checks = [
            self._segregation(users),
            self._privileged(records),
            self._mfa(users),
            self._sign_ins(records),
            self._integrity(integrity, records),
        ]
        return {
            "tenant_id": tenant_id,
            "framework": "SOX",
            "period": {"id": period, "from": start.isoformat(), "to": end.isoformat()},
            "generated_at": datetime.now(UTC).isoformat(),
            "status": _overall(c["status"] for c in checks),
            "records_examined": len(records),
            "records_truncated": truncated,
            "checks": checks,
            "activity_by_day": self._by_day(records, start, end),
        }

    def _segregation(self, users: list[User]) -> dict[str, Any]:
        findings = [
            {"user": u.username, "conflicting_roles": list(pair)}
            for u in users
            for pair in self.conflicts
            if set(pair) <= set(u.roles)
        ]
        status = INSUFFICIENT if not users else (FAIL if findings else PASS)
        return {
            "id": "segregation_of_duties",
            "status": status,
            "findings": findings,
            "evidence": {
                "users_examined": len(users),
                "conflicting_pairs": [list(p) for p in self.conflicts],
            },
        }

    def _privileged(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        by_actor: dict[tuple[str, str], list[int]] = {}
        for r in records:
            if r.get("action") in PRIVILEGED_ACTIONS and r.get("outcome") == "success":
                key = (str(r["action"]), str((r.get("actor") or {}).get("user")))
                by_actor.setdefault(key, []).append(int(r["sequence"]))
        findings = [
            {"action": action, "user": user, "count": len(seqs), "audit_sequences": seqs[:50]}
            for (action, user), seqs in sorted(by_actor.items())
        ]
        # Privileged actions are reported, not judged; without a trail there is nothing to report.
        return {
            "id": "privileged_actions",
            "status": PASS if records else INSUFFICIENT,
            "findings": findings,
            "evidence": {"records_examined": len(records)},
        }

    def _mfa(self, users: list[User]) -> dict[str, Any]:
        missing = sorted(u.username for u in users if u.status == "ACTIVE" and not u.mfa_enrolled)
        active = [u for u in users if u.status == "ACTIVE"]
        status = INSUFFICIENT if not active else (FAIL if missing else PASS)
        return {
            "id": "mfa_coverage",
            "status": status,
            "findings": [{"user": name, "issue": "no MFA enrolled"} for name in missing],
            "evidence": {"active_users": len(active), "enrolled": len(active) - len(missing)},
        }

    def _sign_ins(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        failed = [
            r
            for r in records
            if str(r.get("action", "")).startswith("auth:") and r.get("outcome") != "success"
        ]
        lockouts = [r for r in records if r.get("action") in ("security:lockout", "security:locked_out")]
        per_user = Counter(str((r.get("actor") or {}).get("user")) for r in failed)
        return {
            "id": "failed_sign_ins_and_lockouts",
            "status": PASS if records else INSUFFICIENT,
            "findings": [{"user": u, "failed_sign_ins": n} for u, n in per_user.most_common(20)],
            "evidence": {
                "failed_sign_ins": len(failed),
                "lockouts": len(lockouts),
                "audit_sequences": sorted(int(r["sequence"]) for r in failed + lockouts)[:100],
            },
        }

    def _integrity(self, integrity: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
        if integrity.get("checked", 0) == 0:
            status = INSUFFICIENT
        else:
            status = PASS if integrity.get("status") == "VALID" else FAIL
        return {
            "id": "audit_chain_integrity",
            "status": status,
            "findings": integrity.get("problems", [])[:50],
            "evidence": {
                k: integrity.get(k) for k in ("status", "checked", "from", "to", "checkpoints_checked")
            },
        }

    @staticmethod
    def _by_day(records: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
        counts = Counter(str(r.get("recorded_at", ""))[:10] for r in records)
        days, day = [], start.date()
        while day < end.date():
            days.append({"day": day.isoformat(), "records": counts.get(day.isoformat(), 0)})
            day += timedelta(days=1)
        return days


def build_sox_report(
    tenant_id: str,
    period: str,
    conflicts: Iterable[tuple[str, str]],
    users: UserStore,
    reader: AuditReader,
    bucket: str,
    verifier: ChainVerifier,
) -> dict[str, Any]:
    """Gather the evidence of ``period`` (users, up to MAX_RECORDS records, their chain) and report."""
    start, end = period_bounds(period)
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
    return SoxReporter(conflicts).report(
        tenant_id, period, users.list_users(tenant_id), records, truncated, integrity
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
    findings = "".join(
        f"<li><b>{escape(c['id'])}</b>: <code>{escape(str(f))}</code></li>"
        for c in report["checks"]
        for f in c["findings"]
    )
    title = f"SOX report {escape(report['tenant_id'])} {escape(report['period']['id'])}"
    chart = f'<svg role="img" aria-label="audit records per day" width="720" height="125">{bars}</svg>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px 8px}}
.fail{{color:#b00}}.pass{{color:#070}}.insufficient_evidence{{color:#a60}}rect{{fill:#36c}}</style></head>
<body><h1>SOX report — {escape(report["tenant_id"])}, {escape(report["period"]["id"])}</h1>
<p>Status: <b class="{escape(report["status"])}">{escape(report["status"])}</b>;
{report["records_examined"]} audit records examined; generated {escape(report["generated_at"])}.</p>
<h2>Activity per day</h2>{chart}
<h2>Checks</h2><table><tr><th>check</th><th>status</th><th>findings</th><th>evidence</th></tr>{rows}</table>
<h2>Findings</h2><ul>{findings or "<li>none</li>"}</ul></body></html>"""
