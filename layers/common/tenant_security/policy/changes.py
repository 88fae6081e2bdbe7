"""What a policy change is: a JSON merge patch (RFC 7396) over the stored document, and the
field-level difference between two documents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# Keys of GET's reply that are not part of the document: a PUT of what GET returned, or a patch
# that carries them, leaves them alone (they are the platform's to say).
READ_ONLY_KEYS = frozenset({"rollout", "revision"})


class RolledOutField(StrEnum):
    """Policy fields that live in AWS as well as in the document: a change to one starts a rollout."""

    KEY_ROTATION_DAYS = "data_protection.key_rotation_days"
    DATA_LOCALITY = "data_protection.data_locality"
    CROSS_REGION_ENCRYPTION = "data_protection.cross_region_encryption"
    RETENTION_DAYS = "audit_logging.retention_days"


@dataclass(frozen=True)
class FieldChange:
    """One field of the document that a change set to another value."""

    field: str
    old: Any
    new: Any

    def as_dict(self) -> dict[str, Any]:
        """The change as the history and the trail show it."""
        return {"field": self.field, "old": self.old, "new": self.new}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 §2: ``patch`` applied to ``target`` (neither is changed; ``null`` removes a member,
    so the field takes its default again; a patch that is not an object replaces the whole)."""
    if not isinstance(patch, Mapping):
        return patch
    merged: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged


def without_read_only(document: Any) -> Any:
    """The document without the keys GET adds (:data:`READ_ONLY_KEYS`)."""
    if not isinstance(document, Mapping):
        return document
    return {k: v for k, v in document.items() if k not in READ_ONLY_KEYS}


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[FieldChange]:
    """Every leaf field whose value differs, by dotted path (a list is one field)."""
    changes: list[FieldChange] = []
    for name in sorted(set(old) | set(new)):
        path = f"{prefix}{name}"
        before, after = old.get(name), new.get(name)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changes.extend(field_changes(before, after, f"{path}."))
        elif before != after:
            changes.append(FieldChange(path, before, after))
    return changes


def rolled_out(changes: list[FieldChange]) -> list[FieldChange]:
    """The changes a rollout must apply in AWS."""
    fields = {f.value for f in RolledOutField}
    return [c for c in changes if c.field in fields]
