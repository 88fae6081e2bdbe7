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

A write whose outcome S3 did not tell (a timeout, a lost connection, a 5xx: the object may be
stored) is never taken for "nothing happened": the key's versions are read back and the ledger
made equal to them (:meth:`FileLedger.reconcile`); if S3 cannot be asked either, the reservation
stays with the key's lock for the sweep to settle. A DELETE that S3 only partly did (``Errors`` in
its reply) releases what went and answers 503: the next DELETE finishes it.

Files larger than the API's payload limit go straight to S3: ``upload`` reserves the file's
bytes and hands out a presigned POST for a staging key under ``.uploads/`` whose signed policy
fixes the key, the exact size and SSE-KMS with the tenant data key (S3 refuses anything else);
``complete`` checks what arrived, takes over the reservation and copies it to its final key,
once: completing it again (or at once, in parallel) answers with the same file. S3 accepts a
presigned POST until it expires however often it is sent, so the upload's item stays until then
and the sweep, after expiry, removes every version under its staging key -- whatever was posted
again -- and releases an upload never completed. The exposure: bytes posted to a granted staging
key beyond the reservation are kept by S3, uncounted, at most ``UPLOAD_URL_SECONDS`` +
``UPLOAD_GRACE_SECONDS`` + the sweep's period (15 + 5 + 5 minutes) after the grant, each POST
exactly the granted size (the lifecycle rule removes what a failed sweep leaves within days).
Such a file is encrypted by S3 under the tenant key (not client-side): ``download`` gives a
presigned GET for it.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from tenant_security import crypto, paging
from tenant_security.aws import error_code
from tenant_security.config import Settings
from tenant_security.errors import Conflict, NotFound, PayloadTooLarge, ServiceUnavailable, ValidationFailed
from tenant_security.locality import check_writable_in
from tenant_security.models.base import size_in_bytes
from tenant_security.observability import logger
from tenant_security.quotas import StorageQuota
from tenant_security.storage_ledger import (
    LOCK_SECONDS,
    FileBusy,
    FileLedger,
    Lock,
    Op,
    Stale,
    Stored,
    UploadReservation,
    UploadState,
)
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
# A granted upload stays reserved (and can be completed) this long after its link expires (a POST
# in flight may finish); the sweep (every 5 minutes) then removes whatever its staging key holds.
UPLOAD_GRACE_SECONDS = 300
# S3's answers that name no object: the key (or version) is not there.
_ABSENT = ("404", "NoSuchKey", "NotFound", "NoSuchVersion")
# The data bucket's lifecycle rule (onboarding.DATA_LIFECYCLE): noncurrent versions go after 30
# days, at the next midnight UTC or later; they are released a day after that.
NONCURRENT_DAYS = 30
DOWNLOAD_URL_SECONDS = 300
# What a file sent or read through the API itself may weigh. Lambda takes and returns at most
# 6 MiB (6,291,456 bytes) per synchronous invocation, and the file travels as base64 (4 bytes per
# 3) inside the proxy event or response, beside its envelope: headers (API Gateway admits 10,240
# bytes of request line and headers; the event carries them twice, JSON-escaped), the request and
# authorizer context, the path three times. 64 KiB bounds that envelope, so the largest file is
# (6,291,456 - 65,536) / 4 * 3 = 4,669,440 bytes (about 4.45 MiB); larger files go through
# POST /tenants/{t}/uploads and POST /tenants/{t}/downloads.
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
PROXY_ENVELOPE_BYTES = 64 * 1024
MAX_API_FILE_BYTES = (LAMBDA_SYNC_PAYLOAD_BYTES - PROXY_ENVELOPE_BYTES) // 4 * 3
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


def _refused(exc: BaseException) -> bool:
    """S3 answered the write with a refusal (4xx): it stored nothing. Anything else -- a timeout,
    a lost connection, a 5xx, the request's deadline inside the call -- may have stored it."""
    status = _reply_of(exc).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return isinstance(status, int) and 400 <= status < 500


def _unanswered(exc: BaseException) -> bool:
    """S3 gave no answer (a timeout, a lost connection) or a 5xx: worth trying again."""
    status = _reply_of(exc).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return isinstance(exc, BotoConnectionError | HTTPClientError) or (
        isinstance(status, int) and status >= 500
    )


def _retried(reply: dict[str, Any]) -> bool:
    """botocore sent the write more than once: an earlier attempt may have stored a version too."""
    return int(reply.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0) > 0


def _reply_of(exc: BaseException) -> dict[str, Any]:
    """The AWS reply an error carries ({} for none: botocore's timeouts carry ``response=None``)."""
    reply = getattr(exc, "response", None)
    return reply if isinstance(reply, dict) else {}


def _bucket_gone(exc: BaseException) -> bool:
    return str(_reply_of(exc).get("Error", {}).get("Code", "")) == "NoSuchBucket"


def _version_out(version: str | None) -> str | None:
    """A version as the API answers it (an unversioned bucket's "null" is none)."""
    return None if version in (None, "null") else version


