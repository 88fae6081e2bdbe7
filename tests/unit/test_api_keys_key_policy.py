"""The api-keys key's policy with TENANT_API_KEY_USERS set (onboarding/key_policy.py): only those
roles use the key, for GenerateDataKey and Decrypt (no encryption-context condition: key_policy.py
says the local cloud's IAM model cannot evaluate one, and the key has no other use); every
platform role reads its state only; the data and secrets keys' policies are unchanged; and
every document passes the key-policy check the local cloud's KMS applies (localcloud/policies.py,
through localcloud/motohooks.py at CreateKey and PutKeyPolicy)."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from localcloud.policies import PolicyCheck, PolicyKind, check_policy
from tenant_security.config import Settings
from tenant_security.onboarding.key_policy import (
    API_KEYS_PURPOSE,
    KEY_STATE_ACTIONS,
    KEY_USE_ACTIONS,
    SECRETS_KEY_PURPOSE,
    tenant_key_policy,
)
from tests.support.settings import local_settings

ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
AUTH = f"arn:aws:iam::{ACCOUNT}:role/dcisionai-auth-api"
AUDIT = f"arn:aws:iam::{ACCOUNT}:role/dcisionai-audit-writer"
COMPLIANCE = f"arn:aws:iam::{ACCOUNT}:role/dcisionai-compliance-api"
DATA = f"arn:aws:iam::{ACCOUNT}:role/dcisionai-data-api"
PLATFORM_ROLES = (AUTH, AUDIT, COMPLIANCE, DATA)
PATTERN = f"arn:aws:iam::{ACCOUNT}:role/dcisionai-tenant-data-*"
ADMINS = (
    f"arn:aws:iam::{ACCOUNT}:role/dcisionai-onboarding",
    f"arn:aws:iam::{ACCOUNT}:role/dcisionai-rollout",
)
# What uses a key's material (DescribeKey is no use of it: it is in KEY_USE_ACTIONS for the others)
MATERIAL_ACTIONS = tuple(a for a in KEY_USE_ACTIONS if a != "kms:DescribeKey")


def settings(api_key_users: str = AUTH) -> Settings:
    """Settings as template.yaml makes them (every platform role a key user, the auth API's the
    api-keys key's user, the onboarding and rollout roles the key administrators)."""
    return local_settings(
        account_id=ACCOUNT,
        tenant_key_users=",".join(PLATFORM_ROLES),
        tenant_key_user_patterns=PATTERN,
        tenant_api_key_users=api_key_users,
        tenant_key_admins=",".join(ADMINS),
    )


def by_sid(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sids = [s["Sid"] for s in document["Statement"]]
    assert len(sids) == len(set(sids)), sids
    return {s["Sid"]: s for s in document["Statement"]}


def principals(statement: dict[str, Any]) -> list[str]:
    named = statement["Principal"]["AWS"]
    return [named] if isinstance(named, str) else list(named)


def grants(statement: dict[str, Any], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in statement["Action"])


def refusals(check: PolicyCheck) -> str:
    return "; ".join(str(f) for f in check.refusals)


def test_only_the_api_key_users_use_the_key_and_only_with_the_verifier_context() -> None:
    document = tenant_key_policy(settings(), API_KEYS_PURPOSE)
    statements = by_sid(document)
    use = statements["ApiClientVerifierKeys"]
    assert use["Effect"] == "Allow"
    assert principals(use) == [AUTH]
    assert use["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert use["Resource"] == "*"
    # by name, unconditionally (key_policy.py: no kms:EncryptionContext condition on purpose)
    assert "Condition" not in use
    # no other statement lets anyone use the key's material, by name or by pattern
    for sid, statement in statements.items():
        if sid == "ApiClientVerifierKeys":
            continue
        used = [a for a in MATERIAL_ACTIONS if grants(statement, a)]
        assert used == [], f"{sid} grants {used}"
    assert all(s["Effect"] == "Allow" for s in statements.values())


def test_every_platform_role_reads_the_keys_state_only() -> None:
    statements = by_sid(tenant_key_policy(settings(), API_KEYS_PURPOSE))
    read = statements["PlatformRolesReadTheKeyState"]
    assert sorted(principals(read)) == sorted(PLATFORM_ROLES)
    assert read["Action"] == list(KEY_STATE_ACTIONS) == ["kms:DescribeKey", "kms:GetKeyRotationStatus"]
    assert "Condition" not in read
    patterned = statements["PlatformRolePatternsReadTheKeyState"]
    assert principals(patterned) == [ROOT]
    assert patterned["Action"] == list(KEY_STATE_ACTIONS)
    assert patterned["Condition"] == {"ArnLike": {"aws:PrincipalArn": [PATTERN]}}
    # a platform role that is no api-key user is named nowhere else; none is named to use it
    for sid, statement in statements.items():
        named = set(principals(statement)) & {AUDIT, COMPLIANCE, DATA}
        if named:
            assert sid == "PlatformRolesReadTheKeyState", sid
    assert "PlatformRolesUseTheKey" not in statements
    assert "PlatformRolePatternsUseTheKey" not in statements
    # the account and the key administrators administer it as any tenant key
    assert principals(statements["AccountAdministration"]) == [ROOT]
    assert principals(statements["KeyAdministrators"]) == list(ADMINS)


def test_several_api_key_users_are_each_named() -> None:
    other = f"arn:aws:iam::{ACCOUNT}:role/dcisionai-auth-api-replica"
    statements = by_sid(tenant_key_policy(settings(f"{AUTH},{other}"), API_KEYS_PURPOSE))
    assert principals(statements["ApiClientVerifierKeys"]) == [AUTH, other]
    assert sorted(principals(statements["PlatformRolesReadTheKeyState"])) == sorted({*PLATFORM_ROLES, other})


@pytest.mark.parametrize("purpose", ["data", SECRETS_KEY_PURPOSE])
def test_the_data_and_secrets_keys_policies_are_unchanged(purpose: str) -> None:
    with_api_users = tenant_key_policy(settings(), purpose)
    without = tenant_key_policy(settings(""), purpose)
    assert with_api_users == without
    statements = by_sid(with_api_users)
    assert "ApiClientVerifierKeys" not in statements
    assert sorted(principals(statements["PlatformRolesUseTheKey"])) == sorted(PLATFORM_ROLES)
    assert statements["PlatformRolesUseTheKey"]["Action"] == list(KEY_USE_ACTIONS)


def test_without_api_key_users_the_api_keys_key_is_like_the_others() -> None:
    """TENANT_API_KEY_USERS unset (a deployment before it): the api-keys key's policy is the data
    key's, as it was."""
    assert tenant_key_policy(settings(""), API_KEYS_PURPOSE) == tenant_key_policy(settings(""), "data")


@pytest.mark.parametrize(
    ("api_key_users", "purpose"),
    [
        (AUTH, API_KEYS_PURPOSE),
        (f"{AUTH},{DATA}", API_KEYS_PURPOSE),
        ("", API_KEYS_PURPOSE),
        (AUTH, "data"),
        (AUTH, SECRETS_KEY_PURPOSE),
    ],
)
def test_the_local_clouds_kms_accepts_the_policy(api_key_users: str, purpose: str) -> None:
    document = tenant_key_policy(settings(api_key_users), purpose)
    check = check_policy(json.dumps(document), PolicyKind.KEY)
    assert check.accepted, refusals(check)
    assert len(json.dumps(document)) <= 32768  # KMS's key policy size limit
