"""Personal data in audit records, per the tenant policy's ``pii_handling``.

With ``encrypt_and_redact`` (or ``encrypt``) the personal fields of a record (user names, e-mail,
source IP) are replaced by :data:`REDACTED` and kept encrypted, per subject, under that subject's
own 256-bit key; the subject key is itself encrypted under the tenant data key (the platform
master key for the platform tenant). Erasing a subject (GDPR) deletes only that key: their PII
no longer decrypts, while the records -- and so the hash chain -- stay exactly as written.
``redact`` keeps no copy; ``none`` leaves the fields as they are.

With a subject key, the record also keeps the subject's key id as ``actor.pseudonym`` (and
``target.pseudonym``): random, the same in every record of that subject, and linked to the name
only by the subject-keys table -- so after an erasure the subject's past actions stay
attributable to one (now nameless) person.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tenant_security import crypto
from tenant_security.dynamo import is_conditional_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from tenant_security.config import Settings

REDACTED = "[redacted]"
ERASED = "[erased]"
ANONYMOUS = "~anonymous"
PURPOSE_PII = "audit-pii"
PURPOSE_SUBJECT_KEY = "audit-subject-key"
# (path in the record, whose PII it is: the actor or the target user)
PII_FIELDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("actor", "user"), "actor"),
    (("source_ip",), "actor"),
    (("target", "user"), "target"),
    (("target", "email"), "target"),
)

Wrap = Callable[[str, str, bytes], bytes]


class KmsSubjectKeyWrapping:
    """:class:`SubjectKeys`' ``wrap``/``unwrap``: a subject key encrypted under its tenant's data
    key (the platform master key for the platform tenant), tenant, purpose and key id in the
    encryption context."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @staticmethod
    def _context(tenant_id: str, key_id: str) -> dict[str, str]:
        return crypto.encryption_context(tenant_id, PURPOSE_SUBJECT_KEY, key_id=key_id)

    def wrap(self, tenant_id: str, key_id: str, key: bytes) -> bytes:
        """The subject key encrypted under the tenant data key."""
        return crypto.encrypt(key, self.settings.data_key_arn(tenant_id), self._context(tenant_id, key_id))

    def unwrap(self, tenant_id: str, key_id: str, wrapped: bytes) -> bytes:
        """The subject key back, refused unless it was wrapped for this tenant and key id."""
        return crypto.decrypt(
            wrapped, self._context(tenant_id, key_id), self.settings.account_id, self.settings.partition
        )


