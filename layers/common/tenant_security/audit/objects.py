"""Write-once objects in an object-locked S3 bucket: the audit trail's records and checkpoints
(and the compliance evidence), each put once under Object Lock COMPLIANCE with SSE-KMS."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from tenant_security.aws import error_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class LockedObjects:
    """Write-once objects in an object-locked bucket (COMPLIANCE retention, SSE-KMS)."""

    def __init__(self, client: S3Client, kms_key_arn: str) -> None:
        self.client = client
        self.kms_key_arn = kms_key_arn

    def put_once(self, bucket: str, key: str, body: bytes, retain_until: datetime, content_type: str) -> bool:
        """Write ``key`` unless it exists (True when this call wrote it)."""
        try:
            self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                IfNoneMatch="*",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=retain_until,
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self.kms_key_arn,
            )
        except Exception as exc:
            if error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def versions(self, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
        """Every key under ``prefix``: its versions (oldest first) and whether a delete marker hides it."""
        out: dict[str, dict[str, Any]] = {}
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                entry = out.setdefault(version["Key"], {"versions": [], "deleted": False})
                entry["versions"].append(version)
                if version.get("IsLatest"):
                    entry["deleted"] = False
            for marker in page.get("DeleteMarkers", []):
                entry = out.setdefault(marker["Key"], {"versions": [], "deleted": False})
                if marker.get("IsLatest"):
                    entry["deleted"] = True
        for entry in out.values():
            entry["versions"].sort(key=lambda v: v["LastModified"])
        return out

    def read(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        args: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            **({"VersionId": version_id} if version_id else {}),
        }
        return bytes(self.client.get_object(**args)["Body"].read())
