"""The files API: a tenant's files put, read, deleted and listed (and, through its bases, uploaded,
downloaded and swept)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenant_security import crypto, paging
from tenant_security.aws import error_code
from tenant_security.errors import NotFound, PayloadTooLarge, ServiceUnavailable
from tenant_security.locality import check_writable_in
from tenant_security.models.base import size_in_bytes
from tenant_security.storage.file_keys import (
    MAX_API_FILE_BYTES,
    PROTECTION_METADATA,
    PURPOSE_FILE,
    SIZE_METADATA,
    STAGING_PREFIX,
    check_key,
)
from tenant_security.storage.ledger_states import LOCK_SECONDS, Op, Stale
from tenant_security.storage.s3_replies import refused, unanswered, version_out
from tenant_security.storage.sweep import FileSweep
from tenant_security.storage.transfers import PresignedTransfers
from tenant_security.tenants import TenantProfile

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef


class TenantFiles(PresignedTransfers, FileSweep):
    """One tenant's files (S3 client, KMS client and the storage quota given)."""

    def put(
        self, tenant: TenantProfile, key: str, data: bytes, created_by: str | None = None
    ) -> dict[str, Any]:
        """Store (or replace) a file; 413 over max_file_size or the tenant's storage quota.

        If S3 does not answer the write (the object may be stored), what it keeps is read back: a
        stored file is counted and answered as written; otherwise the error stands (503)."""
        tenant_id, key = tenant.tenant_id, check_key(key)
        check_writable_in(tenant, self.settings.region)
        if len(data) > size_in_bytes(tenant.quotas.storage.max_file_size):
            raise PayloadTooLarge(f"file larger than max_file_size ({tenant.quotas.storage.max_file_size})")
        lock = self._locked(tenant_id, key)
        files = 0 if lock.exists else 1
        try:
            self.ledger.reserve(lock, Op.PUT, len(data), files, tenant.quotas)
        except Exception:
            self.ledger.unlock(lock)
            raise
        pending = Stale(Op.PUT, len(data), files)
        try:
            key_arn = self._data_key(tenant_id)
            ciphertext = crypto.encrypt_data(tenant_id, data, key_arn, PURPOSE_FILE, key=key)
        except Exception:  # nothing was sent to S3
            self.ledger.abandon(lock, len(data), files)
            raise
        try:
            reply = self.s3.put_object(
                Bucket=self.settings.data_bucket(tenant_id),
                Key=key,
                Body=ciphertext,
                ContentType="application/vnd.aws.encryption-sdk",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_arn,
                Metadata={SIZE_METADATA: str(len(data)), PROTECTION_METADATA: "esdk"},
            )
        except Exception as exc:
            if refused(exc):  # S3 stored nothing
                self.ledger.abandon(lock, len(data), files)
                raise
            landed = self._landed(lock, exc, pending, created_by)
            return {"key": key, "size": len(data), "version": version_out(landed)}
        version = self._commit(lock, reply, pending, created_by)
        return {"key": key, "size": len(data), "version": version}

    def get(self, tenant_id: str, key: str) -> bytes:
        """The file's bytes; 404 when there is none; 403 when it does not decrypt as this tenant's."""
        key = check_key(key)
        try:
            stored = self.s3.get_object(Bucket=self.settings.data_bucket(tenant_id), Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"no file {key!r}") from None
            raise
        metadata = stored.get("Metadata", {})
        size = int(metadata.get(SIZE_METADATA) or stored.get("ContentLength", 0))
        if metadata.get(PROTECTION_METADATA) == "sse-kms":
            # uploaded straight to S3: S3 decrypted it with the tenant key
            if size > MAX_API_FILE_BYTES:
                # as base64 in a Lambda response it would fail the invocation (a 502)
                stored["Body"].close()
                raise PayloadTooLarge(
                    f"file larger than the API returns ({MAX_API_FILE_BYTES} bytes): "
                    f'POST /tenants/{tenant_id}/downloads {{"key"}} for a download link'
                )
            return bytes(stored["Body"].read())
        if size > MAX_API_FILE_BYTES:  # client-side encrypted before this limit existed
            stored["Body"].close()
            raise PayloadTooLarge(f"file larger than the API returns ({MAX_API_FILE_BYTES} bytes)")
        return crypto.decrypt_data(
            tenant_id,
            stored["Body"].read(),
            PURPOSE_FILE,
            self.settings.account_id,
            self.settings.partition,
            key=key,
        )

    def delete(self, tenant_id: str, key: str) -> None:
        """Remove the file and every earlier version of it; each is released exactly once.

        When S3 keeps some versions (``Errors`` in its reply, or no reply), only what it removed is
        released -- an older version it kept is the file again -- and the answer is 503: the next
        DELETE finishes the job."""
        key = check_key(key)
        lock = self._locked(tenant_id, key)
        if not lock.exists:
            self.ledger.unlock(lock)
            raise NotFound(f"no file {key!r}")
        try:
            objects: list[ObjectIdentifierTypeDef] = [
                {"Key": key, "VersionId": str(v["VersionId"])} for v in self._versions(tenant_id, key)
            ]
        except Exception:  # nothing was deleted
            self.ledger.unlock(lock)
            raise
        self.ledger.begin_delete(lock)
        bucket = self.settings.data_bucket(tenant_id)
        kept = 0
        try:
            for start in range(0, len(objects), 1000):
                reply = self.s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": objects[start : start + 1000], "Quiet": True}
                )
                kept += len(reply.get("Errors", []))  # (S3 answers 200 and names the versions it kept)
        except Exception as exc:
            settled = self._settle_or_leave(lock, None)
            if settled is not None:
                self.ledger.unlock(settled[0])
            if not unanswered(exc):
                raise
            raise ServiceUnavailable(
                "S3 did not confirm the delete; what it removed is released: DELETE the file again "
                "(404 once it is gone)"
                if settled is not None
                else "S3 did not confirm the delete and cannot tell now what it removed; "
                "the file is settled within minutes: DELETE it again then",
                headers={"Retry-After": "1" if settled is not None else str(LOCK_SECONDS)},
            ) from exc
        if not kept:
            self.ledger.removed(lock, self.ledger.noncurrent_of(tenant_id, key))
            return
        settled = self._settle_or_leave(lock, None)
        if settled is not None:
            self.ledger.unlock(settled[0])
        raise ServiceUnavailable(
            f"S3 kept {kept} version(s) of the file {key[:64]!r}; DELETE it again to finish",
            # (left for the sweep, the key stays locked until its lock expires)
            headers={"Retry-After": "1" if settled is not None else str(LOCK_SECONDS)},
        )

    def list(
        self, tenant_id: str, prefix: str = "", limit: int = 100, after: str | None = None
    ) -> dict[str, Any]:
        """``{items: [{key, size, last_modified}], next}`` in key order."""
        args: dict[str, Any] = {
            "Bucket": self.settings.data_bucket(tenant_id),
            "MaxKeys": limit,
            **({"Prefix": prefix} if prefix else {}),
            **({"StartAfter": after} if after else {}),
        }
        reply = self.s3.list_objects_v2(**args)
        contents = reply.get("Contents", [])
        items = [
            {"key": o["Key"], "stored_bytes": o["Size"], "last_modified": o["LastModified"].isoformat()}
            for o in contents
            if not o["Key"].startswith(STAGING_PREFIX)  # uploads not completed (yet)
        ]
        more = reply.get("IsTruncated") and contents
        return {"items": items, "next": paging.encode_next(contents[-1]["Key"]) if more else None}