def _get(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _set(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = record
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def subject_of(record: dict[str, Any], role: str) -> str:
    """The subject whose key protects a field: a user of the record's tenant (or ``tenant:user``)."""
    if role == "target":
        return str(_get(record, ("target", "user")) or ANONYMOUS)
    user, actor_tenant = _get(record, ("actor", "user")), _get(record, ("actor", "tenant_id"))
    if not user:
        return ANONYMOUS
    return str(user) if actor_tenant in (None, record.get("tenant_id")) else f"{actor_tenant}:{user}"


class SubjectKeys:
    """Per-subject keys in DynamoDB: ``subject#<name>`` → key id, ``key#<id>`` → the wrapped key."""

    def __init__(
        self, client: DynamoDBClient, table: str, wrap: Wrap, unwrap: Wrap, cache_seconds: float = 300.0
    ) -> None:
        """``wrap``/``unwrap`` (tenant, key id, bytes) encrypt a key under the tenant data key."""
        self.client = client
        self.table = table
        self.wrap = wrap
        self.unwrap = unwrap
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[str, bytes, float]] = {}

    def _item(self, tenant_id: str, sk: str) -> dict[str, Any] | None:
        reply = self.client.get_item(
            TableName=self.table, Key={"tenant_id": {"S": tenant_id}, "sk": {"S": sk}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = reply.get("Item")
        return item

    def key_id_of(self, tenant_id: str, subject: str) -> str | None:
        item = self._item(tenant_id, f"subject#{subject}")
        return item["key_id"]["S"] if item else None

    def key_by_id(self, tenant_id: str, key_id: str) -> bytes | None:
        """The plaintext key, or None once erased."""
        item = self._item(tenant_id, f"key#{key_id}")
        if item is None:
            return None
        return self.unwrap(tenant_id, key_id, bytes(item["wrapped"]["B"]))

    def key_for(
        self, tenant_id: str, subject: str, happened_at: float | None = None
    ) -> tuple[str, bytes] | None:
        """The subject's key id and key, created on first use (cached for a few minutes).

        None instead of a new key when the subject was erased at or after ``happened_at`` (the
        event's time): an erased subject's earlier event brings no personal data back. The check
        is part of the key's creation (one transaction), so an erasure racing it cannot slip in
        between.
        """
        cached = self._cache.get((tenant_id, subject))
        if cached and cached[2] > time.monotonic():
            return cached[0], cached[1]
        for _ in range(3):
            key_id = self.key_id_of(tenant_id, subject)
            key = self.key_by_id(tenant_id, key_id) if key_id else None
            if key_id is None or key is None:
                if happened_at is not None and self.erased_since(tenant_id, subject, happened_at):
                    return None
                key_id, key = self._create(tenant_id, subject, happened_at)
            if key_id is not None and key is not None:
                self._cache[(tenant_id, subject)] = (key_id, key, time.monotonic() + self.cache_seconds)
                return key_id, key
        if happened_at is not None and self.erased_since(tenant_id, subject, happened_at):
            return None
        raise RuntimeError("subject key could not be created")

    def erased_since(self, tenant_id: str, subject: str, moment: float) -> bool:
        """Whether the subject was erased at or after ``moment``."""
        erased = self.erased_at(tenant_id, subject)
        return erased is not None and moment <= erased

    def _create(
        self, tenant_id: str, subject: str, happened_at: float | None
    ) -> tuple[str | None, bytes | None]:
        key_id, key = str(uuid.uuid4()), os.urandom(32)
        wrapped = self.wrap(tenant_id, key_id, key)
        now = str(int(time.time()))
        # No key for an event from before the subject's erasure, even one that lands meanwhile.
        not_erased_since: list[TransactWriteItemTypeDef] = (
            [
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": {"tenant_id": {"S": tenant_id}, "sk": {"S": _erased_sk(tenant_id, subject)}},
                        "ConditionExpression": "attribute_not_exists(sk) OR erased_at < :happened",
                        "ExpressionAttributeValues": {":happened": {"N": repr(happened_at)}},
                    }
                }
            ]
            if happened_at is not None
            else []
        )
        try:
            self.client.transact_write_items(
                TransactItems=[
                    *not_erased_since,
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                "tenant_id": {"S": tenant_id},
                                "sk": {"S": f"subject#{subject}"},
                                "key_id": {"S": key_id},
                                "created_at": {"N": now},
                            },
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                "tenant_id": {"S": tenant_id},
                                "sk": {"S": f"key#{key_id}"},
                                "subject": {"S": subject},
                                "wrapped": {"B": wrapped},
                                "created_at": {"N": now},
                            },
                        }
                    },
                ]
            )
        except Exception as exc:
            if is_conditional_failure(exc) or "TransactionCanceled" in str(exc):
                return None, None  # another writer created it first: read theirs
            raise
        return key_id, key

    def erase(self, tenant_id: str, subject: str) -> bool:
        """Destroy the subject's key (GDPR erasure); True when there was one.

        One transaction writes the erasure mark and deletes the key: there is no moment without
        either, in which a late event of the subject (a dead-letter redrive, an outbox drain, an
        EventBridge retry) could bring their PII back under a new key. The mark is written even
        when the subject has no key yet, for the same reason. It names the subject by hash only.
        """
        self._cache.pop((tenant_id, subject), None)
        for _ in range(5):
            key_id = self.key_id_of(tenant_id, subject)
            try:
                self.client.transact_write_items(TransactItems=self._erasure(tenant_id, subject, key_id))
            except Exception as exc:
                if "TransactionCanceled" not in str(exc):
                    raise
                continue  # a key was made (or changed) meanwhile: erase that one
            return key_id is not None
        raise RuntimeError("the subject's key kept changing during its erasure")

    def _erasure(self, tenant_id: str, subject: str, key_id: str | None) -> list[TransactWriteItemTypeDef]:
        """The erasure's writes: the mark, and the key (if it still is the subject's ``key_id``)."""
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "tenant_id": {"S": tenant_id},
                        "sk": {"S": _erased_sk(tenant_id, subject)},
                        "erased_at": {"N": repr(time.time())},
                    },
                }
            }
        ]
        subject_key = {"tenant_id": {"S": tenant_id}, "sk": {"S": f"subject#{subject}"}}
        if key_id is None:
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": subject_key,
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                }
            )
            return items
        items.append(
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": subject_key,
                    "ConditionExpression": "key_id = :key",
                    "ExpressionAttributeValues": {":key": {"S": key_id}},
                }
            }
        )
        items.append(
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": {"tenant_id": {"S": tenant_id}, "sk": {"S": f"key#{key_id}"}},
                }
            }
        )
        return items

    def erased_at(self, tenant_id: str, subject: str) -> float | None:
        """When the subject was erased (None if never)."""
        item = self._item(tenant_id, _erased_sk(tenant_id, subject))
        return float(item["erased_at"]["N"]) if item else None


