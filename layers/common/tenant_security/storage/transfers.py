"""Presigned uploads (reserved when granted, completed once) and presigned downloads."""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tenant_security.aws import error_code
from tenant_security.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from tenant_security.locality import check_writable_in
from tenant_security.models.base import size_in_bytes
from tenant_security.storage.file_keys import (
    DOWNLOAD_URL_SECONDS,
    PROTECTION_METADATA,
    SIZE_METADATA,
    STAGING_PREFIX,
    TARGET_METADATA,
    UPLOAD_GRACE_SECONDS,
    UPLOAD_URL_SECONDS,
    attachment,
    check_key,
)
from tenant_security.storage.ledger_states import FileBusy, Op, Stale, UploadReservation, UploadState
from tenant_security.storage.s3_replies import ABSENT, refused, version_out
from tenant_security.storage.settle import KeySettlement
from tenant_security.tenants import TenantProfile

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CopySourceTypeDef

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def _completed(upload: UploadReservation) -> dict[str, Any]:
    """What completing ``upload`` answered (and answers again)."""
    return {"key": upload.key, "size": upload.size, "version": version_out(upload.version)}


def _granted_link(upload: UploadReservation, key: str, size: int, now: datetime) -> datetime:
    """When the link of an upload granted before under the same id expires (409 when it cannot
    be handed out again: another file, completed, or expired)."""
    expires = datetime.fromtimestamp(upload.expires_at - UPLOAD_GRACE_SECONDS, UTC)
    if (upload.key, upload.size) != (key, size):
        raise Conflict(f"upload {upload.upload_id} was granted for another file")
    if upload.state != UploadState.PENDING:
        raise Conflict(f"upload {upload.upload_id} was completed already")
    if expires <= now + timedelta(seconds=1):
        raise Conflict(f"upload {upload.upload_id} expired; start another")
    return expires


