"""The local cloud's policy checker (localcloud/policies.py): AWS's documented examples pass, the
forms AWS refuses are refused, parliament's lint findings stay warnings; the tenant key policy and
every policy document of template.yaml pass it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from localcloud.intrinsics import Resolver
from localcloud.policies import PolicyCheck, PolicyKind, Severity, check_policy, template_policies
from localcloud.provision import LOCAL_STACK_UUID, Provisioner, ProvisioningError
from localcloud.template import transform_template
from tenant_security.config import Settings
from tenant_security.onboarding.key_policy import tenant_key_policy
from tests.support.settings import local_settings

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/dcisionai-auth-api"
PATTERN = f"arn:aws:iam::{ACCOUNT}:role/dcisionai-tenant-data-*"


def policy(*statements: dict[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    return {**({"Version": version} if version else {}), "Statement": list(statements)}


def refusals(check: PolicyCheck) -> str:
    return "; ".join(str(f) for f in check.refusals)


# ---------------------------------------------------------------------- AWS's examples pass
DOCUMENTED_EXAMPLES = [
    # IAM User Guide: read and write objects in one bucket.
    (
        PolicyKind.IDENTITY,
        policy(
            {
                "Sid": "ListObjectsInBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": ["arn:aws:s3:::bucket-name"],
            },
            {
                "Sid": "AllObjectActions",
                "Effect": "Allow",
                "Action": "s3:*Object",
                "Resource": ["arn:aws:s3:::bucket-name/*"],
            },
        ),
    ),
    # IAM User Guide, policy variables: each user's own prefix.
    (
        PolicyKind.IDENTITY,
        policy(
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::amzn-s3-demo-bucket",
                "Condition": {"StringLike": {"s3:prefix": ["${aws:username}/*"]}},
            }
        ),
    ),
    # Set operators and IfExists.
    (
        PolicyKind.IDENTITY,
        policy(
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "ForAnyValue:StringNotLikeIfExists": {"aws:TagKeys": ["team-*"]},
                    "BoolIfExists": {"aws:MultiFactorAuthPresent": "false"},
                },
            }
        ),
    ),
    # A Lambda execution role's trust policy, and another account's, with MFA.
    (
        PolicyKind.TRUST,
        policy(
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ),
    ),
    (
        PolicyKind.TRUST,
        policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
            }
        ),
    ),
    # KMS's default key policy (its Sid has spaces: only IAM insists on letters and digits).
    (
        PolicyKind.KEY,
        {
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        },
    ),
    # KMS Developer Guide: use of the key through S3 by everyone in one account.
    (
        PolicyKind.KEY,
        policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": "s3.us-west-2.amazonaws.com",
                        "kms:CallerAccount": "111122223333",
                    }
                },
            }
        ),
    ),
    # S3 User Guide: TLS only, and CloudFront's origin access control.
    (
        PolicyKind.BUCKET,
        policy(
            {
                "Sid": "RestrictToTLSRequestsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::amzn-s3-demo-bucket", "arn:aws:s3:::amzn-s3-demo-bucket/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "AllowCloudFrontServicePrincipalReadOnly",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
                "Condition": {
                    "StringEquals": {
                        "AWS:SourceArn": "arn:aws:cloudfront::111122223333:distribution/EDFDVBD6EXAMPLE"
                    }
                },
            },
        ),
    ),
    # SQS: a topic may send to the queue.
    (
        PolicyKind.QUEUE,
        policy(
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": "arn:aws:sqs:us-east-2:123456789012:MyQueue",
                "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:MyTopic"}},
            }
        ),
    ),
    # SNS: S3 event notifications publish (the SNS guide's example has no Version).
    (
        PolicyKind.TOPIC,
        policy(
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "SNS:Publish",
                "Resource": "arn:aws:sns:us-east-2:111122223333:MyTopic",
                "Condition": {
                    "ArnLike": {"aws:SourceArn": "arn:aws:s3:::amzn-s3-demo-bucket"},
                    "StringEquals": {"aws:SourceAccount": "111122223333"},
                },
            },
            version=None,
        ),
    ),
    # EventBridge: another account puts events on the default bus.
    (
        PolicyKind.EVENT_BUS,
        policy(
            {
                "Sid": "AllowAccountToPutEvents",
                "Effect": "Allow",
                "Principal": {"AWS": "111122223333"},
                "Action": "events:PutEvents",
                "Resource": "arn:aws:events:us-east-1:123456789012:event-bus/default",
            }
        ),
    ),
    # Secrets Manager: one role reads the secret.
    (
        PolicyKind.SECRET,
        policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:role/service-role/MyRole"},
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
            }
        ),
    ),
]


@pytest.mark.parametrize(("kind", "document"), DOCUMENTED_EXAMPLES)
def test_aws_documented_examples_are_accepted(kind: PolicyKind, document: dict[str, Any]) -> None:
    check = check_policy(json.dumps(document), kind)
    assert check.accepted, refusals(check)


# ---------------------------------------------------------------------- what AWS refuses
def use_key(principal: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": "kms:Decrypt", "Resource": "*", **extra}


def read_bucket(**overrides: Any) -> dict[str, Any]:
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": ROLE},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
    }
    statement.update(overrides)
    return {k: v for k, v in statement.items() if v is not None}


REFUSED = [
    ("wildcard inside a principal ARN", PolicyKind.KEY, policy(use_key({"AWS": PATTERN})), "wildcard"),
    ("wildcard account", PolicyKind.KEY, policy(use_key({"AWS": "arn:aws:iam::*:root"})), "wildcard"),
    (
        "? inside a principal ARN",
        PolicyKind.BUCKET,
        policy(read_bucket(Principal={"AWS": ROLE + "?"})),
        "wildcard",
    ),
    (
        "malformed principal ARN",
        PolicyKind.KEY,
        policy(use_key({"AWS": f"arn:aws:iam:{ACCOUNT}:role/x"})),
        "invalid principal",
    ),
    ("principal not an object", PolicyKind.KEY, policy(use_key(ROLE)), "a principal is"),
    ("unknown principal type", PolicyKind.KEY, policy(use_key({"Aws": ROLE})), "unknown principal type"),
    (
        "wildcard service principal",
        PolicyKind.QUEUE,
        policy(
            {
                "Effect": "Allow",
                "Principal": {"Service": "*.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": "arn:aws:sqs:us-east-1:123456789012:q",
            }
        ),
        "service principal",
    ),
    ("malformed resource ARN", PolicyKind.BUCKET, policy(read_bucket(Resource="arn:aws:s3")), "not arn:"),
    (
        "resource not an ARN",
        PolicyKind.IDENTITY,
        policy(read_bucket(Principal=None, Resource="my-bucket")),
        "not arn:",
    ),
    (
        "unknown condition operator",
        PolicyKind.BUCKET,
        policy(read_bucket(Condition={"StringEqualz": {"aws:SourceAccount": ACCOUNT}})),
        "unknown condition operator",
    ),
    (
        "Null takes no IfExists",
        PolicyKind.BUCKET,
        policy(read_bucket(Condition={"NullIfExists": {"aws:SourceAccount": "true"}})),
        "unknown condition operator",
    ),
    (
        "condition key without a prefix",
        PolicyKind.BUCKET,
        policy(read_bucket(Condition={"Bool": {"SecureTransport": "false"}})),
        "condition key",
    ),
    (
        "unknown service prefix",
        PolicyKind.BUCKET,
        policy(read_bucket(Action="s4:GetObject")),
        "UNKNOWN_PREFIX",
    ),
    ("action without a prefix", PolicyKind.BUCKET, policy(read_bucket(Action="GetObject")), "an action is"),
    ("empty statement", PolicyKind.BUCKET, policy({}), "empty statement"),
    ("no statement", PolicyKind.BUCKET, policy(), "needs a Statement"),
    ("missing Action", PolicyKind.BUCKET, policy(read_bucket(Action=None)), "needs Action or NotAction"),
    (
        "missing Action (IAM)",
        PolicyKind.IDENTITY,
        policy(read_bucket(Principal=None, Action=None)),
        "needs Action",
    ),
    ("Action and NotAction", PolicyKind.BUCKET, policy(read_bucket(NotAction="s3:PutObject")), "both Action"),
    ("missing Resource", PolicyKind.BUCKET, policy(read_bucket(Resource=None)), "needs Resource"),
    ("missing Principal", PolicyKind.BUCKET, policy(read_bucket(Principal=None)), "needs Principal"),
    ("Principal in an IAM policy", PolicyKind.IDENTITY, policy(read_bucket()), "prohibited field Principal"),
    (
        "Resource in a trust policy",
        PolicyKind.TRUST,
        policy(
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole", "Resource": "*"}
        ),
        "prohibited field Resource",
    ),
    ("Effect's case", PolicyKind.BUCKET, policy(read_bucket(Effect="allow")), "Effect must be"),
    (
        "unknown Version",
        PolicyKind.BUCKET,
        {"Version": "2012-10-18", "Statement": [read_bucket()]},
        "Version",
    ),
    ("unknown element", PolicyKind.BUCKET, policy(read_bucket(Principals="*")), "unknown element"),
    ("duplicate Sid", PolicyKind.BUCKET, policy(read_bucket(Sid="A"), read_bucket(Sid="A")), "duplicate Sid"),
    ("IAM Sid with a space", PolicyKind.IDENTITY, policy(read_bucket(Principal=None, Sid="Read it")), "Sid"),
    ("not JSON", PolicyKind.KEY, "{'Version': '2012-10-17'}", "not JSON"),
]


@pytest.mark.parametrize(
    ("kind", "document", "reason"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_what_aws_refuses_is_refused(kind: PolicyKind, document: Any, reason: str) -> None:
    check = check_policy(document if isinstance(document, str) else json.dumps(document), kind)
    assert not check.accepted
    assert reason in refusals(check)
    assert check.message().startswith(f"malformed {kind.value}: ")


# ---------------------------------------------------------------------- what AWS only warns about
WARNED = [
    # IAM accepts an action on resources it does not apply to (it never matches).
    (
        PolicyKind.IDENTITY,
        read_bucket(Principal=None, Resource="arn:aws:s3:::amzn-s3-demo-bucket"),
        "RESOURCE_MISMATCH",
    ),
    # ... and an action its service does not define (parliament's reference may predate it).
    (PolicyKind.IDENTITY, read_bucket(Principal=None, Action="s3:GetObjectt"), "UNKNOWN_ACTION"),
    # KMS accepts a statement without Resource or Action; it has no effect.
    (PolicyKind.KEY, {"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:Decrypt"}, "no Resource"),
    (PolicyKind.KEY, {"Effect": "Allow", "Principal": {"AWS": ROLE}, "Resource": "*"}, "no Action"),
]


@pytest.mark.parametrize(("kind", "statement", "warning"), WARNED)
def test_lint_findings_are_warnings_not_refusals(
    kind: PolicyKind, statement: dict[str, Any], warning: str
) -> None:
    check = check_policy(policy(statement), kind)
    assert check.accepted, refusals(check)
    assert any(warning in str(f) for f in check.warnings), check.warnings
    assert all(f.severity is Severity.WARNING for f in check.findings)


def test_policy_variables_without_a_version_are_a_warning() -> None:
    statement = read_bucket(Principal=None, Resource="arn:aws:s3:::amzn-s3-demo-bucket/${aws:username}/*")
    check = check_policy(policy(statement, version=None), PolicyKind.IDENTITY)
    assert check.accepted
    assert "plain text" in str(check.warnings)


# ---------------------------------------------------------------------- the tenant key policy
def key_policy(settings: Settings, purpose: str = "data") -> dict[str, Any]:
    return tenant_key_policy(settings, purpose)


def test_the_tenant_key_policy_passes_and_its_patterns_are_a_condition() -> None:
    settings = local_settings(account_id=ACCOUNT, tenant_key_users=ROLE, tenant_key_user_patterns=PATTERN)
    document = key_policy(settings)
    check = check_policy(json.dumps(document), PolicyKind.KEY)
    assert check.accepted, refusals(check)
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["PlatformRolesUseTheKey"]["Principal"] == {"AWS": [ROLE]}
    patterned = by_sid["PlatformRolePatternsUseTheKey"]
    assert patterned["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert patterned["Condition"] == {"ArnLike": {"aws:PrincipalArn": [PATTERN]}}
    assert patterned["Action"] == by_sid["PlatformRolesUseTheKey"]["Action"]


def test_the_secrets_key_policy_names_its_administrators_and_the_break_glass_reader() -> None:
    admin = f"arn:aws:iam::{ACCOUNT}:role/dcisionai-onboarding"
    glass = f"arn:aws:iam::{ACCOUNT}:role/break-glass"
    for reader in ("", glass):
        settings = local_settings(
            account_id=ACCOUNT,
            tenant_key_users=ROLE,
            tenant_key_admins=admin,
            tenant_secrets_break_glass=reader,
        )
        document = key_policy(settings, "secrets")
        check = check_policy(json.dumps(document), PolicyKind.KEY)
        assert check.accepted, refusals(check)
        by_sid = {s["Sid"]: s for s in document["Statement"]}
        assert by_sid["KeyAdministrators"]["Principal"] == {"AWS": [admin]}
        via = {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
        assert by_sid["KeyAdministratorsStoreTenantSecrets"]["Condition"] == {"StringEquals": via}
        glass_statement = by_sid["BreakGlassReadsTenantSecrets"]
        assert glass_statement["Principal"] == {"AWS": reader or f"arn:aws:iam::{ACCOUNT}:root"}
        assert glass_statement["Action"] == ["kms:Decrypt", "kms:DescribeKey"]
        assert glass_statement["Condition"]["StringEquals"]["kms:ViaService"] == via["kms:ViaService"]
    # the data and api-keys keys hold no secrets: Secrets Manager gets nothing there
    data = {s["Sid"] for s in key_policy(settings, "data")["Statement"]}
    assert "KeyAdministrators" in data
    assert not data & {"KeyAdministratorsStoreTenantSecrets", "BreakGlassReadsTenantSecrets"}


def test_the_old_tenant_key_policy_is_refused_and_so_is_its_setting() -> None:
    document = key_policy(local_settings(account_id=ACCOUNT))
    # What onboarding sent before: the pattern among the principals (MalformedPolicyDocument in AWS).
    document["Statement"].append(
        {
            "Sid": "PlatformRolesUseTheKey",
            "Effect": "Allow",
            "Principal": {"AWS": [ROLE, PATTERN]},
            "Action": ["kms:Encrypt", "kms:Decrypt"],
            "Resource": "*",
        }
    )
    check = check_policy(json.dumps(document), PolicyKind.KEY)
    assert not check.accepted
    assert "wildcard inside a principal ARN" in check.message()
    with pytest.raises(ValidationError):
        local_settings(tenant_key_users=f"{ROLE},{PATTERN}")  # a pattern is no exact ARN


# ---------------------------------------------------------------------- template.yaml
def _arn(kind: str, name: str) -> str | None:
    """A plausible ARN for a resource of the transformed template (what Ref/GetAtt would give)."""
    formats = {
        "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{name}",
        "AWS::S3::Bucket": f"arn:aws:s3:::{name.lower()}",
        "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}",
        "AWS::Events::EventBus": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}",
        "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}",
        "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
        "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
        "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
        "AWS::SecretsManager::Secret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}",
    }
    return formats.get(kind)


# Types whose Ref is their ARN (the others': a name, an id or a URL).
_REF_IS_ARN = {"AWS::SNS::Topic", "AWS::SecretsManager::Secret", "AWS::StepFunctions::StateMachine"}


def resolved_template_resources() -> list[tuple[str, str, dict[str, Any]]]:
    """template.yaml after the SAM transform, each resource's properties resolved with plausible
    names and ARNs (what the provisioner checks, without creating anything)."""
    cfn, _ = transform_template(ROOT / "template.yaml", {}, REGION)
    resources = cfn["Resources"]

    def ref(logical_id: str) -> Any:
        kind = resources[logical_id]["Type"]
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{logical_id}"
        return _arn(kind, logical_id) if kind in _REF_IS_ARN else logical_id.lower()

    def get_att(logical_id: str, attribute: str) -> Any:
        arn = _arn(resources[logical_id]["Type"], logical_id)
        if attribute == "Arn" and arn:
            return arn
        return f"{arn}/stream/1" if attribute == "StreamArn" else f"{logical_id}-{attribute}"

    parameters = {name: spec.get("Default", "") for name, spec in cfn.get("Parameters", {}).items()}
    pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
    pseudo |= {"AWS::StackName": "stack", "AWS::URLSuffix": "amazonaws.com", "AWS::NotificationARNs": []}
    pseudo |= {"AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/stack/{LOCAL_STACK_UUID}"}
    resolver = Resolver(cfn, parameters, pseudo, ref, get_att)
    return [
        (logical_id, res["Type"], resolver.resolve(res.get("Properties", {})))
        for logical_id, res in resources.items()
        if "Condition" not in res or resolver.condition(res["Condition"])
    ]


def test_every_policy_document_of_the_template_passes() -> None:
    checked = 0
    for logical_id, kind, properties in resolved_template_resources():
        for where, policy_kind, document in template_policies(kind, properties):
            check = check_policy(document, policy_kind)
            assert check.accepted, f"{logical_id} {where}: {check.message()}"
            checked += 1
    # roles' trust and inline policies, key, bucket, queue, topic and bus policies
    assert checked > 30


def test_the_onboarding_functions_key_users_make_a_key_policy_kms_accepts() -> None:
    (environment,) = [
        p["Environment"]["Variables"]
        for logical_id, _kind, p in resolved_template_resources()
        if logical_id == "OnboardingFunction"
    ]
    settings = local_settings(
        account_id=ACCOUNT,
        tenant_key_users=environment["TENANT_KEY_USERS"],
        tenant_key_user_patterns=environment["TENANT_KEY_USER_PATTERNS"],
        tenant_key_admins=environment["TENANT_KEY_ADMINS"],
    )
    assert settings.tenant_key_user_arn_patterns == [PATTERN]
    # onboarding's role creates the keys, the policy rollout's changes them (rotation, replicas)
    assert [arn.rsplit("/", 1)[-1] for arn in settings.tenant_key_admin_arns] == [
        "OnboardingFunctionRole",
        "PolicyRolloutFunctionRole",
    ]
    assert len(settings.tenant_key_user_arns) == 4
    check = check_policy(json.dumps(key_policy(settings)), PolicyKind.KEY)
    assert check.accepted, check.message()


def test_provisioning_stops_at_a_malformed_template_policy_naming_the_resource() -> None:
    template = {
        "Resources": {
            "TenantKey": {
                "Type": "AWS::KMS::Key",
                "Properties": {"KeyPolicy": policy(use_key({"AWS": PATTERN}))},
            }
        }
    }

    def no_aws(service: str) -> Any:
        pytest.fail(f"called {service}: the policy should have been refused first")

    provisioner = Provisioner(template, {}, {}, no_aws, None, "stack", REGION)  # type: ignore[arg-type]
    with pytest.raises(ProvisioningError, match=r"TenantKey \(AWS::KMS::Key\) KeyPolicy: malformed KMS key"):
        provisioner.provision()
