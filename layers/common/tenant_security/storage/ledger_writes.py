"""A file key's lock, and the writes and deletes its holder makes."""

from __future__ import annotations

import random
import secrets
import time
from typing import Any

from tenant_security.dynamo import is_conditional_failure, query_pages
from tenant_security.models.quotas import ResourceQuotas
from tenant_security.quotas.storage import StorageQuotaExceeded
from tenant_security.storage.ledger_items import LedgerItems
from tenant_security.storage.ledger_states import (
    LOCK_ATTEMPTS,
    LOCK_ATTRIBUTES,
    LOCK_SECONDS,
    SEPARATOR,
    FileBusy,
    Lock,
    Noncurrent,
    Op,
    Stale,
    UploadReservation,
    UploadState,
    noncurrent_from,
    number,
)


class KeyWrites(LedgerItems):
    """A key's lock taken and given back, and what its holder writes under it."""

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
                        ":until": number(now + LOCK_SECONDS),
                        ":now": number(now),
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

    def unlock(self, lock: Lock) -> None:
        """Give the lock back with nothing changed (an absent key's placeholder goes)."""
        if lock.exists:
            self.client.update_item(
                TableName=self.table,
                Key=self._file_key(lock.tenant_id, lock.key),
                UpdateExpression=f"REMOVE {LOCK_ATTRIBUTES}",
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
            ":size": number(size),
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
                    "UpdateExpression": f"SET {', '.join(sets)} REMOVE {LOCK_ATTRIBUTES}",
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
                ":prefix": {"S": f"{key}{SEPARATOR}"},
            },
            ConsistentRead=True,
        )
        return [noncurrent_from(item) for page in pages for item in page.get("Items", [])]

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
