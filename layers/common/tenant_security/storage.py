"""Tenant files: encrypted client-side with the tenant data key, stored in the tenant data bucket.

A file is an Encryption SDK message (committing suite; tenant_id, purpose ``file`` and the key in
the context, so a ciphertext cannot be served as another tenant's or another file), stored with
SSE-KMS under the same tenant key (the bucket policy refuses any other key); once offboarding
schedules the tenant keys for deletion no file decrypts again.

The storage quota counts what S3 keeps (see :mod:`tenant_security.storage_ledger`): a write holds
the key's lock, reserves its bytes before the write and commits the version it made; a
replacement keeps the replaced version counted, as noncurrent, until the bucket's lifecycle rule
removes it (30 days); a DELETE removes every version of the key from S3 and releases each,
exactly once, whatever runs beside it.

Files larger than the API's payload limit go straight to S3: ``upload`` reserves the file's
bytes and hands out a presigned POST for a staging key under ``.uploads/`` whose signed policy
fixes the key, the exact size and SSE-KMS with the tenant data key (S3 refuses anything else);
``complete`` checks what arrived, takes over the reservation and copies it to its final key. An
upload never completed is released when its link expires (the sweep). Such a file is encrypted by
S3 under the tenant key (not client-side): ``download`` gives a presigned GET for it.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from tenant_security import crypto, paging
from tenant_security.aws import error_code
from tenant_security.config import Settings
from tenant_security.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from tenant_security.locality import check_writable_in
from tenant_security.models.base import size_in_bytes
from tenant_security.quotas import StorageQuota
from tenant_security.storage_ledger import FileLedger, Lock, Op
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
# A granted upload stays reserved this long after its link expires (a POST in flight may finish).
UPLOAD_GRACE_SECONDS = 300
# The data bucket's lifecycle rule (onboarding.DATA_LIFECYCLE): noncurrent versions go after 30
# days, at the next midnight UTC or later; they are released a day after that.
NONCURRENT_DAYS = 30
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


def attachment(key: str) -> str:
    """``Content-Disposition`` for a file: always an attachment, named after the key's last name
    (RFC 6266: an ASCII fallback and the UTF-8 name, percent-encoded)."""
    name = key.rsplit("/", 1)[-1] or "file"
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


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

    def __init__(
        self, settings: Settings, s3: Any, kms: Any, quota: StorageQuota, ledger: FileLedger
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
            head: dict[str, Any] = self.s3.head_object(Bucket=self.settings.data_bucket(tenant_id), Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def _versions(self, tenant_id: str, key: str) -> list[dict[str, Any]]:
        """Every version and delete marker S3 has of exactly ``key``, newest first."""
        found: list[dict[str, Any]] = []
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.settings.data_bucket(tenant_id), Prefix=key):
            for kind in ("Versions", "DeleteMarkers"):
                found += [
                    {**v, "marker": kind == "DeleteMarkers"} for v in page.get(kind, []) if v["Key"] == key
                ]
        return sorted(found, key=lambda v: v["LastModified"], reverse=True)

    def _locked(self, tenant_id: str, key: str) -> Lock:
        """The key's lock; what a dead holder left is settled against what S3 has first."""
        lock = self.ledger.lock(tenant_id, key)
        if lock.stale is None:
            return lock
        versions = self._versions(tenant_id, key)
        present = {str(v["VersionId"]) for v in versions if not v["marker"]}
        for old in self.ledger.noncurrent_of(tenant_id, key):
            if old.version not in present:
                self.ledger.release_noncurrent(tenant_id, old)
        counted = {lock.version} | {n.version for n in self.ledger.noncurrent_of(tenant_id, key)}
        latest = versions[0] if versions else None
        landed = (
            str(latest["VersionId"])
            if lock.stale.op == Op.PUT
            and latest is not None
            and not latest["marker"]
            and str(latest["VersionId"]) not in counted
            else None
        )
        return self.ledger.settle(lock, present, landed)

    def put(
        self, tenant: TenantRecord, key: str, data: bytes, created_by: str | None = None
    ) -> dict[str, Any]:
        """Store (or replace) a file; 413 over max_file_size or the tenant's storage quota."""
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
            self.ledger.abandon(lock, len(data), files)
            raise
        version = reply.get("VersionId")
        self.ledger.commit(lock, version, len(data), created_by, keep_previous=version is not None)
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

        The file's bytes are reserved now, until it is completed or its link expires; the policy S3
        checks fixes the staging key, the size, SSE-KMS with the tenant data key, and the target
        key as metadata.
        """
        tenant_id, key = tenant.tenant_id, check_key(key)
        check_writable_in(tenant, self.settings.region)
        if size > size_in_bytes(tenant.quotas.storage.max_file_size):
            raise PayloadTooLarge(f"file larger than max_file_size ({tenant.quotas.storage.max_file_size})")
        key_arn = self._data_key(tenant_id)
        upload_id = uuid.uuid4().hex
        expires = datetime.now(UTC) + timedelta(seconds=UPLOAD_URL_SECONDS)
        self.ledger.reserve_upload(
            tenant_id, upload_id, key, size, tenant.quotas, expires.timestamp() + UPLOAD_GRACE_SECONDS
        )
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
        return {
            "upload_id": upload_id,
            "key": key,
            "size": size,
            "url": post["url"],
            "fields": post["fields"],
            "expires_at": expires.isoformat(),
        }

    def complete(self, tenant: TenantRecord, upload_id: str, created_by: str | None = None) -> dict[str, Any]:
        """Move an arrived upload to its key: checked, counted on its reservation, staging removed."""
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
        lock = self._locked(tenant_id, key)
        files = 0 if lock.exists else 1
        reserved = self.ledger.claim_upload(lock, upload_id, replacing=lock.exists)
        if reserved != size:  # the reservation expired (or never was): reserve what arrived now
            if reserved is not None:
                self.ledger.abandon(lock, reserved, files)  # (the policy fixes the size: unreachable)
                lock = self._locked(tenant_id, key)
            try:
                self.ledger.reserve(lock, Op.PUT, size, files, tenant.quotas)
            except Exception:
                self.ledger.unlock(lock)
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
            self.ledger.abandon(lock, size, files)
            raise
        version = reply.get("VersionId")
        self.ledger.commit(lock, version, size, created_by, keep_previous=version is not None)
        self._delete_staging(bucket, staging)
        return {"key": key, "size": size, "version": version}

    def _delete_staging(self, bucket: str, staging: str) -> None:
        """Remove a staging object and every version of it (staging is never counted)."""
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=staging):
            objects = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                if v["Key"] == staging
            ]
            if objects:
                self.s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})

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

    def delete(self, tenant_id: str, key: str) -> None:
        """Remove the file and every earlier version of it; each is released exactly once."""
        key = check_key(key)
        lock = self._locked(tenant_id, key)
        if not lock.exists:
            self.ledger.unlock(lock)
            raise NotFound(f"no file {key!r}")
        self.ledger.begin_delete(lock)
        objects = [{"Key": key, "VersionId": str(v["VersionId"])} for v in self._versions(tenant_id, key)]
        bucket = self.settings.data_bucket(tenant_id)
        for start in range(0, len(objects), 1000):
            self.s3.delete_objects(
                Bucket=bucket, Delete={"Objects": objects[start : start + 1000], "Quiet": True}
            )
        self.ledger.removed(lock, self.ledger.noncurrent_of(tenant_id, key))

    # ------------------------------------------------------------------ the sweep
    def release_expired_uploads(self, now: float | None = None) -> int:
        """Give back every granted upload whose link expired uncompleted; how many."""
        released = 0
        for upload in self.ledger.expired_uploads(now if now is not None else datetime.now(UTC).timestamp()):
            if self.ledger.release_upload(upload):
                released += 1
                with contextlib.suppress(Exception):  # a bucket gone (offboarded) has no staging left
                    self._delete_staging(
                        self.settings.data_bucket(upload.tenant_id), f"{STAGING_PREFIX}{upload.upload_id}"
                    )
        return released

    def release_expired_versions(self, tenant_id: str, now: float | None = None) -> int:
        """Release the tenant's noncurrent versions the lifecycle rule has removed; how many."""
        moment = now if now is not None else datetime.now(UTC).timestamp()
        cutoff = moment - (NONCURRENT_DAYS + 1) * 86400
        released = 0
        for old in self.ledger.noncurrent_before(tenant_id, cutoff):
            try:
                self.s3.head_object(
                    Bucket=self.settings.data_bucket(tenant_id), Key=old.key, VersionId=old.version
                )
            except Exception as exc:
                if error_code(exc) not in ("404", "NoSuchKey", "NoSuchVersion", "NotFound", "400"):
                    raise
                released += self.ledger.release_noncurrent(tenant_id, old)
        return released

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
