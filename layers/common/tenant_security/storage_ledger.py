"""The exact accounting behind a tenant's storage quota: every change is a conditional write.

What counts: every version S3 keeps of a tenant's files -- the current ones, and the versions a
replacement made noncurrent until the bucket's lifecycle rule removes them -- and every presigned
upload from the moment it is granted until it is completed or expires. ``files_used`` counts keys
with a current version.

Items in the counters table (IAM: ``storage#*`` leading keys):

- ``storage#<tenant>#file / <key>``: the key's current version and size (``file_version``,
  ``file_bytes``), and while a request changes it, that request's lock (``lock_id``,
  ``lock_until``) and what it reserved (``pending_bytes``, ``pending_files``, ``lock_op``; and
  ``pending_upload``, the upload it completes). Writers of one key take turns; a lock outlives
  any function timeout, so only a dead holder's lock expires, and the next holder settles what it
  left against what S3 keeps (:meth:`FileLedger.lock` returns it as ``stale``).
- ``storage#<tenant>#noncurrent / <key>\\x1f<version>``: a version a replacement made noncurrent,
  with its size; released by the call that removes it (a DELETE, or the sweep once lifecycle
  expired it), under a condition, so two callers never release it twice.
- ``storage#uploads / <expires_at>#<tenant>#<upload_id>`` (and ``storage#<tenant>#upload /
  <upload_id>`` pointing at it): a granted presigned upload, in one of the :class:`UploadState`
  states. A presigned POST is accepted by S3 until it expires, however often it is sent, so the
  item outlives its completion: claimed once by a completion (``completing``: its reservation
  moves to the key's lock), then ``completed`` with the version it made, it stays until its link
  expired; the sweep then removes every version S3 keeps under its staging key and the item
  (releasing the reservation of one never completed). A completed upload is never completed again.
- ``storage#unsettled / <tenant>\\x1f<key>``: a key whose write or delete had an outcome S3 did not
  tell (the reply lost, then S3 unreachable to ask): its lock still holds what was reserved, and
  the sweep settles it against what S3 keeps once the lock expired.

When the outcome of a write is unknown, :meth:`FileLedger.reconcile` makes the ledger equal what
S3 keeps of the key -- never a guess that nothing happened.

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
UNSETTLED_PK = "storage#unsettled"
_SEPARATOR = "\x1f"  # a control character: never part of a file key
_LOCK_ATTRIBUTES = "lock_id, lock_until, lock_op, pending_bytes, pending_files, pending_upload"
_PENDING_ATTRIBUTES = ["lock_op", "pending_bytes", "pending_files", "pending_upload"]
# One transaction writes at most 100 items: chunks leave room for the usage counter and a check.
_CHUNK = 90


class Op(StrEnum):
    """What the holder of a key's lock is doing (a successor finishes or undoes it)."""

    PUT = "put"
    DELETE = "delete"


class UploadState(StrEnum):
    """Where a granted presigned upload is (its item stays until its link expired)."""

    PENDING = "pending"  # granted, its bytes reserved; not completed (yet)
    COMPLETING = "completing"  # claimed by the holder of its key's lock, which holds the reservation
    COMPLETED = "completed"  # its file is stored (``version``); never completed again


class FileBusy(Conflict):
    """Another request is changing this file right now: try again."""

    code = "file_busy"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


@dataclass(frozen=True)
class Stale:
    """What a lock holder reserved for its operation (what a dead one left, or one whose outcome is
    unknown); ``upload``: the reservation item of the upload it completes, if it does."""

    op: str
    pending_bytes: int
    pending_files: int
    upload: str | None = None


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
    state: UploadState = UploadState.PENDING
    version: str | None = None


@dataclass(frozen=True)
class Stored:
    """What S3 keeps of one key: its versions (delete markers left out), the current one (None
    when there is none, or a delete marker is on top), and the plaintext sizes of the versions the
    ledger does not count yet."""

    versions: tuple[str, ...]
    current: str | None
    sizes: dict[str, int]