class PresignedTransfers(KeySettlement):
    """Files that go to and come from S3 directly, past the API's payload limit."""

    def upload(
        self, tenant: TenantProfile, key: str, size: int, upload_id: str | None = None
    ) -> dict[str, Any]:
        """A presigned POST for one file of exactly ``size`` bytes under ``key`` (413 when it cannot fit).

        The file's bytes are reserved now, until it is completed or its link expires; the policy S3
        checks fixes the staging key, the size, SSE-KMS with the tenant data key, and the target
        key as metadata.

        ``upload_id``: the id (a UUID) an Idempotency-Key gives the request
        (:func:`tenant_security.idempotency.creation_id`), the same on every retry: a retry whose
        first attempt reserved but lost its reply gets that upload again (reserved once, until
        the same time); 409 once it was completed or its link expired. None: a new random id.
        """
        tenant_id, key = tenant.tenant_id, check_key(key)
        check_writable_in(tenant, self.settings.region)
        if size > size_in_bytes(tenant.quotas.storage.max_file_size):
            raise PayloadTooLarge(f"file larger than max_file_size ({tenant.quotas.storage.max_file_size})")
        key_arn = self._data_key(tenant_id)
        upload_id = uuid.UUID(upload_id).hex if upload_id else uuid.uuid4().hex
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=UPLOAD_URL_SECONDS)
        granted = self.ledger.reserve_upload(
            tenant_id, upload_id, key, size, tenant.quotas, expires.timestamp() + UPLOAD_GRACE_SECONDS
        )
        if granted is not None:
            expires = _granted_link(granted, key, size, now)
        fields = {
            "x-amz-server-side-encryption": "aws:kms",
            "x-amz-server-side-encryption-aws-kms-key-id": key_arn,
            f"x-amz-meta-{TARGET_METADATA}": key,
            f"x-amz-meta-{SIZE_METADATA}": str(size),
        }
        post = self.s3.generate_presigned_post(
            Bucket=self.settings.data_bucket(tenant_id),
            Key=f"{STAGING_PREFIX}{upload_id}",
            Fields=fields,
            Conditions=[
                *({name: value} for name, value in fields.items()),
                ["content-length-range", size, size],
            ],
            ExpiresIn=max(1, int((expires - now).total_seconds())),
        )
        return {
            "upload_id": upload_id,
            "key": key,
            "size": size,
            "url": post["url"],
            "fields": post["fields"],
            "expires_at": expires.isoformat(),
        }

    def complete(
        self, tenant: TenantProfile, upload_id: str, created_by: str | None = None
    ) -> dict[str, Any]:
        """Move an arrived upload to its key, once: checked, counted on its reservation, staging
        removed. Completed again -- or by many callers at once -- it answers with the same file
        (409 ``file_busy`` while another completion of it takes too long); it is never copied
        twice, whatever was posted to its staging key since."""
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise ValidationFailed(
                "invalid upload id", fields=[{"field": "path.upload_id", "message": "32 hex digits"}]
            )
        tenant_id = tenant.tenant_id
        for _attempt in range(3):
            upload = self.ledger.upload(tenant_id, upload_id)
            if upload is None:
                raise NotFound(f"no upload {upload_id} (never granted, or expired)")
            if upload.state == UploadState.COMPLETED:
                return _completed(upload)
            if upload.state == UploadState.COMPLETING:
                # another completion holds the key's lock: wait for it (a dead one's is settled)
                self.ledger.unlock(self._locked(tenant_id, upload.key))
                continue
            done = self._complete_pending(tenant, upload, created_by)
            if done is not None:
                return done
        raise FileBusy(f"upload {upload_id} is being completed by another request; try again")

    def _complete_pending(
        self, tenant: TenantProfile, upload: UploadReservation, created_by: str | None
    ) -> dict[str, Any] | None:
        """Complete a pending upload; None when another completion claimed it first."""
        tenant_id, upload_id = tenant.tenant_id, upload.upload_id
        if upload.expires_at < datetime.now(UTC).timestamp():
            raise NotFound(f"upload {upload_id} expired")
        bucket = self.settings.data_bucket(tenant_id)
        staging = f"{STAGING_PREFIX}{upload_id}"
        head = self._head(tenant_id, staging)
        if head is None:
            again = self.ledger.upload(tenant_id, upload_id)
            if again is not None and again.state != UploadState.PENDING:
                return None  # completed meanwhile (which removed the staging object)
            raise NotFound(f"nothing was sent to upload {upload_id} (yet)")
        metadata, size = head.get("Metadata", {}), int(head["ContentLength"])
        key_arn = self._data_key(tenant_id)
        if (
            head.get("ServerSideEncryption") != "aws:kms"
            or head.get("SSEKMSKeyId") != key_arn
            or metadata.get(SIZE_METADATA) != str(size)
            or size != upload.size
            or metadata.get(TARGET_METADATA) != upload.key
        ):
            self._delete_staging(bucket, staging)
            raise Conflict(f"upload {upload_id} is not what was signed for; it was discarded")
        check_writable_in(tenant, self.settings.region)
        lock = self._locked(tenant_id, upload.key)
        if not self.ledger.claim_upload(lock, upload):
            self.ledger.unlock(lock)
            return None
        pending = Stale(Op.PUT, size, 1, upload.sk)
        # the version checked above, not whatever was posted to the staging key since
        source: CopySourceTypeDef = {"Bucket": bucket, "Key": staging}
        if head.get("VersionId"):
            source["VersionId"] = head["VersionId"]
        try:
            reply = self.s3.copy_object(
                Bucket=bucket,
                Key=upload.key,
                CopySource=source,
                MetadataDirective="REPLACE",
                Metadata={SIZE_METADATA: str(size), PROTECTION_METADATA: "sse-kms"},
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_arn,
            )
        except Exception as exc:
            if refused(exc):  # S3 copied nothing: the reservation is the upload's again
                self.ledger.abandon(lock, size, 1, upload)
                if error_code(exc) in ABSENT:  # the sweep removed it: its link expired
                    raise NotFound(f"upload {upload_id} expired") from None
                raise
            version = version_out(self._landed(lock, exc, pending, created_by))
        else:
            version = self._commit(lock, reply, pending, created_by, upload)
        with contextlib.suppress(Exception):  # (the sweep removes it once the link expired)
            self._delete_staging(bucket, staging)
        return {"key": upload.key, "size": size, "version": version}

    def download(self, tenant_id: str, key: str) -> dict[str, Any]:
        """A presigned GET for a file uploaded straight to S3 (409 for one the API encrypted)."""
        key = check_key(key)
        bucket = self.settings.data_bucket(tenant_id)
        head = self._head(tenant_id, key)
        if head is None:
            raise NotFound(f"no file {key!r}")
        if head.get("Metadata", {}).get(PROTECTION_METADATA) != "sse-kms":
            raise Conflict(
                "this file is encrypted by the API: GET /tenants/{tenant_id}/files/{key} returns it"
            )
        url = self.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key, "ResponseContentDisposition": attachment(key)},
            ExpiresIn=DOWNLOAD_URL_SECONDS,
        )
        expires = datetime.now(UTC) + timedelta(seconds=DOWNLOAD_URL_SECONDS)
        return {"key": key, "url": url, "expires_at": expires.isoformat()}