def redact_others(record: dict[str, Any], subject: str) -> dict[str, Any]:
    """``record`` with the personal fields of anyone but ``subject`` redacted, where a record
    kept them in clear (``pii_handling: none``): a subject's export shows no one else (Art. 15(4))."""
    out: dict[str, Any] = json.loads(json.dumps(record))
    for path, role in PII_FIELDS:
        value = _get(out, path)
        if value not in (None, REDACTED, ERASED) and subject_of(record, role) != subject:
            _set(out, path, REDACTED)
    return out


def role_has_pii(fields: dict[str, Any], role: str) -> bool:
    """Whether ``fields`` (dotted paths) hold personal data of the record's actor or target."""
    return any(name.split(".")[0] == role or (role == "actor" and name == "source_ip") for name in fields)


def _erased_sk(tenant_id: str, subject: str) -> str:
    return "erased#" + hashlib.sha256(f"{tenant_id}\x00{subject}".encode()).hexdigest()


def _happened_at(record: dict[str, Any]) -> float:
    """When the record's event happened (an unreadable time counts as long ago: before any erasure)."""
    try:
        return datetime.fromisoformat(str(record.get("time")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _context(tenant_id: str, key_id: str) -> dict[str, str]:
    return crypto.encryption_context(tenant_id, PURPOSE_PII, key_id=key_id)


class PiiProtector:
    """Applies a tenant's pii_handling to a record, and reveals it to an authorised reader."""

    def __init__(self, keys: SubjectKeys) -> None:
        self.keys = keys

    def protect(self, record: dict[str, Any], mode: str) -> dict[str, Any]:
        """The record with its personal fields redacted (and, per mode, kept encrypted)."""
        if mode == "none":
            return record
        out: dict[str, Any] = json.loads(json.dumps(record))
        tenant_id = str(record["tenant_id"])
        groups: dict[str, dict[str, Any]] = {}
        for path, role in PII_FIELDS:
            value = _get(record, path)
            if value is None:
                continue
            groups.setdefault(subject_of(record, role), {})[".".join(path)] = value
            _set(out, path, REDACTED)
        if mode in ("encrypt", "encrypt_and_redact") and groups:
            entries = []
            pseudonyms = {role: subject_of(record, role) for role in ("actor", "target")}
            for subject, fields in sorted(groups.items()):
                found = self.keys.key_for(tenant_id, subject, _happened_at(record))
                if found is None:
                    continue  # an erased subject's earlier event: redacted, and no new key
                key_id, key = found
                for role, whose in pseudonyms.items():
                    if whose == subject and isinstance(out.get(role), dict) and role_has_pii(fields, role):
                        out[role]["pseudonym"] = key_id
                ciphertext = crypto.encrypt_with_key(
                    json.dumps(fields).encode(), key_id, key, _context(tenant_id, key_id)
                )
                entries.append(
                    {
                        "key_id": key_id,
                        "fields": sorted(fields),
                        "ciphertext": base64.b64encode(ciphertext).decode(),
                    }
                )
            out["pii"] = entries
        return out

    def reveal(
        self, record: dict[str, Any], keys: dict[str, bytes | None] | None = None, only: str | None = None
    ) -> dict[str, Any]:
        """The record with its PII decrypted where the subject key still exists, else ``[erased]``.

        ``keys``: a cache of subject keys for one request (key id → key or None). ``only``: reveal
        that subject key's entries alone (a subject's export shows no one else's personal data,
        GDPR Art. 15(4)); the others stay ``[redacted]``.
        """
        keys = {} if keys is None else keys
        out: dict[str, Any] = json.loads(json.dumps({k: v for k, v in record.items() if k != "pii"}))
        tenant_id = str(record["tenant_id"])
        for entry in record.get("pii") or []:
            key_id = str(entry.get("key_id"))
            if only is not None and key_id != only:
                continue
            if key_id not in keys:
                keys[key_id] = self.keys.key_by_id(tenant_id, key_id)
            key = keys[key_id]
            fields: dict[str, Any] = dict.fromkeys(entry.get("fields", []), ERASED)
            if key is not None:
                plaintext = crypto.decrypt_with_key(
                    base64.b64decode(entry["ciphertext"]), key_id, key, _context(tenant_id, key_id)
                )
                fields = json.loads(plaintext)
            for name, value in fields.items():
                _set(out, tuple(name.split(".")), value)
        return out
