"""The local cloud's IAM evaluator (@cloud-copilot/iam-simulate in node) against AWS's documented
policy evaluation rules: explicit deny, NotAction, NotResource, wildcards, the condition operators
and set qualifiers, resource policies in one account, and KMS's key policy rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.iam.enforce import one_valued, unsupported_condition_keys
from localcloud.iam.evaluator import Decision, PolicyEvaluator, Principal, Simulation

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
ROLE = Principal(ACCOUNT, "app-role", "app-function")
OTHER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/other-role"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALLOWED, EXPLICIT, IMPLICIT = Decision.ALLOWED, Decision.EXPLICITLY_DENIED, Decision.IMPLICITLY_DENIED


@pytest.fixture(scope="module")
def evaluator() -> Iterator[PolicyEvaluator]:
    found = PolicyEvaluator()
    yield found
    found.close()


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def decide(
    evaluator: PolicyEvaluator,
    action: str,
    resource: str,
    identity: dict[str, Any] | None,
    resource_policy: dict[str, Any] | None = None,
    principal: Principal = ROLE,
    **context: Any,
) -> Decision:
    values = {**principal.context(), "aws:SecureTransport": "true", **context}
    return evaluator.decide(
        Simulation(
            principal.session_arn,
            action,
            resource,
            ACCOUNT,
            values,
            [("identity", identity)] if identity else [],
            resource_policy,
        )
    )


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


# ---------------------------------------------------------------------- the evaluation logic
def test_an_explicit_deny_overrides_every_allow(evaluator: PolicyEvaluator) -> None:
    both = policy(allow("s3:*"), deny("s3:DeleteObject", "arn:aws:s3:::records/*"))
    assert decide(evaluator, "s3:GetObject", "arn:aws:s3:::records/a", both) is ALLOWED
    assert decide(evaluator, "s3:DeleteObject", "arn:aws:s3:::records/a", both) is EXPLICIT
    # nothing allows: the implicit deny
    assert decide(evaluator, "s3:GetObject", "arn:aws:s3:::records/a", policy(allow("sqs:*"))) is IMPLICIT


def test_not_action_allows_everything_but_the_actions_it_names(evaluator: PolicyEvaluator) -> None:
    # AWS's example: NotAction iam:* with Allow grants every other service, no IAM action
    everything_but_iam = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert decide(evaluator, "s3:GetObject", "arn:aws:s3:::b/k", everything_but_iam) is ALLOWED
    assert (
        decide(evaluator, "iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/x", everything_but_iam) is IMPLICIT
    )


def test_not_resource_with_deny_denies_every_other_resource(evaluator: PolicyEvaluator) -> None:
    only_home = policy(
        allow("s3:*"), {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::home/*"]}
    )
    assert decide(evaluator, "s3:GetObject", "arn:aws:s3:::home/a.txt", only_home) is ALLOWED
    assert decide(evaluator, "s3:GetObject", "arn:aws:s3:::payroll/a.txt", only_home) is EXPLICIT


def test_wildcards_in_actions_and_resources(evaluator: PolicyEvaluator) -> None:
    reads = policy(allow("s3:Get*", "arn:aws:s3:::tenant-*-data/*"))
    assert decide(evaluator, "s3:GetObject", "arn:aws:s3:::tenant-acme-data/f", reads) is ALLOWED
    assert decide(evaluator, "s3:GetObjectVersion", "arn:aws:s3:::tenant-acme-data/f", reads) is ALLOWED
    assert decide(evaluator, "s3:PutObject", "arn:aws:s3:::tenant-acme-data/f", reads) is IMPLICIT
    assert decide(evaluator, "s3:GetObject", "arn:aws:s3:::audit-logs/f", reads) is IMPLICIT


# ---------------------------------------------------------------------- condition operators
def test_string_equals_and_string_like(evaluator: PolicyEvaluator) -> None:
    tagged = policy(
        allow(
            "secretsmanager:GetSecretValue", Condition={"StringEquals": {"aws:ResourceTag/TenantId": "acme"}}
        )
    )
    secret = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:s-abcdef"
    assert (
        decide(
            evaluator, "secretsmanager:GetSecretValue", secret, tagged, **{"aws:ResourceTag/TenantId": "acme"}
        )
        is ALLOWED
    )
    assert (
        decide(
            evaluator, "secretsmanager:GetSecretValue", secret, tagged, **{"aws:ResourceTag/TenantId": "ACME"}
        )
        is IMPLICIT
    )
    like = policy(
        allow(
            "secretsmanager:GetSecretValue", Condition={"StringLike": {"aws:ResourceTag/TenantId": "ac?e*"}}
        )
    )
    assert (
        decide(
            evaluator,
            "secretsmanager:GetSecretValue",
            secret,
            like,
            **{"aws:ResourceTag/TenantId": "acme-eu"},
        )
        is ALLOWED
    )
    assert (
        decide(
            evaluator, "secretsmanager:GetSecretValue", secret, like, **{"aws:ResourceTag/TenantId": "globex"}
        )
        is IMPLICIT
    )


def test_principal_tags_are_condition_keys_for_attribute_based_access(evaluator: PolicyEvaluator) -> None:
    # ABAC with session tags: the principal's tag must equal the resource's
    same_tenant = policy(
        allow(
            "secretsmanager:GetSecretValue",
            Condition={"StringEquals": {"aws:ResourceTag/TenantId": "${aws:PrincipalTag/TenantId}"}},
        )
    )
    acme = Principal(ACCOUNT, "tenant-role", "session", tags={"TenantId": "acme"})
    secret = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:s-abcdef"
    assert (
        decide(
            evaluator,
            "secretsmanager:GetSecretValue",
            secret,
            same_tenant,
            principal=acme,
            **{"aws:ResourceTag/TenantId": "acme"},
        )
        is ALLOWED
    )
    assert (
        decide(
            evaluator,
            "secretsmanager:GetSecretValue",
            secret,
            same_tenant,
            principal=acme,
            **{"aws:ResourceTag/TenantId": "globex"},
        )
        is IMPLICIT
    )


def test_for_any_value_and_for_all_values(evaluator: PolicyEvaluator) -> None:
    by_alias = policy(
        allow(
            "kms:Decrypt",
            Condition={"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/app-tenant-*-data"}},
        )
    )
    delegates = policy({"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"})
    aliases = {"kms:ResourceAliases": ["alias/x", "alias/app-tenant-acme-data"]}
    assert decide(evaluator, "kms:Decrypt", KEY, by_alias, delegates, **aliases) is ALLOWED
    assert (
        decide(evaluator, "kms:Decrypt", KEY, by_alias, delegates, **{"kms:ResourceAliases": ["alias/x"]})
        is IMPLICIT
    )
    # a new key's aliases that have not applied yet: the key carries none
    assert decide(evaluator, "kms:Decrypt", KEY, by_alias, delegates) is IMPLICIT
    leading = policy(
        allow(
            "dynamodb:GetItem",
            Condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["sessions#*"]}},
        )
    )
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/counters"
    assert (
        decide(evaluator, "dynamodb:GetItem", table, leading, **{"dynamodb:LeadingKeys": ["sessions#acme"]})
        is ALLOWED
    )
    assert (
        decide(evaluator, "dynamodb:GetItem", table, leading, **{"dynamodb:LeadingKeys": ["faults"]})
        is IMPLICIT
    )
    # AWS's documented pitfall: ForAllValues holds for a key the request does not carry (a Scan)
    assert decide(evaluator, "dynamodb:GetItem", table, leading) is ALLOWED
    any_alias = policy(
        allow(
            "dynamodb:GetItem", Condition={"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": ["sessions#*"]}}
        )
    )
    assert decide(evaluator, "dynamodb:GetItem", table, any_alias) is IMPLICIT


def test_arn_like_bool_null_and_if_exists(evaluator: PolicyEvaluator) -> None:
    bucket = "arn:aws:s3:::records/k"
    only_app_roles = policy(
        allow(
            "s3:GetObject", Condition={"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/app-*"}}
        )
    )
    assert decide(evaluator, "s3:GetObject", bucket, only_app_roles) is ALLOWED
    other = Principal(ACCOUNT, "other-role", "s")
    assert decide(evaluator, "s3:GetObject", bucket, only_app_roles, principal=other) is IMPLICIT
    tls_only = policy(
        allow("s3:GetObject"), deny("s3:*", Condition={"Bool": {"aws:SecureTransport": "false"}})
    )
    assert decide(evaluator, "s3:GetObject", bucket, tls_only) is ALLOWED
    assert decide(evaluator, "s3:GetObject", bucket, tls_only, **{"aws:SecureTransport": "false"}) is EXPLICIT
    untagged_denied = policy(
        allow("secretsmanager:GetSecretValue"),
        deny("secretsmanager:GetSecretValue", Condition={"Null": {"aws:ResourceTag/TenantId": "true"}}),
    )
    secret = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:s-abcdef"
    assert decide(evaluator, "secretsmanager:GetSecretValue", secret, untagged_denied) is EXPLICIT
    assert (
        decide(
            evaluator,
            "secretsmanager:GetSecretValue",
            secret,
            untagged_denied,
            **{"aws:ResourceTag/TenantId": "acme"},
        )
        is ALLOWED
    )
    if_exists = policy(
        allow(
            "secretsmanager:GetSecretValue",
            Condition={"StringEqualsIfExists": {"aws:ResourceTag/TenantId": "acme"}},
        )
    )
    assert decide(evaluator, "secretsmanager:GetSecretValue", secret, if_exists) is ALLOWED
    assert (
        decide(
            evaluator,
            "secretsmanager:GetSecretValue",
            secret,
            if_exists,
            **{"aws:ResourceTag/TenantId": "globex"},
        )
        is IMPLICIT
    )


# ---------------------------------------------------------------------- resource policies
def test_a_same_account_resource_policy_allows_without_iam_and_its_deny_wins(
    evaluator: PolicyEvaluator,
) -> None:
    obj = "arn:aws:s3:::records/k"
    bucket_policy = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ROLE.role_arn},
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::records/*",
        }
    )
    assert decide(evaluator, "s3:GetObject", obj, None, bucket_policy) is ALLOWED
    deny_uploads = policy(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::records/*",
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": KEY}},
        }
    )
    writes = policy(allow("s3:PutObject"))
    assert (
        decide(
            evaluator,
            "s3:PutObject",
            obj,
            writes,
            deny_uploads,
            **{"s3:x-amz-server-side-encryption-aws-kms-key-id": KEY},
        )
        is ALLOWED
    )
    assert (
        decide(
            evaluator,
            "s3:PutObject",
            obj,
            writes,
            deny_uploads,
            **{"s3:x-amz-server-side-encryption-aws-kms-key-id": "other"},
        )
        is EXPLICIT
    )


def test_kms_needs_the_key_policy_directly_or_through_the_account(evaluator: PolicyEvaluator) -> None:
    iam_allows = policy(allow("kms:Decrypt", KEY))
    delegates = policy({"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"})
    names_the_role = policy(
        {"Effect": "Allow", "Principal": {"AWS": ROLE.role_arn}, "Action": "kms:Decrypt", "Resource": "*"}
    )
    names_another = policy(
        {"Effect": "Allow", "Principal": {"AWS": OTHER_ROLE_ARN}, "Action": "kms:*", "Resource": "*"}
    )
    # delegated to the account: IAM must allow too
    assert decide(evaluator, "kms:Decrypt", KEY, iam_allows, delegates) is ALLOWED
    assert decide(evaluator, "kms:Decrypt", KEY, None, delegates) is IMPLICIT
    # the key policy names the role: no IAM needed
    assert decide(evaluator, "kms:Decrypt", KEY, None, names_the_role) is ALLOWED
    # IAM alone cannot grant what the key policy does not
    assert decide(evaluator, "kms:Decrypt", KEY, iam_allows, names_another) is IMPLICIT
    # an explicit Deny in the key policy wins over both
    with_deny = policy(
        *delegates["Statement"],
        {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"},
    )
    assert decide(evaluator, "kms:Decrypt", KEY, iam_allows, with_deny) is EXPLICIT


def test_a_kms_via_service_condition_holds_only_through_that_service(evaluator: PolicyEvaluator) -> None:
    through_secrets_manager = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ROLE.role_arn},
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}},
        }
    )
    assert (
        decide(
            evaluator,
            "kms:Decrypt",
            KEY,
            None,
            through_secrets_manager,
            **{"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"},
        )
        is ALLOWED
    )
    assert decide(evaluator, "kms:Decrypt", KEY, None, through_secrets_manager) is IMPLICIT


# ---------------------------------------------------------------------- the local cloud's own rules
def test_a_condition_key_the_local_cloud_does_not_supply_is_reported() -> None:
    documents = [
        policy(allow("s3:GetObject", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
        policy(allow("sqs:SendMessage", Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}})),
    ]
    assert unsupported_condition_keys(documents, "s3:GetObject") == ["aws:SourceIp"]
    assert unsupported_condition_keys(documents, "kms:Decrypt") == []  # no statement applies
    supplied = policy(
        allow("dynamodb:Query", Condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["a#*"]}})
    )
    assert unsupported_condition_keys([supplied], "dynamodb:Query") == []


def test_eventbridge_single_valued_conditions_hold_for_one_entry(evaluator: PolicyEvaluator) -> None:
    bus = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/platform"
    documented = policy(
        allow(
            "events:PutEvents",
            bus,
            Condition={"StringEquals": {"events:source": "app.source", "events:detail-type": ["A", "B"]}},
        )
    )
    rewritten = one_valued(documented)
    assert rewritten is not None
    entry = {"events:source": "app.source"}
    assert (
        decide(evaluator, "events:PutEvents", bus, dict(rewritten), **entry, **{"events:detail-type": "B"})
        is ALLOWED
    )
    assert (
        decide(evaluator, "events:PutEvents", bus, dict(rewritten), **entry, **{"events:detail-type": "C"})
        is IMPLICIT
    )
    not_ours = policy(
        allow("events:PutEvents", bus),
        deny("events:PutEvents", bus, Condition={"StringNotEquals": {"events:source": "app.source"}}),
    )
    assert (
        decide(
            evaluator,
            "events:PutEvents",
            bus,
            dict(one_valued(not_ours) or {}),
            **{"events:source": "forged", "events:detail-type": "A"},
        )
        is EXPLICIT
    )
    assert (
        decide(
            evaluator,
            "events:PutEvents",
            bus,
            dict(one_valued(not_ours) or {}),
            **entry,
            **{"events:detail-type": "A"},
        )
        is ALLOWED
    )


def test_decisions_are_cached_by_the_whole_simulation(evaluator: PolicyEvaluator) -> None:
    reads = policy(allow("s3:GetObject", "arn:aws:s3:::cache-test/*"))
    before = evaluator.evaluations
    for _ in range(5):
        assert decide(evaluator, "s3:GetObject", "arn:aws:s3:::cache-test/k", reads) is ALLOWED
    assert evaluator.evaluations == before + 1
    # another policy is another question
    assert (
        decide(evaluator, "s3:GetObject", "arn:aws:s3:::cache-test/k", policy(allow("s3:PutObject")))
        is IMPLICIT
    )
    assert evaluator.evaluations == before + 2
