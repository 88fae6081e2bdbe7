"""Reading a tenant's trail for an auditor from the audit index: filters, pages, PII revealed where
it may be, and the stored records of a sequence range (the SIEM export).

The index table (``tree.AuditIndex``) holds each record's encrypted body beside its sequence, and
its secondary indexes (``index_entries``) key the entries by time, action, actor and target. So:

- an unfiltered page is one Query of the table (bodies included);
- a filtered page is one Query of an index (keys only) and one BatchGetItem of the bodies; an
  actor or subject filter first looks up the name's subject key (a GetItem) and queries both
  the name (records kept in clear) and the key id (records kept encrypted), merged by time;
- PII is revealed with :class:`~tenant_security.audit.reveal_keys.WarmSubjectKeys`: one
  BatchGetItem per page, KMS only for keys not unwrapped in the last minutes.

Bodies decrypt with the Encryption SDK's cached data keys (no KMS call when warm). Whatever an
index returns is checked again against the decrypted record, so the index narrows a read and
never widens it.

``next`` tokens are bound to the tenant and to the query's filters (400 on any other) and carry
only a position -- the sequence and time of the last record returned; the DynamoDB keys are
rebuilt from the request, never taken from the token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tenant_security.audit.index_entries import (
    AuditIndexName,
    EntryKey,
    IdentityKind,
    action_key,
    identity,
    split_time_key,
    time_key,
)
from tenant_security.audit.page_tokens import LAST_SEQUENCE, Cursor, decode_next, encode_next, fingerprint
from tenant_security.audit.pii import PiiProtector, SubjectKeys, redact_others
from tenant_security.audit.reveal_keys import WarmSubjectKeys

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_SCANNED = 1000  # index entries read per request at most; the reply's `next` continues from there
BATCH_GET_KEYS = 100  # BatchGetItem's limit

Decode = Callable[[str, bytes], dict[str, Any] | None]


def _position(sequence: int) -> str:
    return f"r#{sequence:016d}"


def _sequence_of(position: str) -> int:
    return int(position.removeprefix("r#"))


@dataclass(frozen=True)
class _Stream:
    """One Query of an index: its partition, and (actor and subject) the action to keep."""

    index: AuditIndexName
    key_name: str
    key_value: str
    action: str | None = None


def _at_its_position(
    tenant_id: str, item: dict[str, Any], record: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The record, when it is the one of its item's position (a body copied or planted elsewhere
    in the index by someone who can write it is not read as that position's; the verifier names
    it)."""
    if record is None or record.get("tenant_id") != tenant_id:
        return None
    return record if record.get("sequence") == _sequence_of(item["position"]["S"]) else None


