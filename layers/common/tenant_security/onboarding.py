"""Tenant onboarding and offboarding steps, run one by one by the Step Functions state machines.

**An execution undoes only what it created itself.** Registration claims the tenant id for one
execution (conditional write: a new id, or one whose earlier attempt FAILED); every later step,
and the compensation, first checks that this execution still owns a PROVISIONING tenant, so a
repeated or duplicated request -- by the API or by an event, in any status -- never creates or
deletes anything of a tenant another execution built. Within its own run every step is
idempotent (a Step Functions retry changes nothing more), and compensation finds the tenant's
resources by their names, so it undoes whatever exists however far the run got.

**Offboarding runs only on a recorded decision**: the API's DELETE /tenants/{t} (a
platform-admin, audited) sets status OFFBOARDING first; an offboarding event for a tenant in any
other status is refused.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tenant_security.authz.rbac import TENANT_ADMIN
from tenant_security.aws import error_code
from tenant_security.config import KEY_PURPOSES, Settings
from tenant_security.database import CREDENTIALS_SECRET, TenantDatabases
from tenant_security.errors import Conflict, NotFound, PayloadTooLarge, ServiceUnavailable, ValidationFailed
from tenant_security.identity.passwords import generate_password, hash_password
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.users import User, UserStore
from tenant_security.locality import replica_regions
from tenant_security.models.onboarding import Isolation, OnboardingRequest, parse_onboarding_request
from tenant_security.observability import logger
from tenant_security.tenants import RETIRED, NotOwner, TenantRecord, TenantStatus, TenantStore

# The data bucket's housekeeping: presigned uploads never completed, replaced or deleted versions
# of files after 30 days (the current version stays until deleted or offboarded). A presigned POST
# can be sent again until it expires, each time a new version of its staging key: those go a day
# after they became noncurrent (the shorter of two rules wins), should the sweep not remove them.
DATA_LIFECYCLE: dict[str, Any] = {
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
# What the platform's roles may do with a tenant key (its key policy).
KEY_USE_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:DescribeKey",
)
# What the key administrators (TENANT_KEY_ADMINS: the onboarding function's role) do with a tenant
# key, granted to them by name in its key policy: KMS checks at CreateKey that the creator may
# change the policy later (PutKeyPolicy), and a grant by name applies at once, where one by the
# key's tags or aliases can take minutes to apply to a new key (CreateAlias, EnableKeyRotation
# right after CreateKey would fail, and AccessDenied is not retried).
KEY_ADMIN_ACTIONS = (
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:EnableKeyRotation",
    "kms:GetKeyRotationStatus",
    "kms:ReplicateKey",
    "kms:TagResource",
    "kms:ScheduleKeyDeletion",
)
# The account's own administration of a tenant key (the account's IAM policies decide who).
ACCOUNT_ADMIN_ACTIONS = (
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:ReplicateKey",
    "kms:DeleteAlias",
)
# Secrets Manager, storing a secret under a customer managed key for its caller, needs both.
SECRETS_MANAGER_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
SECRETS_KEY_PURPOSE = "secrets"
# Key states of a key already scheduled for deletion (a multi-Region primary waits for its replicas).
SHREDDED_KEY_STATES = ("PendingDeletion", "PendingReplicaDeletion")
KEY_DELETION_WINDOW_DAYS = 7  # the KMS minimum: crypto-shredding as soon as KMS allows
STEP_TIMEOUT_MARGIN_SECONDS = 10


def tenant_key_policy(settings: Settings, purpose: str, region: str | None = None) -> dict[str, Any]:
    """A tenant key's policy (``region``: where the key or replica is; the deployment's).

    The account administers the key through its IAM policies; the key administrators
    (TENANT_KEY_ADMINS) by name, so the policy passes KMS's lockout check for them and applies
    at once; the platform's roles use it; on the secrets key, Secrets Manager encrypts and
    decrypts for the key administrators and for the break-glass reader.
    """
    root = f"arn:{settings.partition}:iam::{settings.account_id}:root"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountAdministration",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": list(ACCOUNT_ADMIN_ACTIONS),
            "Resource": "*",
        }
    ]
    admins = settings.tenant_key_admin_arns
    if admins:
        statements.append(
            {
                "Sid": "KeyAdministrators",
                "Effect": "Allow",
                "Principal": {"AWS": admins},
                "Action": list(KEY_ADMIN_ACTIONS),
                "Resource": "*",
            }
        )
    statements += _key_use_statements(settings, root)
    if purpose == SECRETS_KEY_PURPOSE:
        statements += _secrets_statements(settings, root, admins, region or settings.region)
    return {"Version": "2012-10-17", "Statement": statements}


def _secrets_statements(
    settings: Settings, root: str, admins: list[str], region: str
) -> list[dict[str, Any]]:
    """Secrets Manager's use of the secrets key: for the key administrators, who store the
    tenant's database login and first admin's password, and for the break-glass reader
    (TENANT_SECRETS_BREAK_GLASS; without one, the account's IAM policies decide), who hands
    that password over. Only through Secrets Manager (kms:ViaService)."""
    via = {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}
    statements: list[dict[str, Any]] = []
    if admins:
        statements.append(
            {
                "Sid": "KeyAdministratorsStoreTenantSecrets",
                "Effect": "Allow",
                "Principal": {"AWS": admins},
                "Action": list(SECRETS_MANAGER_KEY_ACTIONS),
                "Resource": "*",
                "Condition": via,
            }
        )
    reader = settings.tenant_secrets_break_glass or root
    condition: dict[str, Any] = {"StringEquals": dict(via["StringEquals"])}
    if reader == root:
        condition["StringEquals"]["kms:CallerAccount"] = settings.account_id
    statements.append(
        {
            "Sid": "BreakGlassReadsTenantSecrets",
            "Effect": "Allow",
            "Principal": {"AWS": reader},
            "Action": ["kms:Decrypt", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": condition,
        }
    )
    return statements


def _key_use_statements(settings: Settings, root: str) -> list[dict[str, Any]]:
    """Who may use a tenant key: the exact role ARNs as principals; the ARN patterns through
    the account and an ``aws:PrincipalArn`` condition, since KMS refuses a wildcard in a
    principal (MalformedPolicyDocumentException). A statement naming the account delegates to
    IAM: a role matched by a pattern needs an IAM policy allowing the use as well."""

    def use(sid: str, principal: Any, **condition: Any) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": list(KEY_USE_ACTIONS),
            "Resource": "*",
            **condition,
        }

    statements = []
    if settings.tenant_key_user_arns:
        statements.append(use("PlatformRolesUseTheKey", settings.tenant_key_user_arns))
        # by name too: the compliance report reads it right after onboarding (no tag lag)
        statements.append(
            {
                "Sid": "PlatformRolesReadTheKeyState",
                "Effect": "Allow",
                "Principal": {"AWS": settings.tenant_key_user_arns},
                "Action": ["kms:GetKeyRotationStatus"],
                "Resource": "*",
            }
        )
    if settings.tenant_key_user_arn_patterns:
        condition = {"ArnLike": {"aws:PrincipalArn": settings.tenant_key_user_arn_patterns}}
        statements.append(use("PlatformRolePatternsUseTheKey", root, Condition=condition))
    return statements


class TransientError(ServiceUnavailable):
    """A failure worth retrying (the state machines retry it with back-off)."""

    code = "transient_error"


class OffboardingNotRequested(Conflict):
    """An offboarding event for a tenant the API has not set to OFFBOARDING: refused."""

    code = "offboarding_not_requested"


def execution_checker(
    stepfunctions: Any, step_timeout_seconds: float, clock: Callable[[], float] = time.time
) -> Callable[[str], bool]:
    """``at_work(arn)``: whether an execution may still change a tenant -- RUNNING, or ended less
    than a step's timeout ago (stopping an execution does not stop a Lambda step already
    running: a compensation in flight would otherwise destroy what a takeover builds). True when
    unsure: a registration is taken over only from an execution known to be over for good."""

    def at_work(arn: str) -> bool:
        try:
            described = stepfunctions.describe_execution(executionArn=arn)
        except Exception as exc:
            if error_code(exc) == "ExecutionDoesNotExist":
                return False
            logger.warning("execution state unknown", extra={"error_type": type(exc).__name__})
            return True
        if str(described["status"]) == "RUNNING":
            return True
        stopped = described.get("stopDate")
        if stopped is None:
            return True
        ended = stopped.timestamp() if hasattr(stopped, "timestamp") else float(stopped)
        return clock() - ended < step_timeout_seconds + STEP_TIMEOUT_MARGIN_SECONDS

    return at_work


class TenantProvisioner:
    """The steps of onboarding and offboarding a tenant."""

    def __init__(
        self,
        settings: Settings,
        kms: Any,
        s3: Any,
        secrets: Any,
        tenants: TenantStore,
        users: UserStore,
        sessions: SessionStore,
        databases: Callable[[], TenantDatabases | None],
        kms_in: Callable[[str], Any] | None = None,
        execution_running: Callable[[str], bool] = lambda _arn: True,
    ) -> None:
        """``execution_running(arn)``: whether an onboarding execution is still at work (a
        registration held by an ended one may be taken over; when unsure, say True)."""
        self.settings = settings
        self.kms = kms
        # KMS of another region: shredding a multi-Region key shreds its replicas there too.
        self.kms_in = kms_in
        self.s3 = s3
        self.secrets = secrets
        self.tenants = tenants
        self.users = users
        self.sessions = sessions
        self.databases = databases
        self.execution_running = execution_running

    # ------------------------------------------------------------------ names
    def data_bucket(self, tenant_id: str) -> str:
        return self.settings.data_bucket(tenant_id)

    def audit_bucket(self, tenant_id: str) -> str:
        return self.settings.audit_bucket(tenant_id)

    def secret_name(self, tenant_id: str, what: str) -> str:
        return self.settings.tenant_secret_name(tenant_id, what)

    # ------------------------------------------------------------------ 1. validate
    def validate(self, data: Any) -> OnboardingRequest:
        """The request, checked (400 with fields when it is not valid)."""
        return self.validate_with(self.settings, data)

    @staticmethod
    def validate_with(settings: Settings, data: Any, *, check_database: bool = True) -> OnboardingRequest:
        """:meth:`validate` for callers that have only the settings (the API).

        ``check_database``: whether ``settings`` are the deployment's, which know if it has a
        platform database (the CLI's do not; the API and the validate step check it).
        """
        request = parse_onboarding_request(data)
        problems = []
        tenant_id = request.tenant_id
        if tenant_id == settings.platform_tenant_id:
            problems.append({"field": "tenant_id", "message": "the platform tenant cannot be onboarded"})
        if settings.region not in request.security_policies.data_protection.data_locality:
            problems.append(
                {
                    "field": "security_policies.data_protection.data_locality",
                    "message": f"must include {settings.region}: "
                    "this deployment stores the tenant's data there",
                }
            )
        if max(len(settings.data_bucket(tenant_id)), len(settings.audit_bucket(tenant_id))) > 63:
            problems.append(
                {"field": "tenant_id", "message": "too long for the S3 bucket names with this prefix"}
            )
        if check_database:
            problems += database_problems(settings, request)
        if problems:
            raise ValidationFailed("onboarding request is not valid", fields=problems)
        return request

    # ------------------------------------------------------------------ 2. register
    def register(self, request: OnboardingRequest, execution: str) -> dict[str, Any]:
        """Claim the tenant id for ``execution``: ``{status, proceed}``.

        ``proceed`` is true only when this execution owns the provisioning; otherwise the request
        is a no-op (the tenant is onboarded already, or another execution is at work).
        """
        record = TenantRecord(
            tenant_id=request.tenant_id,
            name=request.name,
            status=TenantStatus.PROVISIONING,
            isolation=request.database_isolation,
            policies=request.security_policies,
            quotas=request.resource_quotas,
            request_hash=request.fingerprint(),
            owner_execution=execution,
        )
        stored, mine = self.tenants.register(record, self.execution_running)
        return {"status": str(stored.status), "proceed": mine}

    def _own(self, tenant_id: str, execution: str) -> TenantRecord:
        """The tenant, if ``execution`` provisions it; :class:`NotOwner` (no change) otherwise."""
        return self.tenants.owned(tenant_id, execution)

    # ------------------------------------------------------------------ 3. keys
    def _key_policy(self, purpose: str, region: str | None = None) -> dict[str, Any]:
        return tenant_key_policy(self.settings, purpose, region)

    def _key_of_alias(self, alias: str) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = self.kms.describe_key(KeyId=alias)["KeyMetadata"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                return None
            raise
        return meta

    def create_keys(self, request: OnboardingRequest, execution: str) -> dict[str, str]:
        """The tenant's data, secrets and api-keys keys (ARNs by purpose)."""
        self._own(request.tenant_id, execution)
        protection = request.security_policies.data_protection
        out = {}
        for purpose in KEY_PURPOSES:
            alias = self.settings.tenant_key_alias(request.tenant_id, purpose)
            meta = self._key_of_alias(alias)
            # A multi-Region primary waits in PendingReplicaDeletion until its replicas are gone:
            # shredded as much as one PendingDeletion, so a new key takes the alias.
            if meta is None or meta.get("KeyState") in SHREDDED_KEY_STATES:
                if meta is not None:
                    self.kms.delete_alias(AliasName=alias)
                meta = self.kms.create_key(
                    Description=f"{request.tenant_id} {purpose} key ({self.settings.resource_prefix})",
                    KeyUsage="ENCRYPT_DECRYPT",
                    KeySpec="SYMMETRIC_DEFAULT",
                    MultiRegion=protection.cross_region_encryption,
                    Policy=json.dumps(self._key_policy(purpose)),
                    Tags=self._key_tags(request.tenant_id, purpose),
                )["KeyMetadata"]
                self.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
            self.kms.enable_key_rotation(
                KeyId=meta["KeyId"], RotationPeriodInDays=protection.key_rotation_days
            )
            if meta.get("MultiRegion"):
                regions = replica_regions(request.security_policies, self.settings.region)
                self._replicate(meta, regions, purpose, self._key_tags(request.tenant_id, purpose))
            out[purpose] = str(meta["Arn"])
        return out

    def _replicas(self, meta: dict[str, Any]) -> dict[str, str]:
        """A multi-Region key's replicas: ARN by region."""
        replicas = (meta.get("MultiRegionConfiguration") or {}).get("ReplicaKeys") or []
        return {str(r["Region"]): str(r["Arn"]) for r in replicas}

    def _key_tags(self, tenant_id: str, purpose: str) -> list[dict[str, str]]:
        return [
            {"TagKey": "TenantId", "TagValue": tenant_id},
            {"TagKey": "Purpose", "TagValue": purpose},
            {"TagKey": "ManagedBy", "TagValue": f"{self.settings.resource_prefix}-tenant-security"},
        ]

    def _replicate(
        self, meta: dict[str, Any], regions: list[str], purpose: str, tags: list[dict[str, str]]
    ) -> None:
        """Replicas of a multi-Region tenant key in ``regions`` (those it lacks), same key policy
        (Secrets Manager's statements name the replica's region)."""
        for region in [r for r in regions if r not in self._replicas(meta)]:
            self.kms.replicate_key(
                KeyId=meta["KeyId"],
                ReplicaRegion=region,
                Policy=json.dumps(self._key_policy(purpose, region)),
                Tags=tags,
            )

    # ------------------------------------------------------------------ 4. buckets
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

    def _create_bucket(self, name: str, tenant_id: str, object_lock: bool) -> None:
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

    def _encrypt_bucket(self, name: str, key_arn: str) -> None:
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

    def create_buckets(
        self, request: OnboardingRequest, keys: dict[str, str], execution: str
    ) -> dict[str, str]:
        """The tenant's data bucket and its object-locked audit bucket."""
        tenant_id = request.tenant_id
        self._own(tenant_id, execution)
        data, audit = self.data_bucket(tenant_id), self.audit_bucket(tenant_id)
        self._create_bucket(data, tenant_id, object_lock=False)
        self._encrypt_bucket(data, keys["data"])
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
        self._create_bucket(audit, tenant_id, object_lock=True)
        # The trail is encrypted with the platform's audit key: it survives crypto-shredding.
        self._encrypt_bucket(audit, self.settings.audit_key_arn)
        self.s3.put_object_lock_configuration(
            Bucket=audit,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {
                    "DefaultRetention": {
                        "Mode": "COMPLIANCE",
                        "Days": request.security_policies.audit_logging.retention_days,
                    }
                },
            },
        )
        self.s3.put_bucket_policy(
            Bucket=audit, Policy=json.dumps({"Version": "2012-10-17", "Statement": [self._tls_only(audit)]})
        )
        return {"data": data, "audit": audit}

    # ------------------------------------------------------------------ 5. database
    def _put_secret(
        self, name: str, value: str, tenant_id: str, description: str, username: str = ""
    ) -> None:
        key = self.settings.secrets_key_arn(tenant_id)
        tags = [{"Key": "TenantId", "Value": tenant_id}] + (
            [{"Key": "Username", "Value": username}] if username else []
        )
        try:
            self.secrets.create_secret(
                Name=name, SecretString=value, KmsKeyId=key, Description=description, Tags=tags
            )
        except Exception as exc:
            if error_code(exc) != "ResourceExistsException":
                raise
            self.secrets.put_secret_value(SecretId=name, SecretString=value)

    def create_database(self, request: OnboardingRequest, execution: str) -> dict[str, str]:
        """The tenant's database or schema and role; credentials in Secrets Manager. Nothing for
        a request without isolation (validation accepts one only where there is no database)."""
        self._own(request.tenant_id, execution)
        if request.isolation is None:
            return {"isolation": Isolation.NONE}
        databases = self.databases()
        if databases is None:  # the deployment lost its database since validation: compensate
            raise RuntimeError("no platform database is configured (DatabaseSecretArn is empty)")
        credentials = databases.create(request.tenant_id, request.isolation)
        name = self.secret_name(request.tenant_id, CREDENTIALS_SECRET)
        self._put_secret(name, json.dumps(credentials), request.tenant_id, "Tenant database credentials")
        return {
            "isolation": request.isolation,
            "secret": name,
            "dbname": credentials["dbname"],
            "schema": credentials["schema"],
        }

    def _drop_database(self, tenant_id: str) -> None:
        """The tenant's database or schema and role, if the deployment has a database."""
        databases = self.databases()
        if databases is not None:
            databases.drop(tenant_id)

    # ------------------------------------------------------------------ 6. admin
    def create_admin(self, request: OnboardingRequest, execution: str) -> dict[str, str]:
        """The tenant's first tenant-admin, with a one-time password kept for the operator.

        Before activation: the admin cannot sign in until the tenant is ACTIVE.
        """
        tenant_id, username = request.tenant_id, request.admin.username
        self._own(tenant_id, execution)
        secret = self.secret_name(tenant_id, "admin-initial-password")
        if self.users.get(tenant_id, username) is None:
            password = generate_password(24)
            self._put_secret(
                secret,
                json.dumps({"username": username, "password": password}),
                tenant_id,
                "One-time password of the tenant's first admin (deleted at first sign-in)",
                username=username,
            )
            with contextlib.suppress(Conflict):  # a retry of this step created it first
                self.users.create(
                    User(
                        tenant_id=tenant_id,
                        username=username,
                        email=request.admin.email,
                        roles=[TENANT_ADMIN],
                        password_hash=hash_password(password),
                        password_change_required=True,
                    )
                )
        return {"username": username, "initial_password_secret": secret}

    # ------------------------------------------------------------------ 7. activate
    def activate(self, request: OnboardingRequest, execution: str) -> dict[str, str]:
        """Store the tenant's configuration, status ACTIVE: the last step."""
        record = self.tenants.get(request.tenant_id)
        if (
            record is not None
            and record.status == TenantStatus.ACTIVE
            and record.owner_execution == execution
            and record.request_hash == request.fingerprint()
        ):
            return {"status": TenantStatus.ACTIVE}  # this execution's retry of the step
        record = self._own(request.tenant_id, execution)
        active = replace(
            record,
            status=TenantStatus.ACTIVE,
            policies=request.security_policies,
            quotas=request.resource_quotas,
            name=request.name,
            isolation=request.database_isolation,
            failure_reason="",
            updated_at=datetime.now(UTC).isoformat(),
        )
        self.tenants.replace(active, expected_status=TenantStatus.PROVISIONING)
        return {"status": TenantStatus.ACTIVE}

    # ------------------------------------------------------------------ undo
    def _delete_bucket(self, name: str) -> bool:
        try:
            self.s3.head_bucket(Bucket=name)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            objects = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if objects:
                self.s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
        self.s3.delete_bucket(Bucket=name)
        return True

    def _delete_secrets(self, tenant_id: str) -> int:
        """Every secret of the tenant (``<prefix>/tenants/<id>/...``: the admin's one-time
        password, the database login, the application secrets); how many."""
        prefix = self.secret_name(tenant_id, "")
        names = {self.secret_name(tenant_id, what) for what in ("admin-initial-password", CREDENTIALS_SECRET)}
        for page in self.secrets.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "name", "Values": [prefix]}]
        ):
            names |= {str(s["Name"]) for s in page.get("SecretList", []) if str(s["Name"]).startswith(prefix)}
        for name in sorted(names):
            self._delete_secret(name)
        return len(names)

    def _delete_secret(self, name: str) -> None:
        try:
            self.secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise

    def shred_keys(self, tenant_id: str) -> list[str]:
        """Schedule the tenant's keys for deletion (crypto-shredding); their key ids."""
        shredded = []
        for purpose in KEY_PURPOSES:
            alias = self.settings.tenant_key_alias(tenant_id, purpose)
            meta = self._key_of_alias(alias)
            if meta is None:
                continue
            # Replicas first: a multi-Region key's material lives on in every replica.
            for region, arn in self._replicas(meta).items():
                # by key id: the replica shares it (moto takes no ARN here; AWS takes either)
                self._schedule_deletion(self._kms_of(region), arn.rsplit("/", 1)[-1])
            if meta.get("KeyState") not in SHREDDED_KEY_STATES:
                self._schedule_deletion(self.kms, str(meta["KeyId"]))
            self.kms.delete_alias(AliasName=alias)
            shredded.append(str(meta["KeyId"]))
        return shredded

    def _kms_of(self, region: str) -> Any:
        if self.kms_in is None:
            raise RuntimeError(f"no KMS client for {region}: the key replica there cannot be shredded")
        return self.kms_in(region)

    def _schedule_deletion(self, kms: Any, key_id: str) -> None:
        try:
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_DELETION_WINDOW_DAYS)
        except Exception as exc:
            # already pending deletion (or gone): shredded either way
            if error_code(exc) not in ("KMSInvalidStateException", "NotFoundException"):
                raise

    def _delete_users(self, tenant_id: str) -> int:
        users = self.users.list_users(tenant_id)
        for user in users:
            self.users.delete(tenant_id, user.username)
        return len(users)

    def seconds_since_registered(self, tenant_id: str) -> float | None:
        """How long ago the tenant was registered (its onboarding's duration so far), if it is."""
        record = self.tenants.get(tenant_id)
        try:
            started = datetime.fromisoformat(record.created_at) if record else None
        except ValueError:
            return None
        return max(0.0, (datetime.now(UTC) - started).total_seconds()) if started else None

    def compensate(self, tenant_id: str, execution: str, reason: str) -> dict[str, Any]:
        """Undo every step of this execution's failed onboarding; status FAILED with ``reason``.

        Only the execution that owns a PROVISIONING tenant compensates: for any other (a
        repeated request that failed because the tenant is onboarded, or another execution's
        tenant) nothing is touched and ``compensated`` is false.
        """
        try:
            self._own(tenant_id, execution)
        except NotOwner:
            logger.info("nothing to compensate: not this execution's tenant", extra={"tenant_id": tenant_id})
            return {"tenant_id": tenant_id, "compensated": False}
        self.sessions.revoke_all(tenant_id)
        users = self._delete_users(tenant_id)
        self._delete_secrets(tenant_id)
        self._drop_database(tenant_id)
        buckets = [
            b for b in (self.data_bucket(tenant_id), self.audit_bucket(tenant_id)) if self._delete_bucket(b)
        ]
        keys = self.shred_keys(tenant_id)
        self.tenants.fail_provisioning(tenant_id, execution, reason)
        logger.warning("onboarding rolled back", extra={"tenant_id": tenant_id, "reason": reason[:500]})
        return {"tenant_id": tenant_id, "compensated": True, "users": users, "buckets": buckets, "keys": keys}

    # ------------------------------------------------------------------ offboarding
    def begin_offboarding(self, tenant_id: str) -> dict[str, str]:
        """Check the decision: the API set the tenant OFFBOARDING (409 for any other status).

        The event that starts offboarding carries only a tenant id; whoever can put events must
        not be able to offboard a tenant the platform-admin's DELETE did not mark.
        """
        record = self.tenants.get(tenant_id)
        if record is None or record.status not in RETIRED:
            status = record.status if record is not None else "absent"
            raise OffboardingNotRequested(
                f"tenant {tenant_id!r} is {status}: offboarding starts with DELETE /tenants/{{t}}"
            )
        return {"status": str(record.status), "requested_by": record.offboarding_requested_by}

    def offboard(self, tenant_id: str) -> dict[str, Any]:
        """Revoke sessions, drop the database, delete the data bucket, shred the keys; keep the trail."""
        self.begin_offboarding(tenant_id)  # checked again: this step can be invoked on its own
        revoked = self.sessions.revoke_all(tenant_id)
        users = self._delete_users(tenant_id)
        secrets = self._delete_secrets(tenant_id)
        self._drop_database(tenant_id)
        data_deleted = self._delete_bucket(self.data_bucket(tenant_id))
        keys = self.shred_keys(tenant_id)
        self.tenants.set_status(tenant_id, TenantStatus.OFFBOARDED, allowed_from=RETIRED)
        return {
            "tenant_id": tenant_id,
            "sessions_revoked": revoked,
            "users_deleted": users,
            "secrets_deleted": secrets,
            "data_bucket_deleted": data_deleted,
            "keys_pending_deletion": keys,
        }


