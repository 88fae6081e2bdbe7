"""The exact accounting behind a tenant's storage quota: every change is a conditional write.

What counts: every version S3 keeps of a tenant's files -- the current ones, and the versions a
replacement made noncurrent until the bucket's lifecycle rule removes them -- and every presigned
upload from the moment it is granted until it is completed or expires. ``files_used`` counts keys
with a current version.

Items in the counters table (IAM: ``storage#*`` leading keys):

- ``storage#<tenant>#file / <key>``: the key's current version and size (``file_version``,
  ``file_bytes``), and while a request changes it, that request's lock (``lock_id``,
  ``lock_until``) and what it reserved (``pending_bytes``, ``pending_files``, ``lock_op``).
  Writers of one key take turns; a lock outlives any function timeout, so only a dead holder's
  lock expires, and the next holder finishes or undoes what it left (:meth:`FileLedger.lock`
  returns it as ``stale``).
- ``storage#<tenant>#noncurrent / <key>\\x1f<version>``: a version a replacement made noncurrent,
  with its size; released by the call that removes it (a DELETE, or the sweep once lifecycle
  expired it), under a condition, so two callers never release it twice.
- ``storage#uploads / <expires_at>#<tenant>#<upload_id>``: a granted presigned upload's
  reservation; claimed once by its completion, or released by the sweep after it expired.

Releases carry the condition ``bytes_used >= :size``: no race can take the counter below zero.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tenant_security.dynamo import is_conditional_failure, query_pages
from tenant_security.errors import Conflict
from tenant_security.models.base import size_in_bytes
from tenant_security.models.quotas import ResourceQuotas
from tenant_security.quotas import StorageQuota, StorageQuotaExceeded

# Longer than any function's timeout: a lock expires only when its holder is dead.
LOCK_SECONDS = 120
LOCK_ATTEMPTS = 12
UPLOADS_PK = "storage#uploads"
_SEPARATOR = "\x1f"  # a control character: never part of a file key
_LOCK_ATTRIBUTES = "lock_id, lock_until, lock_op, pending_bytes, pending_files"


class Op(StrEnum):
    """What the holder of a key's lock is doing (a successor finishes or undoes it)."""

    PUT = "put"
    DELETE = "delete"


class FileBusy(Conflict):
    """Another request is changing this file right now: try again."""

    code = "file_busy"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


@dataclass(frozen=True)
class Stale:
    """What a dead lock holder left: its operation and what it reserved."""

    op: str
    pending_bytes: int
    pending_files: int


@dataclass(frozen=True)
class Lock:
    """A key held by one request: the key's state as the lock found it."""

    tenant_id: str
    key: str
    lock_id: str
    version: str | None
    size: int
    created_by: str | None
    stale: Stale | None = None

    @property
    def exists(self) -> bool:
        return self.version is not None


@dataclass(frozen=True)
class Noncurrent:
    key: str
    version: str
    size: int
    since: float


@dataclass(frozen=True)
class UploadReservation:
    tenant_id: str
    upload_id: str
    key: str
    size: int
    expires_at: float
    sk: str


