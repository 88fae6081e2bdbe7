"""A key's accounting made equal to what S3 keeps of it, and the releases of the sweep: keys left
unsettled, noncurrent versions the lifecycle rule removed."""

from __future__ import annotations

from typing import Any

from tenant_security.dynamo import is_conditional_failure, query_pages
from tenant_security.storage.ledger_items import LedgerItems
from tenant_security.storage.ledger_states import (
    CHUNK,
    LOCK_SECONDS,
    PENDING_ATTRIBUTES,
    SEPARATOR,
    UNSETTLED_PK,
    FileBusy,
    Lock,
    Noncurrent,
    Stale,
    Stored,
    Unsettled,
    UploadState,
    noncurrent_from,
    number,
)


class LedgerSettlement(LedgerItems):
    """What settles a key whose last change had an unknown outcome, and what the sweep releases."""

    # ------------------------------------------------------------------ left for the sweep
    def leave_for_sweep(self, lock: Lock) -> None:
        """The outcome of the lock holder's work is unknown and S3 cannot tell now: the lock keeps
        what it reserved, and the sweep settles the key once the lock expired."""
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": UNSETTLED_PK},
                "sk": {"S": f"{lock.tenant_id}{SEPARATOR}{lock.key}"},
                "tenant_id": {"S": lock.tenant_id},
                "file_key": {"S": lock.key},
                "settle_after": number(self.clock() + LOCK_SECONDS),
            },
        )

    def unsettled(self, now: float) -> list[Unsettled]:
        """The keys left for the sweep whose locks have expired by ``now``."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            FilterExpression="settle_after < :now",
            ExpressionAttributeValues={":pk": {"S": UNSETTLED_PK}, ":now": number(now)},
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
                Key={"pk": {"S": UNSETTLED_PK}, "sk": {"S": f"{left.tenant_id}{SEPARATOR}{left.key}"}},
                ConditionExpression="settle_after = :at",
                ExpressionAttributeValues={":at": number(left.settle_after)},
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
                ":cutoff": number(cutoff),
            },
            ConsistentRead=True,
        )
        return [noncurrent_from(item) for page in pages for item in page.get("Items", [])]

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
        for start in range(0, len(versions), CHUNK):
            chunk = versions[start : start + CHUNK]
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

    def _adopt_noncurrent(self, lock: Lock, versions: list[str], sizes: dict[str, int], now: float) -> None:
        """Count versions S3 keeps as noncurrent that the ledger did not count, in chunks."""
        for start in range(0, len(versions), CHUNK):
            chunk = versions[start : start + CHUNK]
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
        removes = list(PENDING_ATTRIBUTES)
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
                values.update({":v": {"S": version}, ":size": number(size)})
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
