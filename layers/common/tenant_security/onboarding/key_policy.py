"""A tenant key's policy: who administers, uses and reads each of the tenant's KMS keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tenant_security.config import Settings

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
# What the key administrators (TENANT_KEY_ADMINS: the onboarding and policy rollout functions'
# roles) do with a tenant key, granted to them by name in its key policy: KMS checks at CreateKey
# (and ReplicateKey) that the creator may change the policy later (PutKeyPolicy), and a grant by
# name applies at once, where one by the key's tags or aliases can take minutes to apply to a new
# key (CreateAlias, EnableKeyRotation right after CreateKey would fail, and AccessDenied is not
# retried).
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
    # the policy rollout: a replica of a region that comes back is restored, not replicated again
    "kms:CancelKeyDeletion",
    "kms:EnableKey",
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
API_KEYS_PURPOSE = "api-keys"
# What the auth API does with a tenant's api-keys key: the Encryption SDK wraps and unwraps the
# tenant's API client verifier key (no kms:EncryptionContext condition: the local cloud's IAM
# model cannot evaluate one, and the key has no other use).
API_KEY_USE_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
# What every platform role may read of any tenant key (the compliance report: rotation and state)
KEY_STATE_ACTIONS = ("kms:DescribeKey", "kms:GetKeyRotationStatus")


def _allow(
    sid: str, principal: Any, actions: Sequence[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One Allow statement of a key policy (``Resource`` is always the key itself: ``*``)."""
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": list(actions),
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = condition
    return statement


def tenant_key_policy(settings: Settings, purpose: str, region: str | None = None) -> dict[str, Any]:
    """A tenant key's policy (``region``: where the key or replica is; the deployment's).

    The account administers the key through its IAM policies; the key administrators
    (TENANT_KEY_ADMINS) by name, so the policy passes KMS's lockout check for them and applies
    at once; the platform's roles use it; on the secrets key, Secrets Manager encrypts and
    decrypts for the key administrators and for the break-glass reader.
    """
    root = f"arn:{settings.partition}:iam::{settings.account_id}:root"
    statements = [_allow("AccountAdministration", root, ACCOUNT_ADMIN_ACTIONS)]
    admins = settings.tenant_key_admin_arns
    if admins:
        statements.append(_allow("KeyAdministrators", admins, KEY_ADMIN_ACTIONS))
    if purpose == API_KEYS_PURPOSE and settings.tenant_api_key_user_arns:
        statements += _api_keys_statements(settings, root)
    else:
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
            _allow("KeyAdministratorsStoreTenantSecrets", admins, SECRETS_MANAGER_KEY_ACTIONS, via)
        )
    reader = settings.tenant_secrets_break_glass or root
    condition: dict[str, Any] = {"StringEquals": dict(via["StringEquals"])}
    if reader == root:
        condition["StringEquals"]["kms:CallerAccount"] = settings.account_id
    statements.append(
        _allow("BreakGlassReadsTenantSecrets", reader, ["kms:Decrypt", "kms:DescribeKey"], condition)
    )
    return statements


def _api_keys_statements(settings: Settings, root: str) -> list[dict[str, Any]]:
    """Who may use a tenant's api-keys key: the API key users (TENANT_API_KEY_USERS) alone; every
    platform role reads its state (the compliance report) and none else uses it -- a grant the
    key policy makes by name is not narrowed by IAM, so the narrowing is here."""
    statements = [_allow("ApiClientVerifierKeys", settings.tenant_api_key_user_arns, API_KEY_USE_ACTIONS)]
    readers = sorted({*settings.tenant_key_user_arns, *settings.tenant_api_key_user_arns})
    statements.append(_allow("PlatformRolesReadTheKeyState", readers, KEY_STATE_ACTIONS))
    if settings.tenant_key_user_arn_patterns:
        condition = {"ArnLike": {"aws:PrincipalArn": settings.tenant_key_user_arn_patterns}}
        statements.append(_allow("PlatformRolePatternsReadTheKeyState", root, KEY_STATE_ACTIONS, condition))
    return statements


def _key_use_statements(settings: Settings, root: str) -> list[dict[str, Any]]:
    """Who may use a tenant key: the exact role ARNs as principals; the ARN patterns through
    the account and an ``aws:PrincipalArn`` condition, since KMS refuses a wildcard in a
    principal (MalformedPolicyDocumentException). A statement naming the account delegates to
    IAM: a role matched by a pattern needs an IAM policy allowing the use as well."""
    statements = []
    if settings.tenant_key_user_arns:
        statements.append(_allow("PlatformRolesUseTheKey", settings.tenant_key_user_arns, KEY_USE_ACTIONS))
        # by name too: the compliance report reads it right after onboarding (no tag lag)
        statements.append(
            _allow(
                "PlatformRolesReadTheKeyState", settings.tenant_key_user_arns, ["kms:GetKeyRotationStatus"]
            )
        )
    if settings.tenant_key_user_arn_patterns:
        condition = {"ArnLike": {"aws:PrincipalArn": settings.tenant_key_user_arn_patterns}}
        statements.append(_allow("PlatformRolePatternsUseTheKey", root, KEY_USE_ACTIONS, condition))
    return statements