@dataclass(frozen=True)
class Unsettled:
    """A key left for the sweep to settle, from ``settle_after`` on (when its lock has expired)."""

    tenant_id: str
    key: str
    settle_after: float


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
        """A change of the usage whose releases (negative deltas) cannot take the counter below
        zero; an increase (what S3 already keeps, counted) is not refused."""
        values = {":b": _n(bytes_delta), ":f": _n(files_delta)}
        conditions = []
        if bytes_delta < 0:
            conditions.append("bytes_used >= :size")
            values[":size"] = _n(-bytes_delta)
        if files_delta < 0:
            conditions.append("files_used >= :files")
            values[":files"] = _n(-files_delta)
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": self.quota.key(tenant_id),
            "UpdateExpression": "ADD bytes_used :b, files_used :f",
            "ExpressionAttributeValues": values,
        }
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        return {"Update": update}

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

    def _pending(
        self, lock: Lock, op: Op, size: int, files: int, upload: str | None = None
    ) -> dict[str, Any]:
        """Record with the lock what its holder reserved (a successor undoes or adopts it)."""
        values: dict[str, Any] = {
            ":me": {"S": lock.lock_id},
            ":op": {"S": op},
            ":b": _n(size),
            ":f": _n(files),
        }
        expression = "SET lock_op = :op, pending_bytes = :b, pending_files = :f"
        if upload is not None:
            values[":u"] = {"S": upload}
            expression += ", pending_upload = :u"
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._file_key(lock.tenant_id, lock.key),
                "UpdateExpression": expression,
                "ConditionExpression": "lock_id = :me",
                "ExpressionAttributeValues": values,
            }
        }

    def _noncurrent_put(self, lock: Lock, now: float) -> dict[str, Any]:
        """The lock's current version, counted from now on as noncurrent."""
        return self._noncurrent_item(lock.tenant_id, lock.key, str(lock.version), lock.size, now)

    def _noncurrent_item(
        self, tenant_id: str, key: str, version: str, size: int, now: float
    ) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    **self._noncurrent_key(tenant_id, key, version),
                    "file_bytes": _n(size),
                    "noncurrent_since": _n(now),
                },
            }
        }

    def _upload_update(self, upload: str, to: UploadState, version: str | None = None) -> dict[str, Any]:
        """Move an upload being completed on (condition: it is ``completing``, which only the holder
        of its key's lock changes)."""
        values: dict[str, Any] = {":to": {"S": to}, ":completing": {"S": UploadState.COMPLETING}}
        expression = "SET upload_state = :to"
        if version is not None:
            values[":v"] = {"S": version}
            expression += ", file_version = :v"
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": UPLOADS_PK}, "sk": {"S": upload}},
                "UpdateExpression": expression,
                "ConditionExpression": "upload_state = :completing",
                "ExpressionAttributeValues": values,
            }
        }

    def _lock_check(self, lock: Lock) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": self._file_key(lock.tenant_id, lock.key),
                **self._held(lock),
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
                    old["pending_upload"]["S"] if "pending_upload" in old else None,
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

    def _release_lock(self, lock: Lock) -> dict[str, Any]:
        """The lock given back in a transaction (an absent key's placeholder goes)."""
        if lock.exists:
            return {
                "Update": {
                    "TableName": self.table,
                    "Key": self._file_key(lock.tenant_id, lock.key),
                    "UpdateExpression": f"REMOVE {_LOCK_ATTRIBUTES}",
                    **self._held(lock),
                }
            }
        return {
            "Delete": {
                "TableName": self.table,
                "Key": self._file_key(lock.tenant_id, lock.key),
                **self._held(lock),
            }
        }

    def abandon(self, lock: Lock, size: int, files: int, upload: UploadReservation | None = None) -> None:
        """The write stored nothing (S3 refused it, or it was never sent): give back what it
        reserved, and the lock. The reservation of an ``upload`` being completed goes back to the
        upload instead (``pending`` again: it can be completed until its link expires)."""
        if upload is None:
            self._transact([self._usage_update(lock.tenant_id, -size, -files), self._release_lock(lock)])
        else:
            self._transact([self._upload_update(upload.sk, UploadState.PENDING), self._release_lock(lock)])

    def commit(
        self,
        lock: Lock,
        version: str | None,
        size: int,
        created_by: str | None,
        *,
        keep_previous: bool,
        upload: UploadReservation | None = None,
    ) -> None:
        """The new version is stored: it becomes the key's current one. With ``keep_previous``
        (a versioned bucket) the version it replaced stays counted, as noncurrent. The ``upload``
        it completes (whose reservation counted a file) becomes ``completed`` with it, at once."""
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
        released_bytes = 0
        if lock.exists and keep_previous and lock.version not in (None, version):
            items.append(self._noncurrent_put(lock, now))
        elif lock.exists and not keep_previous:
            # the bucket kept no old version: the replaced bytes are gone
            released_bytes = lock.size
        # an upload reserved a file; replacing one, the key still counts one file
        released_files = 1 if upload is not None and lock.exists else 0
        if released_bytes or released_files:
            items.append(self._usage_update(lock.tenant_id, -released_bytes, -released_files))
        if upload is not None:
            items.append(self._upload_update(upload.sk, UploadState.COMPLETED, version or "null"))
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
            "upload_state": {"S": UploadState.PENDING},
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

    def upload(self, tenant_id: str, upload_id: str) -> UploadReservation | None:
        """The tenant's granted upload ``upload_id`` (None: never granted, or expired and swept)."""
        ref = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"storage#{tenant_id}#upload"}, "sk": {"S": upload_id}},
            ConsistentRead=True,
        ).get("Item")
        if ref is None:
            return None
        main = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": UPLOADS_PK}, "sk": ref["reservation"]}, ConsistentRead=True
        ).get("Item")
        return None if main is None else _upload(main)

    def claim_upload(self, lock: Lock, upload: UploadReservation) -> bool:
        """Hand a pending upload's reservation (its bytes and one file) to the lock holder's write,
        the upload ``completing``; False when it is not pending (another completion claimed it)."""
        claim = {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": UPLOADS_PK}, "sk": {"S": upload.sk}},
                "UpdateExpression": "SET upload_state = :completing",
                # (an item granted before upload states existed is pending)
                "ConditionExpression": "attribute_exists(pk) AND "
                "(attribute_not_exists(upload_state) OR upload_state = :pending)",
                "ExpressionAttributeValues": {
                    ":completing": {"S": UploadState.COMPLETING},
                    ":pending": {"S": UploadState.PENDING},
                },
            }
        }
        return self._transact([claim, self._pending(lock, Op.PUT, upload.size, 1, upload.sk)])

    def expired_uploads(self, now: float) -> Iterator[UploadReservation]:
        """Granted uploads whose time is up (oldest first), whatever their state."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk < :now",
            ExpressionAttributeValues={":pk": {"S": UPLOADS_PK}, ":now": {"S": f"{now:017.3f}"}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                yield _upload(item)

    def _upload_deletes(self, upload: UploadReservation, condition: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": UPLOADS_PK}, "sk": {"S": upload.sk}},
                    **condition,
                }
            },
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": f"storage#{upload.tenant_id}#upload"}, "sk": {"S": upload.upload_id}},
                }
            },
        ]

    def release_upload(self, upload: UploadReservation) -> bool:
        """Give back an expired upload's reservation; True for the one call that did (never one a
        completion claimed)."""
        pending = {
            "ConditionExpression": "attribute_exists(pk) AND "
            "(attribute_not_exists(upload_state) OR upload_state = :pending)",
            "ExpressionAttributeValues": {":pending": {"S": UploadState.PENDING}},
        }
        return self._transact(
            [*self._upload_deletes(upload, pending), self._usage_update(upload.tenant_id, -upload.size, -1)]
        )

    def forget_upload(self, upload: UploadReservation) -> bool:
        """Drop a completed upload whose link expired (its reservation is its file's now)."""
        completed = {
            "ConditionExpression": "upload_state = :completed",
            "ExpressionAttributeValues": {":completed": {"S": UploadState.COMPLETED}},
        }
        return self._transact(self._upload_deletes(upload, completed))

    # ------------------------------------------------------------------ left for the sweep
    def leave_for_sweep(self, lock: Lock) -> None:
        """The outcome of the lock holder's work is unknown and S3 cannot tell now: the lock keeps
        what it reserved, and the sweep settles the key once the lock expired."""
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": UNSETTLED_PK},
                "sk": {"S": f"{lock.tenant_id}{_SEPARATOR}{lock.key}"},
                "tenant_id": {"S": lock.tenant_id},
                "file_key": {"S": lock.key},
                "settle_after": _n(self.clock() + LOCK_SECONDS),
            },
        )

    def unsettled(self, now: float) -> list[Unsettled]:
        """The keys left for the sweep whose locks have expired by ``now``."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            FilterExpression="settle_after < :now",
            ExpressionAttributeValues={":pk": {"S": UNSETTLED_PK}, ":now": _n(now)},
            ConsistentRead=True,
        )
        return [
            Unsettled(item["tenant_id"]["S"], item["file_key"]["S"], float(item["settle_after"]["N"]))
            for page in pages
            for item in page.get("Items", [])
        ]

    def settled(self, left: Unsettled) -> None:
        """The key is settled: forget it (unless it was left again since: the next sweep)."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": UNSETTLED_PK}, "sk": {"S": f"{left.tenant_id}{_SEPARATOR}{left.key}"}},
                ConditionExpression="settle_after = :at",
                ExpressionAttributeValues={":at": _n(left.settle_after)},
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

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

    def _release_all(self, tenant_id: str, versions: list[Noncurrent]) -> None:
        """Release noncurrent versions S3 no longer has, in chunks (one by one where another
        caller -- the lifecycle sweep -- released some first: each exactly once)."""
        for start in range(0, len(versions), _CHUNK):
            chunk = versions[start : start + _CHUNK]
            items: list[dict[str, Any]] = [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._noncurrent_key(tenant_id, n.key, n.version),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
                for n in chunk
            ]
            items.append(self._usage_update(tenant_id, -sum(n.size for n in chunk), 0))
            if not self._transact(items):
                for n in chunk:
                    self.release_noncurrent(tenant_id, n)

    def _upload_at(self, sk: str) -> UploadReservation | None:
        item = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": UPLOADS_PK}, "sk": {"S": sk}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else _upload(item)

    def _adopt_noncurrent(self, lock: Lock, versions: list[str], sizes: dict[str, int], now: float) -> None:
        """Count versions S3 keeps as noncurrent that the ledger did not count, in chunks."""
        for start in range(0, len(versions), _CHUNK):
            chunk = versions[start : start + _CHUNK]
            adopt = [self._noncurrent_item(lock.tenant_id, lock.key, v, sizes[v], now) for v in chunk]
            usage = self._usage_update(lock.tenant_id, sum(sizes[v] for v in chunk), 0)
            if not self._transact([self._lock_check(lock), *adopt, usage]):
                raise FileBusy(f"the lock on {lock.key[:64]!r} was lost; try again")

    def _pending_outcome(
        self, pending: Stale, landed: str | None
    ) -> tuple[tuple[int, int], list[dict[str, Any]]]:
        """What becomes of a pending reservation: the bytes and files given back, and the change
        of the upload it completes, if any (completed on what landed, or its reservation again)."""
        upload = self._upload_at(pending.upload) if pending.upload else None
        if upload is not None and upload.state == UploadState.PENDING:
            return (0, 0), []  # (the upload holds the reservation: nothing to give back twice)
        if upload is not None and upload.state == UploadState.COMPLETING:
            if landed is None:
                return (0, 0), [self._upload_update(upload.sk, UploadState.PENDING)]
            return (pending.pending_bytes, pending.pending_files), [
                self._upload_update(upload.sk, UploadState.COMPLETED, landed)
            ]
        return (pending.pending_bytes, pending.pending_files), []

    def reconcile(
        self,
        lock: Lock,
        noncurrent: list[Noncurrent],
        stored: Stored,
        pending: Stale | None,
        created_by: str | None = None,
    ) -> tuple[Lock, str | None]:
        """Make the key's accounting equal what S3 keeps of it (``stored``), under the caller's
        lock, whatever the work whose outcome is unknown did (``pending``: what it reserved; a dead
        holder's, or this caller's own write whose reply was lost).

        Counted versions S3 no longer has are released (each by one caller); versions S3 keeps that
        the ledger does not count (a write that landed, each attempt botocore repeated) are counted
        at their sizes; S3's current version becomes the key's -- an older one current again after
        a partial delete too -- and the pending reservation is given back, except an upload's whose
        copy did not land: that goes back to the upload (``pending`` again). Returns the key's state
        (the lock still this caller's, nothing pending) and the newest version that landed uncounted,
        if any.
        """
        tenant_id, key, now = lock.tenant_id, lock.key, self.clock()
        present = set(stored.versions)
        self._release_all(tenant_id, [n for n in noncurrent if n.version not in present])
        kept = {n.version: n for n in noncurrent if n.version in present}
        counted = set(kept) | ({str(lock.version)} if lock.exists else set())
        uncounted = [v for v in stored.versions if v not in counted]
        landed = uncounted[0] if uncounted else None  # (newest first)
        self._adopt_noncurrent(lock, [v for v in uncounted if v != stored.current], stored.sizes, now)
        items: list[dict[str, Any]] = []
        values: dict[str, Any] = {":me": {"S": lock.lock_id}}
        sets: list[str] = []
        removes = list(_PENDING_ATTRIBUTES)
        bytes_delta = files_delta = 0
        version, size = lock.version, lock.size
        if stored.current != (lock.version if lock.exists else None):
            if lock.exists and lock.version in present:
                items.append(self._noncurrent_put(lock, now))
            elif lock.exists:
                bytes_delta -= lock.size
            if stored.current is None:
                removes += ["file_version", "file_bytes"]
                version, size = None, 0
            else:
                version = stored.current
                if version in kept:  # an older version current again (a delete S3 did not finish)
                    size = kept[version].size
                    items.append(
                        {
                            "Delete": {
                                "TableName": self.table,
                                "Key": self._noncurrent_key(tenant_id, key, version),
                                "ConditionExpression": "attribute_exists(pk)",
                            }
                        }
                    )
                else:
                    size = stored.sizes[version]
                    bytes_delta += size
                    if created_by:
                        values[":by"] = {"S": created_by}
                        sets.append("created_by = if_not_exists(created_by, :by)")
                values.update({":v": {"S": version}, ":size": _n(size)})
                sets += ["file_version = :v", "file_bytes = :size"]
            files_delta += (1 if stored.current else 0) - (1 if lock.exists else 0)
        if pending is not None:
            given_back, upload_update = self._pending_outcome(pending, landed)
            items += upload_update
            bytes_delta, files_delta = bytes_delta - given_back[0], files_delta - given_back[1]
        if bytes_delta or files_delta:
            items.append(self._usage_update(tenant_id, bytes_delta, files_delta))
        expression = (f"SET {', '.join(sets)} " if sets else "") + f"REMOVE {', '.join(removes)}"
        items.append(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._file_key(tenant_id, key),
                    "UpdateExpression": expression,
                    "ConditionExpression": "lock_id = :me",
                    "ExpressionAttributeValues": values,
                }
            }
        )
        if not self._transact(items):
            raise FileBusy(f"the lock on {key[:64]!r} was lost; try again")
        return Lock(tenant_id, key, lock.lock_id, version, size, lock.created_by), landed

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


def _upload(item: dict[str, Any]) -> UploadReservation:
    return UploadReservation(
        tenant_id=item["tenant_id"]["S"],
        upload_id=item["upload_id"]["S"],
        key=item["file_key"]["S"],
        size=int(item["file_bytes"]["N"]),
        expires_at=float(item["expires_at"]["N"]),
        sk=item["sk"]["S"],
        # (an item granted before upload states existed is pending)
        state=UploadState(item.get("upload_state", {}).get("S", UploadState.PENDING)),
        version=item["file_version"]["S"] if "file_version" in item else None,
    )
