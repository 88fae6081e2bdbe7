"""The tenant key policies and the template's key policies, evaluated as KMS evaluates them (the
local cloud's evaluator) with the roles template.yaml gives the functions (as the running platform
cloud provisioned them).

Regressions (issue 16): KMS refused the tenant key policy, which let the onboarding role neither
change it later (the lockout check) nor use the key through Secrets Manager; a new key's alias
and rotation were allowed only through its tags, which take minutes to apply; no key policy
allowed kms:DeleteAlias.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.iam.evaluator import Decision, PolicyEvaluator, Principal, Simulation
from tenant_security.config import Settings
from tenant_security.onboarding.key_policy import tenant_key_policy
from tests.support.cloud import RunningCloud
from tests.support.identity import onboarding_settings

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
NEW_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
VIA_SECRETS_MANAGER = {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}


@pytest.fixture(scope="module")
def evaluator() -> Iterator[PolicyEvaluator]:
    found = PolicyEvaluator()
    yield found
    found.close()


Role = tuple[Principal, list[tuple[str, dict[str, Any]]]]


def role_of(cloud: RunningCloud, function: str) -> Role:
    """The function's execution role session and its identity policies, as provisioned."""
    iam = cloud.client("iam")
    role = next(r for r in iam.list_roles()["Roles"] if f"-{function}Role-" in r["RoleName"])
    name = role["RoleName"]
    policies = [
        (policy, iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"])
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]
    ]
    return Principal(ACCOUNT, name, function), [
        (n, d if isinstance(d, dict) else json.loads(d)) for n, d in policies
    ]


def decide(
    evaluator: PolicyEvaluator,
    role: Role,
    action: str,
    key_policy: dict[str, Any],
    resource: str = NEW_KEY,
    **context: Any,
) -> Decision:
    principal, identity = role
    values = {**principal.context(), "aws:SecureTransport": "true", "kms:CallerAccount": ACCOUNT, **context}
    return evaluator.decide(
        Simulation(principal.session_arn, action, resource, ACCOUNT, values, identity, key_policy)
    )


@pytest.fixture(scope="module")
def settings(platform_cloud: RunningCloud) -> Settings:
    return onboarding_settings(platform_cloud)


@pytest.fixture(scope="module")
def before(settings: Settings) -> Settings:
    """The settings as they were: no key administrators named in the policy, no break-glass."""
    return settings.model_copy(update={"tenant_key_admins": ""})


def test_kms_accepts_the_tenant_key_policies_from_the_onboarding_role(
    platform_cloud: RunningCloud, evaluator: PolicyEvaluator, settings: Settings, before: Settings
) -> None:
    onboarding = role_of(platform_cloud, "OnboardingFunction")
    for purpose in ("data", "secrets", "api-keys"):
        # the lockout check: the creator may PutKeyPolicy through the new policy
        assert (
            decide(evaluator, onboarding, "kms:PutKeyPolicy", tenant_key_policy(settings, purpose))
            is Decision.ALLOWED
        )
        assert (
            decide(evaluator, onboarding, "kms:PutKeyPolicy", tenant_key_policy(before, purpose))
            is not Decision.ALLOWED
        )


def test_a_new_keys_alias_rotation_and_shredding_need_none_of_its_tags(
    platform_cloud: RunningCloud, evaluator: PolicyEvaluator, settings: Settings, before: Settings
) -> None:
    onboarding = role_of(platform_cloud, "OnboardingFunction")
    # a new key carries no aliases or tags that authorize yet: the key policy names the role
    for action in (
        "kms:CreateAlias",
        "kms:EnableKeyRotation",
        "kms:ReplicateKey",
        "kms:DescribeKey",
        "kms:ScheduleKeyDeletion",
        "kms:DeleteAlias",
    ):
        assert (
            decide(evaluator, onboarding, action, tenant_key_policy(settings, "data")) is Decision.ALLOWED
        ), action
        assert (
            decide(evaluator, onboarding, action, tenant_key_policy(before, "data")) is not Decision.ALLOWED
        ), action
    # once the tags apply, the role's IAM statement (kept for keys under the earlier policy) serves too
    tagged = {"aws:ResourceTag/ManagedBy": "dcisionai-tenant-security"}
    assert (
        decide(evaluator, onboarding, "kms:DeleteAlias", tenant_key_policy(before, "data"), **tagged)
        is Decision.ALLOWED
    )


def test_secrets_manager_uses_the_secrets_key_for_the_onboarding_role_and_only_through_it(
    platform_cloud: RunningCloud, evaluator: PolicyEvaluator, settings: Settings, before: Settings
) -> None:
    onboarding = role_of(platform_cloud, "OnboardingFunction")
    secrets = tenant_key_policy(settings, "secrets")
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert decide(evaluator, onboarding, action, secrets, **VIA_SECRETS_MANAGER) is Decision.ALLOWED
        assert decide(evaluator, onboarding, action, secrets) is not Decision.ALLOWED  # not directly
        assert (
            decide(evaluator, onboarding, action, tenant_key_policy(before, "secrets"), **VIA_SECRETS_MANAGER)
            is not Decision.ALLOWED
        )
        # the data key stores no secret
        assert (
            decide(evaluator, onboarding, action, tenant_key_policy(settings, "data"), **VIA_SECRETS_MANAGER)
            is not Decision.ALLOWED
        )
    # the platform's roles that read tenant secrets are named as key users
    data_api = role_of(platform_cloud, "DataApiFunction")
    assert decide(evaluator, data_api, "kms:Decrypt", secrets, **VIA_SECRETS_MANAGER) is Decision.ALLOWED