class AuditReader:
    """A tenant's records from the audit index, in sequence order (newest last)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        decode: Decode,
        pii: PiiProtector,
        keys: SubjectKeys,
        warm_keys: WarmSubjectKeys | None = None,
    ) -> None:
        """``decode(tenant, body)``: a stored body's record (None for one that is not the
        tenant's); ``warm_keys``: the warm function's subject-key cache (one per reader if None)."""
        self.client = client
        self.table = table
        self.decode = decode
        self.pii = pii
        self.keys = keys
        self.warm_keys = warm_keys or WarmSubjectKeys(keys)

    def query(
        self,
        tenant_id: str,
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
        who acted) or subject (a user the record is about: actor or target). ``after``: the
        previous page's ``next``. With ``reveal_subject_only`` (an export for ``subject``), only
        that subject's PII is revealed."""
        filters = fingerprint(start, end, action, actor, subject)
        cursor = decode_next(after, tenant_id, filters) if after else None
        actor_key = self.keys.key_id_of(tenant_id, actor) if actor else None
        subject_key = self.keys.key_id_of(tenant_id, subject) if subject else None
        streams = _streams(tenant_id, start, end, action, actor, actor_key, subject, subject_key)
        if streams:
            low = start.isoformat() if start else "0"
            if cursor is not None:
                low = max(low, time_key(cursor.recorded_at, cursor.sequence + 1))
            high = f"{end.isoformat()}#~" if end else "~"
            found, last = self._merged(streams, low, high, limit) if low <= high else ([], None)
            items = self._bodies(tenant_id, found)
        else:
            items, last = self._table_page(tenant_id, cursor.sequence if cursor else 0, limit)
        records = []
        for item in items:
            record = _at_its_position(tenant_id, item, self.decode(tenant_id, bytes(item["body"]["B"])))
            if record is not None and _matches(
                record, start, end, action, actor, actor_key, subject, subject_key
            ):
                records.append(record)
        wanted = [subject_key] if reveal_subject_only else _key_ids(records)
        keys = self.warm_keys.for_page(tenant_id, [k for k in wanted if k]) if records else {}
        if reveal_subject_only and subject is not None:
            shown = [
                redact_others(self.pii.reveal(r, keys, only=subject_key or "-"), subject) for r in records
            ]
        else:
            shown = [self.pii.reveal(r, keys) for r in records]
        return {"items": shown, "next": encode_next(tenant_id, filters, last) if last else None}

    def stored_range(
        self, tenant_id: str, first: int, last: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Records ``first``..``last`` as stored (PII as ciphertext, pseudonyms or as the tenant
        keeps it), at most ``limit``, and the first sequence of the next page (None: none left)."""
        last = min(last, LAST_SEQUENCE)  # positions have 16 digits: none sorts beyond
        if first > last:
            return [], None
        items, more = self._range(tenant_id, first, last, limit)
        decoded = (
            _at_its_position(tenant_id, i, self.decode(tenant_id, bytes(i["body"]["B"]))) for i in items
        )
        records = [r for r in decoded if r is not None]
        following = _sequence_of(items[-1]["position"]["S"]) + 1 if items else None
        return records, following if more and following is not None and following <= last else None

    # ------------------------------------------------------------------ the table itself
    def _range(self, tenant_id: str, first: int, last: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` record entries of sequences first..last (bodies included), and whether
        there may be more."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "tenant_id = :t AND #p BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#p": "position"},
            "ExpressionAttributeValues": {
                ":t": {"S": tenant_id},
                ":low": {"S": _position(first)},
                ":high": {"S": _position(last)},
            },
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while len(items) < limit:
            reply = self.client.query(**args, Limit=limit - len(items))
            items.extend(reply.get("Items", []))
            if "LastEvaluatedKey" not in reply:
                return items, False
            args["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        return items, True

    def _table_page(
        self, tenant_id: str, after: int, limit: int
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        if after >= LAST_SEQUENCE:
            return [], None
        items, more = self._range(tenant_id, after + 1, LAST_SEQUENCE, limit)
        if not (more and items):
            return items, None
        last = items[-1]
        return items, Cursor(_sequence_of(last["position"]["S"]), last.get("recorded_at", {}).get("S", ""))

    # ------------------------------------------------------------------ the indexes
    def _merged(
        self, streams: list[_Stream], low: str, high: str, limit: int
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """The first ``limit`` entries of the streams' union in time order, and where the next
        page starts. A stream that stopped early (its own page full, or its share of
        :data:`MAX_SCANNED` read) bounds the page: nothing after what it has seen is returned."""
        budget = max(limit, MAX_SCANNED // len(streams))
        union: dict[str, dict[str, Any]] = {}
        bound: str | None = None
        for stream in streams:
            items, resume = self._stream(stream, low, high, limit, budget)
            union.update((i["position"]["S"], i) for i in items)
            if resume is not None:
                bound = resume if bound is None else min(bound, resume)
        ordered = sorted(union.values(), key=lambda i: i[EntryKey.TIME]["S"])
        within = [i for i in ordered if bound is None or i[EntryKey.TIME]["S"] <= bound]
        page = within[:limit]
        if len(within) > limit or (len(page) == limit and bound is not None):
            bound = page[-1][EntryKey.TIME]["S"]  # a full page: the next starts after its last
        if bound is None:
            return page, None
        recorded_at, sequence = split_time_key(bound)
        return page, Cursor(sequence, recorded_at)

    def _stream(
        self, stream: _Stream, low: str, high: str, want: int, budget: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``want`` entries of one index partition in [low, high], and the time key up to
        which it was read (None: to the end)."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": stream.index,
            "KeyConditionExpression": "#k = :k AND #t BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#k": stream.key_name, "#t": EntryKey.TIME},
            "ExpressionAttributeValues": {
                ":k": {"S": stream.key_value},
                ":low": {"S": low},
                ":high": {"S": high},
            },
        }
        if stream.action is not None:
            args["FilterExpression"] = "#a = :a"
            args["ExpressionAttributeNames"]["#a"] = EntryKey.ACTION
            args["ExpressionAttributeValues"][":a"] = {"S": stream.action}
        items: list[dict[str, Any]] = []
        scanned = 0
        while True:
            room = budget - scanned if stream.action is not None else min(budget - scanned, want - len(items))
            reply = self.client.query(**args, Limit=max(room, 1))
            scanned += int(reply.get("ScannedCount", 0))
            items.extend(reply.get("Items", []))
            last = reply.get("LastEvaluatedKey")
            if len(items) >= want:
                cut = items[:want]
                return cut, (cut[-1][EntryKey.TIME]["S"] if last is not None or len(items) > want else None)
            if last is None:
                return items, None
            if scanned >= budget:
                return items, last[EntryKey.TIME]["S"]
            args["ExclusiveStartKey"] = last

    def _bodies(self, tenant_id: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entries' table items (bodies), in the entries' order (BatchGetItem, consistent)."""
        positions = [e["position"]["S"] for e in entries]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(positions), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [
                        {"tenant_id": {"S": tenant_id}, "position": {"S": p}}
                        for p in positions[start : start + BATCH_GET_KEYS]
                    ],
                    "ConsistentRead": True,
                    "ProjectionExpression": "#p, #b",
                    "ExpressionAttributeNames": {"#p": "position", "#b": "body"},
                }
            }
            while request:
                reply = self.client.batch_get_item(RequestItems=request)
                for item in reply.get("Responses", {}).get(self.table, []):
                    found[item["position"]["S"]] = item
                request = dict(reply.get("UnprocessedKeys") or {})
        return [found[p] for p in positions if p in found and "body" in found[p]]


