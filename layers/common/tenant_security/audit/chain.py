"""The hash chain's rules, shared by the writer and the verifier (one definition of each).

A record is a JSON object with ``sequence`` (1, 2, ...), ``prev_hash`` (the previous record's
``hash``; 64 zeros for the first) and ``hash`` = SHA-256 over the canonical JSON encoding of the
record without ``hash``. Canonical: keys sorted, no insignificant white space, UTF-8. A record's
stored bytes are its canonical encoding (what its Merkle leaf hashes); an object holds one
record, or a batch of consecutive records one a line.
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
# One record (<sequence>.json) or a batch of consecutive records (<first>-<last>.json).
_RECORD_KEY = re.compile(r"^audit/\d{4}/\d{2}/\d{2}/(\d{16})(?:-(\d{16}))?\.json$")
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


def record_key(sequence: int, recorded_at: datetime, last: int | None = None) -> str:
    """``audit/YYYY/MM/DD/<sequence>.json``: the day the writer appended it, then the sequence; a
    batch of records ``sequence``..``last`` is ``audit/YYYY/MM/DD/<sequence>-<last>.json``."""
    name = f"{sequence:0{_SEQUENCE_DIGITS}d}"
    if last is not None and last != sequence:
        name += f"-{last:0{_SEQUENCE_DIGITS}d}"
    return f"{RECORD_PREFIX}{recorded_at:%Y/%m/%d}/{name}.json"


def checkpoint_key(sequence: int) -> str:
    return f"{CHECKPOINT_PREFIX}{sequence:0{_SEQUENCE_DIGITS}d}.json"


def record_range(key: str) -> tuple[int, int] | None:
    """The sequences ``(first, last)`` a record object's key names, or None for a key outside the
    layout (or a batch whose last sequence is before its first)."""
    match = _RECORD_KEY.fullmatch(key)
    if not match:
        return None
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    return (first, last) if last >= first else None


def sequence_of_record_key(key: str) -> int | None:
    """The (first) sequence a record key names, or None for a key outside the layout."""
    found = record_range(key)
    return found[0] if found else None


def lines_of(plaintext: bytes) -> list[bytes]:
    """A record object's records: one canonical JSON a line (canonical JSON holds no newline)."""
    return plaintext.split(b"\n")


def object_plaintext(stored: list[bytes]) -> bytes:
    """What a record object holds, encrypted: its records' stored bytes, one a line (a single
    record's object is exactly its stored bytes)."""
    return b"\n".join(stored)


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