def _n(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


class FileLedger:
    """The per-version accounting of tenant files (DynamoDB client, counters table, quota given)."""

    def __init__(
        self, client: Any, table: str, quota: StorageQuota, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.table = table
        self.quota = quota
        self.clock = clock

    # ------------------------------------------------------------------ keys
    @staticmethod
    def _file_key(tenant_id: str, key: str) -> dict[str, Any]:
        return {"pk": {"S": f"storage#{tenant_id}#file"}, "sk": {"S": key}}

    @staticmethod
    def _noncurrent_key(tenant_id: str, key: str, version: str) -> dict[str, Any]:
        return {"pk": {"S": f"storage#{tenant_id}#noncurrent"}, "sk": {"S": f"{key}{_SEPARATOR}{version}"}}

    def _usage_update(self, tenant_id: str, bytes_delta: int, files_delta: int) -> dict[str, Any]:
        """A release (negative deltas) that cannot take the counter below zero."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": self.quota.key(tenant_id),
                "UpdateExpression": "ADD bytes_used :b, files_used :f",
                "ConditionExpression": "bytes_used >= :size AND files_used >= :files",
                "ExpressionAttributeValues": {
                    ":b": _n(bytes_delta),
                    ":f": _n(files_delta),
                    ":size": _n(-min(bytes_delta, 0)),
                    ":files": _n(-min(files_delta, 0)),
                },
            }
        }

    def _reserve_update(
        self, tenant_id: str, size: int, files: int, quotas: ResourceQuotas
    ) -> dict[str, Any]:
        storage = quotas.storage
        return {
            "Update": {
                "TableName": self.table,
                "Key": self.quota.key(tenant_id),
                "UpdateExpression": "ADD bytes_used :b, files_used :f",
                "ConditionExpression": "(attribute_not_exists(bytes_used) OR bytes_used <= :maxb) "
                "AND (attribute_not_exists(files_used) OR files_used <= :maxf)",
                "ExpressionAttributeValues": {
                    ":b": _n(size),
                    ":f": _n(files),
                    ":maxb": _n(size_in_bytes(storage.max_data_size) - size),
                    ":maxf": _n(storage.max_file_count - files),
                },
            }
        }

    def _pending(self, lock: Lock, op: Op, size: int, files: int) -> dict[str, Any]:
        """Record with the lock what its holder reserved (a successor undoes or adopts it)."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._file_key(lock.tenant_id, lock.key),
                "UpdateExpression": "SET lock_op = :op, pending_bytes = :b, pending_files = :f",
                "ConditionExpression": "lock_id = :me",
                "ExpressionAttributeValues": {
                    ":me": {"S": lock.lock_id},
                    ":op": {"S": op},
                    ":b": _n(size),
                    ":f": _n(files),
                },
            }
        }

    def _noncurrent_put(self, lock: Lock, now: float) -> dict[str, Any]:
        """The lock's current version, counted from now on as noncurrent."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    **self._noncurrent_key(lock.tenant_id, lock.key, str(lock.version)),
                    "file_bytes": _n(lock.size),
                    "noncurrent_since": _n(now),
                },
            }
        }

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        """One transaction; False when one of its conditions failed (nothing written)."""
        try:
            self.client.transact_write_items(TransactItems=items)
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------ locks
    def lock(self, tenant_id: str, key: str) -> Lock:
        """Take the key's lock (waiting briefly for another writer); 409 ``file_busy`` after."""
        for attempt in range(LOCK_ATTEMPTS):
            now = self.clock()
            lock_id = secrets.token_hex(8)
            try:
                reply = self.client.update_item(
                    TableName=self.table,
                    Key=self._file_key(tenant_id, key),
                    UpdateExpression="SET lock_id = :me, lock_until = :until",
                    ConditionExpression="attribute_not_exists(lock_until) OR lock_until < :now",
                    ExpressionAttributeValues={
                        ":me": {"S": lock_id},
                        ":until": _n(now + LOCK_SECONDS),
                        ":now": _n(now),
                    },
                    ReturnValues="ALL_OLD",
                )
            except Exception as exc:
                if not is_conditional_failure(exc):
                    raise
                time.sleep(random.uniform(0, min(0.5, 0.02 * 2**attempt)))  # noqa: S311 - jitter
                continue
            old = reply.get("Attributes") or {}
            stale = None
            if "lock_op" in old:  # the previous holder died with its work half done
                stale = Stale(
                    str(old["lock_op"]["S"]),
                    int(old.get("pending_bytes", {}).get("N", 0)),
                    int(old.get("pending_files", {}).get("N", 0)),
                )
            return Lock(
                tenant_id=tenant_id,
                key=key,
                lock_id=lock_id,
                version=old["file_version"]["S"] if "file_version" in old else None,
                size=int(old.get("file_bytes", {}).get("N", 0)),
                created_by=old["created_by"]["S"] if "created_by" in old else None,
                stale=stale,
            )
        raise FileBusy(f"the file {key[:64]!r} is being changed by another request; try again")

    def _held(self, lock: Lock) -> dict[str, Any]:
        return {
            "ConditionExpression": "lock_id = :me",
            "ExpressionAttributeValues": {":me": {"S": lock.lock_id}},
        }

    def unlock(self, lock: Lock) -> None:
        """Give the lock back with nothing changed (an absent key's placeholder goes)."""
        if lock.exists:
            self.client.update_item(
                TableName=self.table,
                Key=self._file_key(lock.tenant_id, lock.key),
                UpdateExpression=f"REMOVE {_LOCK_ATTRIBUTES}",
                **self._held(lock),
            )
        else:
            self.client.delete_item(
                TableName=self.table, Key=self._file_key(lock.tenant_id, lock.key), **self._held(lock)
            )

    # ------------------------------------------------------------------ writes of a file
    def reserve(self, lock: Lock, op: Op, size: int, files: int, quotas: ResourceQuotas) -> None:
        """Reserve ``size`` bytes and ``files`` files for the lock holder's write (413 when they do
        not fit), recorded with the lock so a successor can undo it."""
        update = self._pending(lock, op, size, files)
        if not self._transact([self._reserve_update(lock.tenant_id, size, files, quotas), update]):
            raise StorageQuotaExceeded("the tenant's storage quota is used up")

    def abandon(self, lock: Lock, size: int, files: int) -> None:
        """The write failed: give back what it reserved, and the lock."""
        release = self._usage_update(lock.tenant_id, -size, -files)
        if lock.exists:
            unlock = {
                "Update": {
                    "TableName": self.table,
                    "Key": self._file_key(lock.tenant_id, lock.key),
                    "UpdateExpression": f"REMOVE {_LOCK_ATTRIBUTES}",
                    **self._held(lock),
                }
            }
        else:
            unlock = {
                "Delete": {
                    "TableName": self.table,
                    "Key": self._file_key(lock.tenant_id, lock.key),
                    **self._held(lock),
                }
            }
        self._transact([release, unlock])

    def commit(
        self, lock: Lock, version: str | None, size: int, created_by: str | None, *, keep_previous: bool
    ) -> None:
        """The new version is stored: it becomes the key's current one. With ``keep_previous``
        (a versioned bucket) the version it replaced stays counted, as noncurrent."""
        now = self.clock()
        # (an unversioned bucket's only version is "null" to S3)
        values: dict[str, Any] = {
            ":me": {"S": lock.lock_id},
            ":size": _n(size),
            ":v": {"S": version or "null"},
        }
        sets = ["file_bytes = :size", "file_version = :v"]
        if created_by:
            values[":by"] = {"S": created_by}
            sets.append("created_by = if_not_exists(created_by, :by)")
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._file_key(lock.tenant_id, lock.key),
                    "UpdateExpression": f"SET {', '.join(sets)} REMOVE {_LOCK_ATTRIBUTES}",
                    "ConditionExpression": "lock_id = :me",
                    "ExpressionAttributeValues": values,
                }
            }
        ]
        if lock.exists and keep_previous and lock.version not in (None, version):
            items.append(self._noncurrent_put(lock, now))
        elif lock.exists and not keep_previous:
            # the bucket kept no old version: the replaced bytes are gone
            items.append(self._usage_update(lock.tenant_id, -lock.size, 0))
        if not self._transact(items):
            raise FileBusy(f"the lock on {lock.key[:64]!r} was lost; try again")

    # ------------------------------------------------------------------ deletes
    def noncurrent_of(self, tenant_id: str, key: str) -> list[Noncurrent]:
        """The counted noncurrent versions of one key."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": f"storage#{tenant_id}#noncurrent"},
                ":prefix": {"S": f"{key}{_SEPARATOR}"},
            },
            ConsistentRead=True,
        )
        return [_noncurrent(item) for page in pages for item in page.get("Items", [])]

    def begin_delete(self, lock: Lock) -> None:
        """Record that the holder deletes the key (a successor finishes the release)."""
        self.client.update_item(
            TableName=self.table,
            Key=self._file_key(lock.tenant_id, lock.key),
            UpdateExpression="SET lock_op = :op",
            ConditionExpression="lock_id = :me",
            ExpressionAttributeValues={":me": {"S": lock.lock_id}, ":op": {"S": Op.DELETE}},
        )

    def removed(self, lock: Lock, noncurrent: list[Noncurrent]) -> None:
        """Every version of the key is gone from S3: release them all and the key, at once.

        Each noncurrent version is released only if its item is still there (this call removed
        it), the current one with the key's item (this lock holder's), and the counter never
        below zero.
        """
        chunks = [noncurrent[i : i + 90] for i in range(0, len(noncurrent), 90)] or [[]]
        for index, chunk in enumerate(chunks):
            items: list[dict[str, Any]] = [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._noncurrent_key(lock.tenant_id, n.key, n.version),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
                for n in chunk
            ]
            released, files = sum(n.size for n in chunk), 0
            if index == len(chunks) - 1:
                items.append(
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": self._file_key(lock.tenant_id, lock.key),
                            **self._held(lock),
                        }
                    }
                )
                released, files = released + (lock.size if lock.exists else 0), (1 if lock.exists else 0)
            items.append(self._usage_update(lock.tenant_id, -released, -files))
            if not self._transact(items):
                raise FileBusy(f"the file {lock.key[:64]!r} changed while it was deleted; try again")

    # ------------------------------------------------------------------ presigned uploads
    def reserve_upload(
        self, tenant_id: str, upload_id: str, key: str, size: int, quotas: ResourceQuotas, expires_at: float
    ) -> None:
        """Reserve a granted upload (one file of ``size`` bytes) until it is completed or expires."""
        item = {
            "pk": {"S": UPLOADS_PK},
            "sk": {"S": f"{expires_at:017.3f}#{tenant_id}#{upload_id}"},
            "tenant_id": {"S": tenant_id},
            "upload_id": {"S": upload_id},
            "file_key": {"S": key},
            "file_bytes": _n(size),
            "expires_at": _n(expires_at),
        }
        put = {
            "Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        }
        reserve = self._reserve_update(tenant_id, size, 1, quotas)
        upload_ref = {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "pk": {"S": f"storage#{tenant_id}#upload"},
                    "sk": {"S": upload_id},
                    "reservation": item["sk"],
                    "expires_at": _n(expires_at),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        if not self._transact([reserve, put, upload_ref]):
            raise StorageQuotaExceeded("the tenant's storage quota is used up")

    def claim_upload(self, lock: Lock, upload_id: str, *, replacing: bool) -> int | None:
        """Hand a granted upload's reservation to the lock holder's write: the bytes it reserved
        (None once it expired and was released, or was claimed before). The upload reserved a file
        too: ``replacing`` an existing one, that file is given back here."""
        ref = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"storage#{lock.tenant_id}#upload"}, "sk": {"S": upload_id}},
            ConsistentRead=True,
        ).get("Item")
        if ref is None:
            return None
        main = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": UPLOADS_PK}, "sk": ref["reservation"]}, ConsistentRead=True
        ).get("Item")
        if main is None:
            return None
        size = int(main["file_bytes"]["N"])
        extra = [self._usage_update(lock.tenant_id, 0, -1)] if replacing else []
        claimed = self._transact(
            [
                *extra,
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": UPLOADS_PK}, "sk": ref["reservation"]},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": f"storage#{lock.tenant_id}#upload"}, "sk": {"S": upload_id}},
                    }
                },
                self._pending(lock, Op.PUT, size, 0 if replacing else 1),
            ]
        )
        return size if claimed else None

    def expired_uploads(self, now: float) -> Iterator[UploadReservation]:
        """Granted uploads whose time is up (oldest first)."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk < :now",
            ExpressionAttributeValues={":pk": {"S": UPLOADS_PK}, ":now": {"S": f"{now:017.3f}"}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                yield UploadReservation(
                    tenant_id=item["tenant_id"]["S"],
                    upload_id=item["upload_id"]["S"],
                    key=item["file_key"]["S"],
                    size=int(item["file_bytes"]["N"]),
                    expires_at=float(item["expires_at"]["N"]),
                    sk=item["sk"]["S"],
                )

    def release_upload(self, upload: UploadReservation) -> bool:
        """Give back an expired upload's reservation; True for the one call that did."""
        return self._transact(
            [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": UPLOADS_PK}, "sk": {"S": upload.sk}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": {
                            "pk": {"S": f"storage#{upload.tenant_id}#upload"},
                            "sk": {"S": upload.upload_id},
                        },
                    }
                },
                self._usage_update(upload.tenant_id, -upload.size, -1),
            ]
        )

    # ------------------------------------------------------------------ lifecycle
    def noncurrent_before(self, tenant_id: str, cutoff: float) -> list[Noncurrent]:
        """The tenant's counted noncurrent versions that became noncurrent before ``cutoff``."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            FilterExpression="noncurrent_since < :cutoff",
            ExpressionAttributeValues={
                ":pk": {"S": f"storage#{tenant_id}#noncurrent"},
                ":cutoff": _n(cutoff),
            },
            ConsistentRead=True,
        )
        return [_noncurrent(item) for page in pages for item in page.get("Items", [])]

    def release_noncurrent(self, tenant_id: str, version: Noncurrent) -> bool:
        """A noncurrent version S3 no longer has: released by exactly one caller."""
        return self._transact(
            [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._noncurrent_key(tenant_id, version.key, version.version),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                self._usage_update(tenant_id, -version.size, 0),
            ]
        )

    def settle(self, lock: Lock, present: set[str], landed: str | None) -> Lock:
        """Finish or undo what a dead lock holder left (``lock.stale``), given the versions S3
        has of the key (``present``) and the one its write left there (``landed``), if any.

        A write that landed becomes the key's current version on the bytes it reserved (the one
        it replaced noncurrent, if S3 kept it); one that did not gives its reservation back; a
        current version S3 no longer has (a delete got that far) is released with its key. The
        lock stays this caller's; the key's state after is returned.
        """
        assert lock.stale is not None
        stale = lock.stale
        values: dict[str, Any] = {":me": {"S": lock.lock_id}}
        items: list[dict[str, Any]] = []
        sets: list[str] = []
        removes = ["lock_op", "pending_bytes", "pending_files"]
        version, size = lock.version, lock.size
        if landed is not None:
            values.update({":v": {"S": landed}, ":size": _n(stale.pending_bytes)})
            sets = ["file_version = :v", "file_bytes = :size"]
            if lock.version in present:
                items.append(self._noncurrent_put(lock, self.clock()))
            elif lock.exists:
                items.append(self._usage_update(lock.tenant_id, -lock.size, 0))
            version, size = landed, stale.pending_bytes
        else:
            release_bytes, release_files = stale.pending_bytes, stale.pending_files
            if lock.exists and lock.version not in present:
                release_bytes, release_files = release_bytes + lock.size, release_files + 1
                removes += ["file_version", "file_bytes"]
                version, size = None, 0
            if release_bytes or release_files:
                items.append(self._usage_update(lock.tenant_id, -release_bytes, -release_files))
        expression = (f"SET {', '.join(sets)} " if sets else "") + f"REMOVE {', '.join(removes)}"
        items.append(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._file_key(lock.tenant_id, lock.key),
                    "UpdateExpression": expression,
                    "ConditionExpression": "lock_id = :me",
                    "ExpressionAttributeValues": values,
                }
            }
        )
        if not self._transact(items):
            raise FileBusy(f"the lock on {lock.key[:64]!r} was lost; try again")
        return Lock(lock.tenant_id, lock.key, lock.lock_id, version, size, lock.created_by)

    def created_by(self, tenant_id: str, username: str) -> list[dict[str, Any]]:
        """The files ``username`` created in the tenant that are still stored (GDPR export)."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            FilterExpression="created_by = :u AND attribute_exists(file_version)",
            ExpressionAttributeValues={":pk": {"S": f"storage#{tenant_id}#file"}, ":u": {"S": username}},
            ConsistentRead=True,
        )
        return [
            {"key": item["sk"]["S"], "size": int(item["file_bytes"]["N"])}
            for page in pages
            for item in page.get("Items", [])
        ]


def _noncurrent(item: dict[str, Any]) -> Noncurrent:
    key, _, version = item["sk"]["S"].rpartition(_SEPARATOR)
    return Noncurrent(
        key=key,
        version=version,
        size=int(item["file_bytes"]["N"]),
        since=float(item["noncurrent_since"]["N"]),
    )