def database_problems(settings: Settings, request: OnboardingRequest) -> list[dict[str, str]]:
    """``isolation`` against the deployment: required with a platform database, refused without
    one (DatabaseSecretArn empty means "no tenant databases")."""
    if not settings.database_secret_arn and request.isolation is not None:
        return [
            {
                "field": "isolation",
                "message": "this deployment has no tenant databases (DatabaseSecretArn is empty): "
                "omit isolation, or deploy with a platform database",
            }
        ]
    if settings.database_secret_arn and request.isolation is None:
        return [{"field": "isolation", "message": "required: 'database' or 'schema'"}]
    return []


ONBOARDING_REQUESTED = "Tenant Onboarding Requested"
OFFBOARDING_REQUESTED = "Tenant Offboarding Requested"
# The request travels as an EventBridge event (256 KB at most) and then in every state of its
# onboarding execution (256 KB at most, beside the steps' results; over it the execution fails
# with States.DataLimitExceeded, which no Catch takes, so nothing would be compensated). A valid
# request is far smaller -- its strings and lists are bounded -- so a body over this is refused
# (413) before anything is done.
ONBOARDING_REQUEST_MAX_BYTES = 64 * 1024


def check_onboarding_size(body: str | bytes | None) -> None:
    """:class:`PayloadTooLarge` for an onboarding request (body or event detail) over the limit."""
    size = len(body.encode() if isinstance(body, str) else body or b"")
    if size > ONBOARDING_REQUEST_MAX_BYTES:
        raise PayloadTooLarge(
            f"an onboarding request is at most {ONBOARDING_REQUEST_MAX_BYTES} bytes ({size} sent): "
            "it must fit in an event and in its workflow's state"
        )