def _completed(upload: UploadReservation) -> dict[str, Any]:
    """What completing ``upload`` answered (and answers again)."""
    return {"key": upload.key, "size": upload.size, "version": _version_out(upload.version)}


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
        """Every version and delete marker S3 has of exactly ``key``, newest (the current) first."""
        found: list[dict[str, Any]] = []
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.settings.data_bucket(tenant_id), Prefix=key):
            for kind in ("Versions", "DeleteMarkers"):
                found += [
                    {**v, "marker": kind == "DeleteMarkers"} for v in page.get(kind, []) if v["Key"] == key
                ]
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
        if _unanswered(exc):
            raise ServiceUnavailable("S3 did not confirm the write; nothing was stored: try again") from exc
        raise exc

    def _commit(
        self,
        lock: Lock,
        reply: dict[str, Any],
        pending: Stale,
        created_by: str | None,
        upload: UploadReservation | None = None,
    ) -> str | None:
        """Count the version a successful write made; the version."""
        version = reply.get("VersionId")
        if _retried(reply):
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

    def put(
        self, tenant: TenantRecord, key: str, data: bytes, created_by: str | None = None
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
            if _refused(exc):  # S3 stored nothing
                self.ledger.abandon(lock, len(data), files)
                raise
            landed = self._landed(lock, exc, pending, created_by)
            return {"key": key, "size": len(data), "version": _version_out(landed)}
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
        self, tenant: TenantRecord, upload: UploadReservation, created_by: str | None
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
        source = {
            "Bucket": bucket,
            "Key": staging,
            **({"VersionId": head["VersionId"]} if head.get("VersionId") else {}),
        }
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
            if _refused(exc):  # S3 copied nothing: the reservation is the upload's again
                self.ledger.abandon(lock, size, 1, upload)
                if error_code(exc) in _ABSENT:  # the sweep removed it: its link expired
                    raise NotFound(f"upload {upload_id} expired") from None
                raise
            version = _version_out(self._landed(lock, exc, pending, created_by))
        else:
            version = self._commit(lock, reply, pending, created_by, upload)
        with contextlib.suppress(Exception):  # (the sweep removes it once the link expired)
            self._delete_staging(bucket, staging)
        return {"key": upload.key, "size": size, "version": version}

    def _delete_staging(self, bucket: str, staging: str) -> None:
        """Remove a staging object and every version of it (staging is never counted); 503 when
        S3 kept some."""
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=staging):
            objects = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                if v["Key"] == staging
            ]
            if objects:
                reply = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                if reply.get("Errors"):
                    raise ServiceUnavailable(f"S3 kept {len(reply['Errors'])} staging version(s); try again")

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
            objects = [{"Key": key, "VersionId": str(v["VersionId"])} for v in self._versions(tenant_id, key)]
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
            if not _unanswered(exc):
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

    # ------------------------------------------------------------------ the sweep
    def release_expired_uploads(self, now: float | None = None) -> int:
        """For each granted upload whose link expired: remove every version S3 keeps under its
        staging key (whatever was posted to it, however often) and forget it, giving back the
        reservation of one never completed; how many were given back. One upload's trouble does
        not stop the others: the next run retries it."""
        released = 0
        for upload in self.ledger.expired_uploads(now if now is not None else datetime.now(UTC).timestamp()):
            try:
                released += self._retire(upload)
            except Exception as exc:
                logger.warning(
                    "expired upload not retired: the next sweep retries it",
                    extra={"tenant_id": upload.tenant_id, "error_type": type(exc).__name__},
                )
        return released

    def _retire(self, upload: UploadReservation) -> int:
        """One expired upload's staging versions removed and its item forgotten (1: released)."""
        if upload.state == UploadState.COMPLETING:
            # a completion is running, or died: the key's lock settles it (file_busy: next run)
            try:
                self.ledger.unlock(self._locked(upload.tenant_id, upload.key))
            except FileBusy:
                return 0
            again = self.ledger.upload(upload.tenant_id, upload.upload_id)
            if again is None or again.state == UploadState.COMPLETING:
                return 0
            upload = again
        try:
            self._delete_staging(
                self.settings.data_bucket(upload.tenant_id), f"{STAGING_PREFIX}{upload.upload_id}"
            )
        except Exception as exc:
            if not _bucket_gone(exc):  # (an offboarded tenant's bucket went with its staging)
                raise
        if upload.state == UploadState.COMPLETED:
            self.ledger.forget_upload(upload)
            return 0
        return 1 if self.ledger.release_upload(upload) else 0

    def settle_unsettled(self, now: float | None = None) -> int:
        """Settle the keys whose write or delete had an outcome S3 could not tell, once their
        locks expired: the ledger made equal to what S3 keeps of each; how many."""
        settled = 0
        for left in self.ledger.unsettled(now if now is not None else self.ledger.clock()):
            try:
                self.ledger.unlock(self._locked(left.tenant_id, left.key))
            except FileBusy:
                continue  # being written: that writer settled it; the next run forgets it
            except Exception as exc:
                if not _bucket_gone(exc):
                    logger.warning(
                        "unsettled key not settled: the next sweep retries it",
                        extra={"tenant_id": left.tenant_id, "error_type": type(exc).__name__},
                    )
                    continue
            self.ledger.settled(left)
            settled += 1
        return settled

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
