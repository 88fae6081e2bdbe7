"""Tenant files: encrypted client-side with the tenant data key, stored in the tenant data bucket.

A file is an Encryption SDK message (committing suite; tenant_id, purpose ``file`` and the key in
the context, so a ciphertext cannot be served as another tenant's or another file), stored with
SSE-KMS under the same tenant key (the bucket policy refuses any other key). Storage quotas are
reserved before the write and released after a delete or a failure; once offboarding schedules
the tenant keys for deletion no file decrypts again.

Files larger than the API's payload limit go straight to S3: ``upload`` hands out a presigned
POST for a staging key under ``.uploads/`` whose signed policy fixes the key, the exact size and
SSE-KMS with the tenant data key (S3 refuses anything else); ``complete`` checks what arrived,
reserves the quota and copies it to its final key. Such a file is encrypted by S3 under the tenant
key (not client-side): ``download`` gives a presigned GET for it. Staging objects that are never
completed expire with the bucket's lifecycle rule (one day).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tenant_security import crypto, paging
from tenant_security.aws import error_code
from tenant_security.config import Settings
from tenant_security.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from tenant_security.locality import check_writable_in
from tenant_security.quotas import StorageQuota
from tenant_security.tenants import TenantRecord

PURPOSE_FILE = "file"
MAX_KEY_BYTES = 512
SIZE_METADATA = "plaintext-size"
# How the bytes are protected: "esdk" (client-side, the API's PUT) or "sse-kms" (presigned uploads).
PROTECTION_METADATA = "protection"
TARGET_METADATA = "target-key"
STAGING_PREFIX = ".uploads/"
UPLOAD_URL_SECONDS = 900
MAX_UPLOAD_BYTES = 5 * 1024**3  # one S3 POST (and one CopyObject) takes at most 5 GiB
DOWNLOAD_URL_SECONDS = 300
# A Lambda proxy response carries at most 6 MB, base64 grows bytes by a third.
MAX_API_RESPONSE_BYTES = 4 * 1024 * 1024
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def check_key(key: str) -> str:
    """A file key: no leading '/', no '.' or '..' segment, no empty segment, no control characters."""
    segments = key.split("/")
    if (
        not key
        or len(key.encode()) > MAX_KEY_BYTES
        or key.startswith(("/", STAGING_PREFIX))
        or any(s in ("", ".", "..") for s in segments)
        or _UNSAFE.search(key)
    ):
        raise ValidationFailed(
            "invalid file key",
            fields=[
                {
                    "field": "path.key",
                    "message": f"1-{MAX_KEY_BYTES} bytes of '/'-separated names; no '.', '..', empty names, "
                    f"leading '/', backslashes, control characters or leading '{STAGING_PREFIX}'",
                }
            ],
        )
    return key


def _is_safe_key(key: str) -> bool:
    try:
        check_key(key)
    except ValidationFailed:
        return False
    return True


def decode_next(token: str) -> str:
    """The file key a ``next`` token of :meth:`TenantFiles.list` continues after (400 otherwise)."""
    return paging.decode_next(token, _is_safe_key)


class TenantFiles:
    """One tenant's files (S3 client, KMS client and the storage quota given)."""

    def __init__(self, settings: Settings, s3: Any, kms: Any, quota: StorageQuota) -> None:
        self.settings = settings
        self.s3 = s3
        self.kms = kms
        self.quota = quota
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
            head: dict[str, Any] = self.s3.head_object(Bucket=self.settings.data_bucket(tenant_id), Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def _size(self, tenant_id: str, key: str) -> int | None:
        head = self._head(tenant_id, key)
        if head is None:
            return None
        return int(head.get("Metadata", {}).get(SIZE_METADATA, head.get("ContentLength", 0)))

    def put(self, tenant: TenantRecord, key: str, data: bytes) -> dict[str, Any]:
        """Store (or replace) a file; 413 over max_file_size or the tenant's storage quota."""
        tenant_id, key = tenant.tenant_id, check_key(key)
        check_writable_in(tenant, self.settings.region)
        previous = self._size(tenant_id, key)
        self.quota.reserve(tenant_id, len(data), tenant.quotas)
        try:
            key_arn = self._data_key(tenant_id)
            ciphertext = crypto.encrypt_data(tenant_id, data, key_arn, PURPOSE_FILE, key=key)
            reply = self.s3.put_object(
                Bucket=self.settings.data_bucket(tenant_id),
                Key=key,
                Body=ciphertext,
                ContentType="application/vnd.aws.encryption-sdk",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_arn,
                Metadata={SIZE_METADATA: str(len(data)), PROTECTION_METADATA: "esdk"},
            )
        except Exception:
            self.quota.release(tenant_id, len(data))
            raise
        if previous is not None:
            self.quota.release(tenant_id, previous)  # the replaced file no longer counts
        return {"key": key, "size": len(data), "version": reply.get("VersionId")}

    def get(self, tenant_id: str, key: str) -> bytes:
        """The file's bytes; 404 when there is none; 403 when it does not decrypt as this tenant's."""
        key = check_key(key)
        try:
            stored = self.s3.get_object(Bucket=self.settings.data_bucket(tenant_id), Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"no file {key!r}") from None
            raise
        if stored.get("Metadata", {}).get(PROTECTION_METADATA) == "sse-kms":
            # uploaded straight to S3: S3 decrypted it with the tenant key
            if int(stored.get("ContentLength", 0)) > MAX_API_RESPONSE_BYTES:
                stored["Body"].close()
                raise PayloadTooLarge(
                    f"file larger than the API returns ({MAX_API_RESPONSE_BYTES} bytes): "
                    "POST /tenants/{tenant_id}/downloads for a download link"
                )
            return bytes(stored["Body"].read())
        return crypto.decrypt_data(
            tenant_id,
            stored["Body"].read(),
            PURPOSE_FILE,
            self.settings.account_id,
            self.settings.partition,
            key=key,
        )

    # ------------------------------------------------------------------ presigned uploads
    def upload(self, tenant: TenantRecord, key: str, size: int) -> dict[str, Any]:
        """A presigned POST for one file of exactly ``size`` bytes under ``key`` (413 when it cannot fit).

        Nothing is reserved yet (``complete`` reserves what arrived); the policy S3 checks fixes the
        staging key, the size, SSE-KMS with the tenant data key, and the target key as metadata.
        """
        tenant_id, key = tenant.tenant_id, check_key(key)
        check_writable_in(tenant, self.settings.region)
        self.quota.check_room(tenant_id, size, tenant.quotas)
        key_arn = self._data_key(tenant_id)
        upload_id = uuid.uuid4().hex
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
            ExpiresIn=UPLOAD_URL_SECONDS,
        )
        expires = datetime.now(UTC) + timedelta(seconds=UPLOAD_URL_SECONDS)
        return {
            "upload_id": upload_id,
            "key": key,
            "size": size,
            "url": post["url"],
            "fields": post["fields"],
            "expires_at": expires.isoformat(),
        }

    def complete(self, tenant: TenantRecord, upload_id: str) -> dict[str, Any]:
        """Move an arrived upload to its key: checked, counted against the quota, staging removed."""
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise ValidationFailed(
                "invalid upload id", fields=[{"field": "path.upload_id", "message": "32 hex digits"}]
            )
        tenant_id = tenant.tenant_id
        bucket = self.settings.data_bucket(tenant_id)
        staging = f"{STAGING_PREFIX}{upload_id}"
        head = self._head(tenant_id, staging)
        if head is None:
            raise NotFound(f"no upload {upload_id} (never sent, expired or already completed)")
        metadata, size = head.get("Metadata", {}), int(head["ContentLength"])
        key_arn = self._data_key(tenant_id)
        if (
            head.get("ServerSideEncryption") != "aws:kms"
            or head.get("SSEKMSKeyId") != key_arn
            or metadata.get(SIZE_METADATA) != str(size)
            or not _is_safe_key(metadata.get(TARGET_METADATA, ""))
        ):
            self.s3.delete_object(Bucket=bucket, Key=staging)
            raise Conflict(f"upload {upload_id} is not what was signed for; it was discarded")
        key = metadata[TARGET_METADATA]
        check_writable_in(tenant, self.settings.region)
        previous = self._size(tenant_id, key)
        try:
            self.quota.reserve(tenant_id, size, tenant.quotas)
        except Exception:
            self.s3.delete_object(Bucket=bucket, Key=staging)
            raise
        try:
            reply = self.s3.copy_object(
                Bucket=bucket,
                Key=key,
                CopySource={"Bucket": bucket, "Key": staging},
                MetadataDirective="REPLACE",
                Metadata={SIZE_METADATA: str(size), PROTECTION_METADATA: "sse-kms"},
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_arn,
            )
        except Exception:
            self.quota.release(tenant_id, size)
            raise
        self.s3.delete_object(Bucket=bucket, Key=staging)
        if previous is not None:
            self.quota.release(tenant_id, previous)
        return {"key": key, "size": size, "version": reply.get("VersionId")}

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
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=DOWNLOAD_URL_SECONDS
        )
        expires = datetime.now(UTC) + timedelta(seconds=DOWNLOAD_URL_SECONDS)
        return {"key": key, "url": url, "expires_at": expires.isoformat()}

    def delete(self, tenant_id: str, key: str) -> None:
        key = check_key(key)
        size = self._size(tenant_id, key)
        if size is None:
            raise NotFound(f"no file {key!r}")
        self.s3.delete_object(Bucket=self.settings.data_bucket(tenant_id), Key=key)
        self.quota.release(tenant_id, size)

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
