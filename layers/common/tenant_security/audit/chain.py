"""The hash chain's rules, shared by the writer and the verifier (one definition of each).

A record is a JSON object with ``sequence`` (1, 2, ...), ``prev_hash`` (the previous record's
``hash``; 64 zeros for the first) and ``hash`` = SHA-256 over the canonical JSON encoding of the
record without ``hash``. Canonical: keys sorted, no insignificant white space, UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

GENESIS_HASH = "0" * 64
RECORD_PREFIX = "audit/"
CHECKPOINT_PREFIX = "checkpoints/"
PURPOSE_AUDIT_RECORD = "audit-record"
_SEQUENCE_DIGITS = 16
_RECORD_KEY = re.compile(r"^audit/\d{4}/\d{2}/\d{2}/(\d{16})\.json$")
_CHECKPOINT_KEY = re.compile(r"^checkpoints/(\d{16})\.json$")


def canonical(document: Any) -> bytes:
    """The one byte encoding that is hashed and signed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of the record without its own ``hash`` field."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its ``hash`` set."""
    return {**record, "hash": record_hash(record)}


def record_key(sequence: int, recorded_at: datetime) -> str:
    """``audit/YYYY/MM/DD/<sequence>.json``: the day the writer appended it, then the sequence."""
    return f"{RECORD_PREFIX}{recorded_at:%Y/%m/%d}/{sequence:0{_SEQUENCE_DIGITS}d}.json"


def checkpoint_key(sequence: int) -> str:
    return f"{CHECKPOINT_PREFIX}{sequence:0{_SEQUENCE_DIGITS}d}.json"


def sequence_of_record_key(key: str) -> int | None:
    """The sequence a record key names, or None for a key outside the layout."""
    match = _RECORD_KEY.fullmatch(key)
    return int(match.group(1)) if match else None


def sequence_of_checkpoint_key(key: str) -> int | None:
    match = _CHECKPOINT_KEY.fullmatch(key)
    return int(match.group(1)) if match else None


def json_object(body: bytes) -> dict[str, Any] | None:
    """A stored body as a JSON object, or None when it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
