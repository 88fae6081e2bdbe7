"""The audit reader's ``next`` tokens: opaque, bound to the tenant and to the query's filters.

A token is URL-safe base64 of ``{"v": 2, "t": tenant, "f": filters' fingerprint, "s": sequence,
"at": recorded_at}``: where the last page ended, nothing more. The reader rebuilds every DynamoDB
key from the request (the tenant's own partition) and uses the token's position only as the low
end of a key range, so a token is never a way into another tenant's records: one of another
tenant, or of other filters, or that we did not issue, is a 400. It is not signed: a caller who
edits the position of a token of their own query only skips ahead in a trail they may read.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenant_security import paging
from tenant_security.errors import ValidationFailed

TOKEN_VERSION = 2
LAST_SEQUENCE = 10**16 - 1
_TIME_TEXT = re.compile(r"[0-9T:.+\-]{0,40}")


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last record's sequence and ``recorded_at``."""

    sequence: int
    recorded_at: str


def encode_next(tenant_id: str, filters: str, cursor: Cursor) -> str:
    """The opaque ``next`` token: version, tenant, the filters' fingerprint and the position."""
    document = {
        "v": TOKEN_VERSION,
        "t": tenant_id,
        "f": filters,
        "s": cursor.sequence,
        "at": cursor.recorded_at,
    }
    return paging.encode_next(json.dumps(document, separators=(",", ":")))


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("v") != TOKEN_VERSION:
        return None
    sequence, recorded_at = document.get("s"), document.get("at")
    if not (isinstance(sequence, int) and not isinstance(sequence, bool) and 1 <= sequence <= LAST_SEQUENCE):
        return None
    if not (isinstance(recorded_at, str) and _TIME_TEXT.fullmatch(recorded_at)):
        return None
    return document if isinstance(document.get("t"), str) and isinstance(document.get("f"), str) else None


def decode_next(token: str, tenant_id: str, filters: str) -> Cursor:
    """The position a token of :meth:`AuditReader.query` continues after: 400 for a token we did
    not issue, or issued for another tenant or other filters (a token never crosses tenants)."""
    document = _parsed(paging.decode_next(token, lambda text: _parsed(text) is not None)) or {}
    if document.get("t") != tenant_id or document.get("f") != filters:
        raise ValidationFailed(
            "invalid next token",
            fields=[{"field": "query.next", "message": "not a page token of this tenant and query"}],
        )
    return Cursor(document["s"], document["at"])


def fingerprint(*filters: Any) -> str:
    """What a page token is bound to besides the tenant: the query's filters."""
    text = json.dumps([f.isoformat() if isinstance(f, datetime) else f for f in filters])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
