"""Tenant files: encrypted client-side with the tenant data key, stored in the tenant data bucket.

A file is an Encryption SDK message (committing suite; tenant_id, purpose ``file`` and the key in
the context, so a ciphertext cannot be served as another tenant's or another file), stored with
SSE-KMS under the same tenant key (the bucket policy refuses any other key). Storage quotas are
reserved before the write and released after a delete or a failure; once offboarding schedules
the tenant keys for deletion no file decrypts again.
"""

from __future__ import annotations

import re
from typing import Any

from tenant_security import crypto, paging
from tenant_security.aws import error_code
from tenant_security.config import Settings
from tenant_security.errors import NotFound, ValidationFailed
from tenant_security.locality import check_writable_in
from tenant_security.quotas import StorageQuota
from tenant_security.tenants import TenantRecord

PURPOSE_FILE = "file"
MAX_KEY_BYTES = 512
SIZE_METADATA = "plaintext-size"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def check_key(key: str) -> str:
    """A file key: no leading '/', no '.' or '..' segment, no empty segment, no control characters."""
    segments = key.split("/")
    if (
        not key
        or len(key.encode()) > MAX_KEY_BYTES
        or key.startswith("/")
        or any(s in ("", ".", "..") for s in segments)
        or _UNSAFE.search(key)
    ):
        raise ValidationFailed(
            "invalid file key",
            fields=[
                {
                    "field": "path.key",
                    "message": f"1-{MAX_KEY_BYTES} bytes of '/'-separated names; no '.', '..', empty names, "
                    "leading '/', backslashes or control characters",
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

    def _size(self, tenant_id: str, key: str) -> int | None:
        try:
            head = self.s3.head_object(Bucket=self.settings.data_bucket(tenant_id), Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
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
                Metadata={SIZE_METADATA: str(len(data))},
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
            body = self.s3.get_object(Bucket=self.settings.data_bucket(tenant_id), Key=key)["Body"].read()
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"no file {key!r}") from None
            raise
        return crypto.decrypt_data(
            tenant_id, body, PURPOSE_FILE, self.settings.account_id, self.settings.partition, key=key
        )

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
        items = [
            {"key": o["Key"], "stored_bytes": o["Size"], "last_modified": o["LastModified"].isoformat()}
            for o in reply.get("Contents", [])
        ]
        more = reply.get("IsTruncated") and items
        return {"items": items, "next": paging.encode_next(items[-1]["key"]) if more else None}
