"""Reading a tenant's trail for an auditor: filters, pagination, PII revealed where it may be."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tenant_security import paging
from tenant_security.audit.chain import RECORD_PREFIX, sequence_of_record_key
from tenant_security.audit.pii import PiiProtector, SubjectKeys, redact_others

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_SCANNED = 1000  # records read per request at most; the reply's `next` continues from there
Decode = Callable[[str, bytes], dict[str, Any] | None]


def decode_next(token: str) -> str:
    """The record key a ``next`` token of :meth:`AuditReader.query` continues after (400 otherwise)."""
    return paging.decode_next(token, lambda key: sequence_of_record_key(key) is not None)


class AuditReader:
    """Lists a tenant's records in order, newest day last."""

    def __init__(self, s3: S3Client, decode: Decode, pii: PiiProtector, keys: SubjectKeys) -> None:
        self.s3 = s3
        self.decode = decode
        self.pii = pii
        self.keys = keys

    def query(
        self,
        tenant_id: str,
        bucket: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        limit: int = 50,
        after: str | None = None,
        reveal_subject_only: bool = False,
    ) -> dict[str, Any]:
        """``{items, next}``: records recorded in [start, end] matching action and actor (the user
        who acted) or subject (a user the record is about: actor or target). With
        ``reveal_subject_only`` (an export for ``subject``), only that subject's PII is revealed."""
        start_after = after or (f"{RECORD_PREFIX}{start:%Y/%m/%d}/" if start else RECORD_PREFIX)
        last_day = f"{RECORD_PREFIX}{end:%Y/%m/%d}/~" if end else None
        actor_key = self.keys.key_id_of(tenant_id, actor) if actor else None
        subject_key = self.keys.key_id_of(tenant_id, subject) if subject else None
        subject_keys: dict[str, bytes | None] = {}
        items: list[dict[str, Any]] = []
        scanned, last_key = 0, None
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=RECORD_PREFIX, StartAfter=start_after):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if last_day is not None and key > last_day:
                    return {"items": items, "next": None}
                if sequence_of_record_key(key) is None:
                    continue
                scanned, last_key = scanned + 1, key
                body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                record = self.decode(tenant_id, body)
                if record is None or not (
                    self._matches(record, start, end, action, actor, actor_key)
                    and (subject is None or _about(record, subject, subject_key))
                ):
                    if scanned >= MAX_SCANNED:
                        return {"items": items, "next": paging.encode_next(key)}
                    continue
                if reveal_subject_only and subject is not None:
                    revealed = self.pii.reveal(record, subject_keys, only=subject_key or "-")
                    items.append(redact_others(revealed, subject))
                else:
                    items.append(self.pii.reveal(record, subject_keys))
                if len(items) >= limit or scanned >= MAX_SCANNED:
                    return {"items": items, "next": paging.encode_next(key)}
        return {
            "items": items,
            "next": None if last_key is None or len(items) < limit else paging.encode_next(last_key),
        }

    @staticmethod
    def _matches(
        record: dict[str, Any],
        start: datetime | None,
        end: datetime | None,
        action: str | None,
        actor: str | None,
        actor_key: str | None,
    ) -> bool:
        recorded = str(record.get("recorded_at", ""))
        if start is not None and recorded < start.isoformat():
            return False
        if end is not None and recorded > end.isoformat():
            return False
        if action is not None and record.get("action") != action:
            return False
        if actor is None:
            return True
        if (record.get("actor") or {}).get("user") == actor:
            return True
        return actor_key is not None and any(
            entry.get("key_id") == actor_key and "actor.user" in entry.get("fields", [])
            for entry in record.get("pii") or []
        )


def _about(record: dict[str, Any], subject: str, key_id: str | None) -> bool:
    """True when ``subject`` is the record's actor or target (in the clear or by their key)."""
    if subject in ((record.get("actor") or {}).get("user"), (record.get("target") or {}).get("user")):
        return True
    return key_id is not None and any(entry.get("key_id") == key_id for entry in record.get("pii") or [])
