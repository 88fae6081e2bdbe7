"""What a compliance report rests on: the tenant's users, its audit trail in the period, the
chain verified from the period's first record through its head, and the platform's state."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tenant_security.audit.chain import RECORD_PREFIX, sequence_of_record_key
from tenant_security.audit.objects import LockedObjects
from tenant_security.audit.reader import AuditReader
from tenant_security.audit.verify import ChainVerifier
from tenant_security.compliance.tenant_controls import TenantControls
from tenant_security.errors import ValidationFailed
from tenant_security.identity.users import User, UserStore
from tenant_security.tenants import TenantProfile

# Years 1970-9998: a period has a start and an end that datetime can hold (red team B: 9999-Q4
# and 0000-01 passed the old pattern and were a 500).
PERIOD_PATTERN = r"^(19[7-9]\d|[2-8]\d{3}|9[0-8]\d{2}|99[0-8]\d|999[0-8])-(Q[1-4]|(0[1-9]|1[0-2]))$"
_PERIOD = re.compile(PERIOD_PATTERN)
MAX_RECORDS = 10_000


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
    tenant: TenantProfile | None = None
    platform: dict[str, Any] = field(default_factory=dict)


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
    tenant: TenantProfile,
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
            tenant_id, start=start, end=end - timedelta(microseconds=1), limit=200, after=after
        )
        records += page["items"]
        if not page["next"]:
            break
        if len(records) >= MAX_RECORDS:
            truncated = True
            break
        after = page["next"]
    first = _first_sequence_from(verifier.objects, bucket, start)
    # Through the chain head (no last sequence), not the last record listed: records hidden at the
    # end of the period, or after it, are then missing records instead of passing unseen.
    integrity = verifier.verify(tenant_id, first) if first is not None else {"checked": 0}
    platform = controls.collect(tenant_id) if controls is not None else {}
    return Evidence(
        tenant_id, period, users.list_users(tenant_id), records, truncated, integrity, tenant, platform
    )
