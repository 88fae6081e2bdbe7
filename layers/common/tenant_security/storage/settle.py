"""What every operation on a tenant's file key shares: the tenant's key ARN, what S3 keeps of a key,
and the ledger made equal to it when the outcome of a write or a delete is unknown."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from tenant_security.aws import error_code
from tenant_security.config import Settings
from tenant_security.errors import ServiceUnavailable
from tenant_security.observability import logger
from tenant_security.quotas.storage import StorageQuota
from tenant_security.storage.file_keys import SIZE_METADATA
from tenant_security.storage.ledger import FileLedger
from tenant_security.storage.ledger_states import LOCK_SECONDS, Lock, Stale, Stored, UploadReservation
from tenant_security.storage.s3_replies import retried, unanswered

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef


class KeySettlement:
    """The S3 side of one tenant's files (S3 client, KMS client, the storage quota and the ledger
    given), as every files operation uses it."""

    def __init__(
        self, settings: Settings, s3: S3Client, kms: KMSClient, quota: StorageQuota, ledger: FileLedger
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.kms = kms
        self.quota = quota
        self.ledger = ledger
        self._key_arns: dict[str, str] = {}

    def _data_key(self, tenant_id: str) -> str:
        """The tenant data key's ARN (the bucket policy names the key, not its alias)."""
        if tenant_id not in self._key_arns:
            meta = self.kms.describe_key(KeyId=self.settings.data_key_arn(tenant_id))["KeyMetadata"]
            self._key_arns[tenant_id] = str(meta["Arn"])
        return self._key_arns[tenant_id]

    def _head(self, tenant_id: str, key: str) -> dict[str, Any] | None:
        """The object's HeadObject reply, or None when there is no such object."""
        try:
            head = cast(
                "dict[str, Any]", self.s3.head_object(Bucket=self.settings.data_bucket(tenant_id), Key=key)
            )
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def _versions(self, tenant_id: str, key: str) -> list[dict[str, Any]]:
        """Every version and delete marker S3 has of exactly ``key``, newest (the current) first."""
        found: list[dict[str, Any]] = []
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.settings.data_bucket(tenant_id), Prefix=key):
            found += [{**v, "marker": False} for v in page.get("Versions", []) if v["Key"] == key]
            found += [{**v, "marker": True} for v in page.get("DeleteMarkers", []) if v["Key"] == key]
        # (LastModified has whole seconds: S3's IsLatest names the current one)
        return sorted(found, key=lambda v: (bool(v.get("IsLatest")), v["LastModified"]), reverse=True)

    def _size_of(self, tenant_id: str, key: str, version: str) -> int:
        """The plaintext size of one version of a file (as the quota counts it)."""
        head = self.s3.head_object(Bucket=self.settings.data_bucket(tenant_id), Key=key, VersionId=version)
        return int(head.get("Metadata", {}).get(SIZE_METADATA, head["ContentLength"]))

    def _reconcile(
        self, lock: Lock, pending: Stale | None, created_by: str | None = None
    ) -> tuple[Lock, str | None]:
        """Make the ledger equal what S3 keeps of the lock's key (:meth:`FileLedger.reconcile`):
        the key's state after, and the version that landed uncounted, if any."""
        tenant_id, key = lock.tenant_id, lock.key
        versions = self._versions(tenant_id, key)
        noncurrent = self.ledger.noncurrent_of(tenant_id, key)
        counted = {n.version for n in noncurrent} | ({str(lock.version)} if lock.exists else set())
        kept = tuple(str(v["VersionId"]) for v in versions if not v["marker"])
        current = str(versions[0]["VersionId"]) if versions and not versions[0]["marker"] else None
        sizes = {v: self._size_of(tenant_id, key, v) for v in kept if v not in counted}
        return self.ledger.reconcile(lock, noncurrent, Stored(kept, current, sizes), pending, created_by)

    def _settle_or_leave(
        self, lock: Lock, pending: Stale | None, created_by: str | None = None
    ) -> tuple[Lock, str | None] | None:
        """:meth:`_reconcile` after work whose outcome is unknown; None when S3 (or the ledger)
        cannot tell now: the lock keeps what it reserved and the sweep settles the key later."""
        try:
            return self._reconcile(lock, pending, created_by)
        except Exception as exc:
            logger.warning(
                "storage outcome unknown: left for the sweep",
                extra={"tenant_id": lock.tenant_id, "error_type": type(exc).__name__},
            )
            with contextlib.suppress(Exception):  # (then the key's next writer settles it)
                self.ledger.leave_for_sweep(lock)
            return None

    def _locked(self, tenant_id: str, key: str) -> Lock:
        """The key's lock; what a dead holder left is settled against what S3 has first."""
        lock = self.ledger.lock(tenant_id, key)
        if lock.stale is None:
            return lock
        return self._reconcile(lock, lock.stale)[0]

    def _landed(self, lock: Lock, exc: Exception, pending: Stale, created_by: str | None) -> str:
        """After a write S3 did not refuse raised ``exc`` (it may have stored it): the version it
        stored, counted, the lock given back. Raises when it stored nothing (its reservation given
        back, an upload's to the upload) and 503 when S3 cannot tell now (the reservation kept for
        the sweep to settle)."""
        settled = self._settle_or_leave(lock, pending, created_by)
        if settled is None:
            raise ServiceUnavailable(
                "S3 did not confirm the write and cannot tell now whether it stored it; "
                "the file is settled within minutes: try again then",
                headers={"Retry-After": str(LOCK_SECONDS)},
            ) from exc
        after, landed = settled
        self.ledger.unlock(after)
        if landed is not None:
            return landed
        if unanswered(exc):
            raise ServiceUnavailable("S3 did not confirm the write; nothing was stored: try again") from exc
        raise exc

    def _commit(
        self,
        lock: Lock,
        reply: Mapping[str, Any],
        pending: Stale,
        created_by: str | None,
        upload: UploadReservation | None = None,
    ) -> str | None:
        """Count the version a successful write made; the version."""
        version = reply.get("VersionId")
        if retried(reply):
            # botocore sent the write again: each attempt that landed is a version S3 keeps
            try:
                after, _ = self._reconcile(lock, pending, created_by)
            except Exception as exc:  # S3 cannot list the key now: count what the reply names
                logger.warning("retried write not reconciled", extra={"error_type": type(exc).__name__})
            else:
                self.ledger.unlock(after)
                return version
        self.ledger.commit(
            lock, version, pending.pending_bytes, created_by, keep_previous=version is not None, upload=upload
        )
        return version

    def _delete_staging(self, bucket: str, staging: str) -> None:
        """Remove a staging object and every version of it (staging is never counted); 503 when
        S3 kept some."""
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=staging):
            objects: list[ObjectIdentifierTypeDef] = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                if v["Key"] == staging
            ]
            if objects:
                reply = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                if reply.get("Errors"):
                    raise ServiceUnavailable(f"S3 kept {len(reply['Errors'])} staging version(s); try again")
