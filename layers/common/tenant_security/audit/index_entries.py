"""The audit index's secondary keys: what the writer puts beside each record entry so that the
reader answers GET /audit's filters with one Query (template.yaml's ``AuditIndexTable``).

A record entry (``r#<sequence>``) gets, where the record has them:

- ``time_key`` = ``<recorded_at>#<sequence, 16 digits>``: the sort key of every index. The writer
  keeps ``recorded_at`` non-decreasing along a tenant's sequence, so this order *is* the sequence
  order and a time range is one key range;
- ``action_key`` = ``<tenant>#<action>`` (index ``by-action``);
- ``actor_key`` / ``target_key`` = ``<tenant>#<identity>`` (``by-actor``, ``by-target``): the
  user's name where the record holds it in clear (``pii_handling: none``), else the subject key
  id of the ``pii`` entry that holds it (``encrypt``, ``encrypt_and_redact``) -- the pseudonym,
  never the name. A redacted-only record has none: nobody can find it by name, as before. An
  erased subject's records stay under their key id, which the name no longer leads to.

Every attribute is a string in the tenant's own partition of the value space (the tenant id
first), so one tenant's query never meets another's records.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from tenant_security.audit.pii import ERASED, REDACTED

_WITHHELD = (REDACTED, ERASED)
SEQUENCE_DIGITS = 16


class AuditIndexName(StrEnum):
    """The audit index table's global secondary indexes (template.yaml ``AuditIndexTable``)."""

    BY_TIME = "by-time"  # tenant_id, time_key
    BY_ACTION = "by-action"  # action_key, time_key
    BY_ACTOR = "by-actor"  # actor_key, time_key (projects action_key: action AND actor)
    BY_TARGET = "by-target"  # target_key, time_key (projects action_key)


class EntryKey(StrEnum):
    """The attributes :func:`entry_attributes` writes (the indexes' keys)."""

    TIME = "time_key"
    ACTION = "action_key"
    ACTOR = "actor_key"
    TARGET = "target_key"


class IdentityKind(StrEnum):
    """How an identity appears in a record: a name in clear, or its subject key id."""

    USER = "user"
    KEY = "key"


def time_key(recorded_at: str, sequence: int) -> str:
    """The sort key of every index: the record's time, then its sequence."""
    return f"{recorded_at}#{sequence:0{SEQUENCE_DIGITS}d}"


def split_time_key(value: str) -> tuple[str, int]:
    """``(recorded_at, sequence)`` of a :func:`time_key` (ValueError for anything else)."""
    recorded_at, _, sequence = value.rpartition("#")
    if len(sequence) != SEQUENCE_DIGITS or not sequence.isdigit():
        raise ValueError("not a time key")
    return recorded_at, int(sequence)


def identity(tenant_id: str, kind: IdentityKind, value: str) -> str:
    """An ``actor_key``/``target_key`` value: ``<tenant>#user#<name>`` or ``<tenant>#key#<id>``."""
    return f"{tenant_id}#{kind}#{value}"


def action_key(tenant_id: str, action: str) -> str:
    return f"{tenant_id}#{action}"


def _clear(value: Any) -> str | None:
    return value if isinstance(value, str) and value and value not in _WITHHELD else None


def _key_holding(record: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    """The subject key id of the record's ``pii`` entry that holds one of ``fields``."""
    for entry in record.get("pii") or []:
        if isinstance(entry, Mapping) and any(f in (entry.get("fields") or []) for f in fields):
            key_id = entry.get("key_id")
            if isinstance(key_id, str) and key_id:
                return key_id
    return None


def _who(tenant_id: str, record: Mapping[str, Any], role: str, fields: tuple[str, ...]) -> str | None:
    """The actor's or target's identity as the reader's filters match it (``reader._matches``):
    the name in clear, else the key id of the entry that keeps the name encrypted."""
    part = record.get(role)
    name = _clear(part.get("user")) if isinstance(part, Mapping) else None
    if name is not None:
        return identity(tenant_id, IdentityKind.USER, name)
    key_id = _key_holding(record, fields)
    return identity(tenant_id, IdentityKind.KEY, key_id) if key_id else None


def entry_attributes(tenant_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The DynamoDB attribute values of a record entry's index keys (AuditIndex's
    ``entry_attributes`` hook; the writer puts them in the head's transaction). An attribute the
    record gives no value for is left out, so the entry is in no index keyed by it (sparse)."""
    out: dict[str, Any] = {}
    recorded_at, sequence = record.get("recorded_at"), record.get("sequence")
    if isinstance(recorded_at, str) and recorded_at and isinstance(sequence, int):
        out[EntryKey.TIME] = {"S": time_key(recorded_at, sequence)}
    action = record.get("action")
    if isinstance(action, str) and action:
        out[EntryKey.ACTION] = {"S": action_key(tenant_id, action)}
    actor = _who(tenant_id, record, "actor", ("actor.user",))
    if actor is not None:
        out[EntryKey.ACTOR] = {"S": actor}
    target = _who(tenant_id, record, "target", ("target.user",))
    if target is not None:
        out[EntryKey.TARGET] = {"S": target}
    return out
