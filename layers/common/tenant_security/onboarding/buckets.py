"""The tenant's buckets: its data bucket (SSE-KMS under the tenant data key, uploads only under
that key) and its object-locked audit bucket (under the platform's audit key), both private,
TLS-only and versioned; and their deletion with every object version."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tenant_security.aws import error_code
from tenant_security.config import Settings
from tenant_security.models.onboarding import OnboardingRequest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import BucketLifecycleConfigurationTypeDef, ObjectIdentifierTypeDef

# The data bucket's housekeeping: presigned uploads never completed, replaced or deleted versions
# of files after 30 days (the current version stays until deleted or offboarded). A presigned POST
# can be sent again until it expires, each time a new version of its staging key: those go a day
# after they became noncurrent (the shorter of two rules wins), should the sweep not remove them.
DATA_LIFECYCLE: BucketLifecycleConfigurationTypeDef = {
    "Rules": [
        {
            "ID": "expire-uncompleted-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ".uploads/"},
            "Expiration": {"Days": 1},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        },
        {
            "ID": "expire-old-versions",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]
}


class TenantBuckets:
    """Creates and deletes a tenant's buckets (an S3 client given)."""

    def __init__(self, settings: Settings, s3: S3Client) -> None:
        self.settings = settings
        self.s3 = s3

    def create(self, request: OnboardingRequest, keys: dict[str, str]) -> dict[str, str]:
        """The tenant's data bucket and its object-locked audit bucket (``keys``: ARNs by purpose)."""
        tenant_id = request.tenant_id
        data, audit = self.settings.data_bucket(tenant_id), self.settings.audit_bucket(tenant_id)
        self._create(data, tenant_id, object_lock=False)
        self._encrypt(data, keys["data"])
        self.s3.put_bucket_lifecycle_configuration(Bucket=data, LifecycleConfiguration=DATA_LIFECYCLE)
        data_arn = f"arn:{self.settings.partition}:s3:::{data}"
        self.s3.put_bucket_policy(
            Bucket=data,
            Policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        self._tls_only(data),
                        {
                            "Sid": "DenyUploadsWithoutTheTenantKey",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:PutObject",
                            "Resource": f"{data_arn}/*",
                            "Condition": {
                                "StringNotEquals": {
                                    "s3:x-amz-server-side-encryption-aws-kms-key-id": keys["data"]
                                }
                            },
                        },
                    ],
                }
            ),
        )
        self._create(audit, tenant_id, object_lock=True)
        # The trail is encrypted with the platform's audit key: it survives crypto-shredding.
        self._encrypt(audit, self.settings.audit_key_arn)
        self.set_audit_retention(tenant_id, request.security_policies.audit_logging.retention_days)
        self.s3.put_bucket_policy(
            Bucket=audit, Policy=json.dumps({"Version": "2012-10-17", "Statement": [self._tls_only(audit)]})
        )
        return {"data": data, "audit": audit}

    def set_audit_retention(self, tenant_id: str, days: int) -> None:
        """The audit bucket's default retention: COMPLIANCE, ``days`` (the policy's
        retention_days). It governs object versions written from now on; each one already there
        keeps the retention it was written with (Object Lock never shortens it). Idempotent."""
        self.s3.put_object_lock_configuration(
            Bucket=self.settings.audit_bucket(tenant_id),
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}},
            },
        )

    def delete(self, name: str) -> bool:
        """Delete the bucket with every version of every object; whether there was one."""
        try:
            self.s3.head_bucket(Bucket=name)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            objects: list[ObjectIdentifierTypeDef] = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if objects:
                self.s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
        self.s3.delete_bucket(Bucket=name)
        return True

    def _tls_only(self, bucket: str) -> dict[str, Any]:
        arn = f"arn:{self.settings.partition}:s3:::{bucket}"
        return {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }

    def _create(self, name: str, tenant_id: str, object_lock: bool) -> None:
        args: dict[str, Any] = {"Bucket": name}
        if self.settings.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        if object_lock:
            args["ObjectLockEnabledForBucket"] = True
        try:
            self.s3.create_bucket(**args)
        except Exception as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise
        self.s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_tagging(
            Bucket=name,
            Tagging={
                "TagSet": [
                    {"Key": "TenantId", "Value": tenant_id},
                    {"Key": "ManagedBy", "Value": f"{self.settings.resource_prefix}-tenant-security"},
                ]
            },
        )

    def _encrypt(self, name: str, key_arn: str) -> None:
        self.s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key_arn,
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
