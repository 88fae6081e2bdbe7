"""The state of a tenant's keys and buckets, as KMS and S3 report it: a report's platform evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenant_security.aws import error_code
from tenant_security.config import KEY_PURPOSES, Settings

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client


class TenantControls:
    """The state of a tenant's keys and buckets, as KMS and S3 report it (KMS, S3 clients given)."""

    def __init__(self, settings: Settings, kms: KMSClient, s3: S3Client) -> None:
        self.settings = settings
        self.kms = kms
        self.s3 = s3

    def _key(self, tenant_id: str, purpose: str) -> dict[str, Any] | None:
        try:
            meta = self.kms.describe_key(KeyId=self.settings.tenant_key_arn(tenant_id, purpose))[
                "KeyMetadata"
            ]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                return None
            raise
        rotation = self.kms.get_key_rotation_status(KeyId=meta["KeyId"])
        replicas = (meta.get("MultiRegionConfiguration") or {}).get("ReplicaKeys") or []
        return {
            "arn": meta["Arn"],
            "state": meta["KeyState"],
            "rotation_enabled": bool(rotation.get("KeyRotationEnabled")),
            "multi_region": bool(meta.get("MultiRegion")),
            "replica_regions": sorted(str(r["Region"]) for r in replicas),
        }

    def _bucket_encryption(self, bucket: str) -> dict[str, Any] | None:
        try:
            rules = self.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        except Exception as exc:
            if error_code(exc) in ("NoSuchBucket", "ServerSideEncryptionConfigurationNotFoundError", "404"):
                return None
            raise
        default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
        return {"algorithm": default.get("SSEAlgorithm"), "key": default.get("KMSMasterKeyID")}

    def _audit_lock(self, bucket: str) -> dict[str, Any] | None:
        try:
            config = self.s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        except Exception as exc:
            if error_code(exc) in ("NoSuchBucket", "ObjectLockConfigurationNotFoundError", "404"):
                return None
            raise
        retention = (config.get("Rule") or {}).get("DefaultRetention") or {}
        return {"mode": retention.get("Mode"), "days": retention.get("Days")}

    def collect(self, tenant_id: str) -> dict[str, Any]:
        """Keys by purpose, the data bucket's default encryption, the audit bucket's object lock."""
        data, audit = self.settings.data_bucket(tenant_id), self.settings.audit_bucket(tenant_id)
        encryption = self._bucket_encryption(data)
        return {
            "region": self.settings.region,
            "keys": {purpose: self._key(tenant_id, purpose) for purpose in KEY_PURPOSES},
            "data_bucket": data if encryption is not None else None,
            "data_bucket_encryption": encryption,
            "audit_bucket": audit,
            "audit_lock": self._audit_lock(audit),
        }