def request_onboarding(request: OnboardingRequest, tenants: TenantStore, publisher: Any) -> dict[str, Any]:
    """POST /tenants: put the onboarding event, unless the request is a no-op or refused.

    409 for an id taken by another request or retired; the same request again for a tenant that
    is ACTIVE or SUSPENDED answers with its status and starts nothing. A new id, a FAILED one and
    one still PROVISIONING (whose execution may have ended: registration takes it over) are
    (re)queued.
    """
    existing = tenants.get(request.tenant_id)
    if existing is not None and existing.status in RETIRED:
        raise Conflict(f"tenant {request.tenant_id!r} was offboarded; its id is not reused")
    if (
        existing is not None
        and existing.status != TenantStatus.FAILED
        and existing.request_hash != request.fingerprint()
    ):
        raise Conflict(f"tenant {request.tenant_id!r} exists with another request")
    if existing is not None and existing.status in (TenantStatus.ACTIVE, TenantStatus.SUSPENDED):
        return {"tenant_id": request.tenant_id, "status": str(existing.status)}
    detail = request.model_dump(mode="json")
    check_onboarding_size(json.dumps(detail))  # as the publisher will put it
    if not publisher.put(ONBOARDING_REQUESTED, detail, raw=True):
        raise TransientError("the onboarding request could not be queued; try again")
    return {"tenant_id": request.tenant_id, "status": str(TenantStatus.PROVISIONING)}


def request_offboarding(
    tenant_id: str, tenants: TenantStore, publisher: Any, requested_by: str
) -> dict[str, Any]:
    """DELETE /tenants/{t}: record the decision (OFFBOARDING, who asked), then put the event.

    The offboarding workflow runs only for a tenant in this status. Asking again while
    OFFBOARDING puts the event again (a failed offboarding is started anew); 409 from any status
    but ACTIVE, SUSPENDED, FAILED and OFFBOARDING.
    """
    record = tenants.get(tenant_id)
    if record is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    if record.status != TenantStatus.OFFBOARDING:
        tenants.set_status(
            tenant_id,
            TenantStatus.OFFBOARDING,
            allowed_from=(TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.FAILED),
            requested_by=requested_by,
        )
    if not publisher.put(OFFBOARDING_REQUESTED, {"tenant_id": tenant_id}, raw=True):
        raise TransientError("the offboarding request could not be queued; try again")
    return {"tenant_id": tenant_id, "status": str(TenantStatus.OFFBOARDING)}