def _identities(tenant_id: str, name: str, key_id: str | None) -> list[str]:
    """A user's identities in the index: the name (records in clear) and the subject key id."""
    return [identity(tenant_id, IdentityKind.USER, name)] + (
        [identity(tenant_id, IdentityKind.KEY, key_id)] if key_id else []
    )


def _streams(
    tenant_id: str,
    start: datetime | None,
    end: datetime | None,
    action: str | None,
    actor: str | None,
    actor_key: str | None,
    subject: str | None,
    subject_key: str | None,
) -> list[_Stream]:
    """The index queries a page needs ([]: the table itself, unfiltered)."""
    wanted_action = action_key(tenant_id, action) if action else None
    if subject is not None:  # actor or target: both indexes, under every identity
        return [
            _Stream(index, name, who, wanted_action)
            for who in _identities(tenant_id, subject, subject_key)
            for index, name in (
                (AuditIndexName.BY_ACTOR, EntryKey.ACTOR),
                (AuditIndexName.BY_TARGET, EntryKey.TARGET),
            )
        ]
    if actor is not None:
        return [
            _Stream(AuditIndexName.BY_ACTOR, EntryKey.ACTOR, who, wanted_action)
            for who in _identities(tenant_id, actor, actor_key)
        ]
    if wanted_action is not None:
        return [_Stream(AuditIndexName.BY_ACTION, EntryKey.ACTION, wanted_action)]
    if start is not None or end is not None:
        return [_Stream(AuditIndexName.BY_TIME, "tenant_id", tenant_id)]
    return []


def _key_ids(records: Iterable[dict[str, Any]]) -> list[str]:
    return [str(e.get("key_id")) for r in records for e in r.get("pii") or [] if e.get("key_id")]


def _matches(
    record: dict[str, Any],
    start: datetime | None,
    end: datetime | None,
    action: str | None,
    actor: str | None,
    actor_key: str | None,
    subject: str | None,
    subject_key: str | None,
) -> bool:
    """The filters, on the decrypted record itself (what the index found is confirmed)."""
    recorded = str(record.get("recorded_at", ""))
    if start is not None and recorded < start.isoformat():
        return False
    if end is not None and recorded > end.isoformat():
        return False
    if action is not None and record.get("action") != action:
        return False
    if subject is not None and not _about(record, subject, subject_key):
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