def test_the_break_glass_reader_decrypts_tenant_secrets_through_secrets_manager_only(
    evaluator: PolicyEvaluator, settings: Settings
) -> None:
    glass = Principal(ACCOUNT, "break-glass", "operator")
    named = tenant_key_policy(
        settings.model_copy(update={"tenant_secrets_break_glass": glass.role_arn}), "secrets"
    )
    assert decide(evaluator, (glass, []), "kms:Decrypt", named, **VIA_SECRETS_MANAGER) is Decision.ALLOWED
    assert decide(evaluator, (glass, []), "kms:Decrypt", named) is not Decision.ALLOWED
    assert (
        decide(evaluator, (glass, []), "kms:GenerateDataKey", named, **VIA_SECRETS_MANAGER)
        is not Decision.ALLOWED
    )
    # without a named role the account's IAM decides: an operator whose policy allows the decrypt
    operator = Principal(ACCOUNT, "operator", "session")
    may_decrypt = [
        (
            "ops",
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}],
            },
        )
    ]
    delegated = tenant_key_policy(settings, "secrets")
    assert (
        decide(evaluator, (operator, may_decrypt), "kms:Decrypt", delegated, **VIA_SECRETS_MANAGER)
        is Decision.ALLOWED
    )
    assert (
        decide(evaluator, (operator, []), "kms:Decrypt", delegated, **VIA_SECRETS_MANAGER)
        is not Decision.ALLOWED
    )
    assert decide(evaluator, (operator, may_decrypt), "kms:Decrypt", delegated) is not Decision.ALLOWED


def test_the_template_keys_with_aliases_let_the_account_delete_their_aliases(
    platform_cloud: RunningCloud, evaluator: PolicyEvaluator
) -> None:
    kms = platform_cloud.client("kms")
    administrator = (
        Principal(ACCOUNT, "stack-admin", "cloudformation"),
        [
            (
                "admin",
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
                },
            )
        ],
    )
    for alias in ("token-signing", "audit-log", "audit-checkpoints", "platform-master"):
        meta = kms.describe_key(KeyId=f"alias/dcisionai-{alias}")["KeyMetadata"]
        policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
        assert decide(evaluator, administrator, "kms:DeleteAlias", policy, meta["Arn"]) is Decision.ALLOWED, (
            alias
        )


def test_the_compliance_role_reads_the_platform_master_keys_state(
    platform_cloud: RunningCloud, evaluator: PolicyEvaluator
) -> None:
    compliance = role_of(platform_cloud, "ComplianceApiFunction")
    kms = platform_cloud.client("kms")
    meta = kms.describe_key(KeyId="alias/dcisionai-platform-master")["KeyMetadata"]
    policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
    aliases = {"kms:ResourceAliases": ["alias/dcisionai-platform-master"]}
    for action in ("kms:DescribeKey", "kms:GetKeyRotationStatus"):
        assert decide(evaluator, compliance, action, policy, meta["Arn"], **aliases) is Decision.ALLOWED, (
            action
        )


def test_cloudwatch_and_eventbridge_may_publish_to_the_encrypted_alert_topic(
    platform_cloud: RunningCloud, evaluator: PolicyEvaluator
) -> None:
    # Alarms and security alerts reach the topic only if its key lets these services use it (an
    # AWS managed key's policy cannot) and the topic policy lets them publish.
    kms, sns = platform_cloud.client("kms"), platform_cloud.client("sns")
    meta = kms.describe_key(KeyId="alias/dcisionai-alerts")["KeyMetadata"]
    key_policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
    topic = next(
        t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(":dcisionai-alerts")
    )
    topic_policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    rule = platform_cloud.client("events").describe_rule(
        Name="dcisionai-security-alerts", EventBusName="dcisionai-platform"
    )["Arn"]
    for service, source in (("cloudwatch.amazonaws.com", None), ("events.amazonaws.com", rule)):
        context: dict[str, Any] = {
            "aws:SourceAccount": ACCOUNT,
            "aws:PrincipalIsAWSService": "true",
            "aws:SecureTransport": "true",
        }
        if source:
            context["aws:SourceArn"] = source
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            asked = Simulation(service, action, meta["Arn"], ACCOUNT, context, [], key_policy)
            assert evaluator.decide(asked) is Decision.ALLOWED, (service, action)
        published = Simulation(service, "sns:Publish", topic, ACCOUNT, context, [], topic_policy)
        assert evaluator.decide(published) is Decision.ALLOWED, service
        # another account's alarm or rule is not let in: by the topic policy, which decides who
        # publishes (the key policy names the services without conditions, as SNS's guide does,
        # so that a condition the service does not send never drops an alert)
        foreign = {**context, "aws:SourceAccount": "210987654321"}
        if source:
            foreign["aws:SourceArn"] = source.replace(ACCOUNT, "210987654321")
        assert (
            evaluator.decide(Simulation(service, "sns:Publish", topic, ACCOUNT, foreign, [], topic_policy))
            is not Decision.ALLOWED
        ), service
