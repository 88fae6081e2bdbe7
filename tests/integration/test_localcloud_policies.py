"""The running local cloud refuses policy documents AWS refuses, with AWS's errors (moto alone
stores them): a wildcard inside a key policy's principal ARN, a malformed bucket policy, a key
policy that would lock its creator out."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.cloud import RunningCloud

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"


def key_policy(principal: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Administration",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "Use",
                    "Effect": "Allow",
                    "Principal": {"AWS": principal},
                    "Action": ["kms:Encrypt", "kms:Decrypt"],
                    "Resource": "*",
                },
            ],
        }
    )


def existing_role(cloud: RunningCloud, name: str) -> str:
    """The ARN of role ``name``, created if need be: KMS refuses a key policy naming a role
    that does not exist."""
    iam = cloud.client("iam")
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except ClientError:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def error_of(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_create_key_with_a_wildcard_principal_is_malformed(fixture_cloud: RunningCloud) -> None:
    kms = fixture_cloud.client("kms")
    before = len(kms.list_keys()["Keys"])
    code, status, message = error_of(
        lambda: kms.create_key(Policy=key_policy(f"arn:aws:iam::{ACCOUNT}:role/dcisionai-tenant-data-*"))
    )
    assert (code, status) == ("MalformedPolicyDocumentException", 400)
    assert "wildcard inside a principal ARN" in message
    assert len(kms.list_keys()["Keys"]) == before  # nothing was created
    # the same policy with an exact role ARN is a key
    kms.create_key(Policy=key_policy(existing_role(fixture_cloud, "dcisionai-auth-api")))


def test_a_key_policy_naming_a_role_that_does_not_exist_is_refused(fixture_cloud: RunningCloud) -> None:
    """KMS validates a key policy's principals: a role not created yet (or mistyped, such as a
    wrong SecretsBreakGlassRoleArn) makes CreateKey and PutKeyPolicy fail."""
    kms = fixture_cloud.client("kms")
    name = f"iam-later-{uuid.uuid4().hex[:8]}"
    later = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    before = len(kms.list_keys(Limit=1000)["Keys"])
    code, status, message = error_of(lambda: kms.create_key(Policy=key_policy(later)))
    assert (code, status) == ("MalformedPolicyDocumentException", 400)
    assert message == "Policy contains a statement with one or more invalid principals."
    assert len(kms.list_keys(Limit=1000)["Keys"]) == before  # nothing was created
    key_id = kms.create_key(Policy=key_policy(f"arn:aws:iam::{ACCOUNT}:root"))["KeyMetadata"]["KeyId"]
    code, _, _ = error_of(
        lambda: kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=key_policy(later))
    )
    assert code == "MalformedPolicyDocumentException"
    assert existing_role(fixture_cloud, name) == later  # once the role exists, the policy is taken
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=key_policy(later))
    assert kms.create_key(Policy=key_policy(later))["KeyMetadata"]["KeyId"]


def test_put_bucket_policy_with_a_malformed_policy_is_refused(fixture_cloud: RunningCloud) -> None:
    s3 = fixture_cloud.client("s3")
    bucket = f"policies-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3",  # not an ARN
    }
    code, status, _ = error_of(
        lambda: s3.put_bucket_policy(
            Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        )
    )
    assert (code, status) == ("MalformedPolicy", 400)
    code, _, _ = error_of(lambda: s3.get_bucket_policy(Bucket=bucket))
    assert code == "NoSuchBucketPolicy"  # moto never saw it
    statement["Resource"] = f"arn:aws:s3:::{bucket}/*"
    s3.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )


def test_queue_and_topic_policies_are_checked_too(fixture_cloud: RunningCloud) -> None:
    empty_statement = json.dumps({"Version": "2012-10-17", "Statement": [{}]})
    code, _, _ = error_of(
        lambda: fixture_cloud.client("sqs").create_queue(
            QueueName=f"q-{uuid.uuid4().hex[:8]}", Attributes={"Policy": empty_statement}
        )
    )
    assert code == "InvalidAttributeValue"
    code, _, _ = error_of(
        lambda: fixture_cloud.client("sns").create_topic(
            Name=f"t-{uuid.uuid4().hex[:8]}", Attributes={"Policy": empty_statement}
        )
    )
    assert code == "InvalidParameter"


LOCKOUT = "The new key policy will not allow you to update the key policy in the future."


def test_a_key_policy_that_locks_out_its_creator_is_refused(fixture_cloud: RunningCloud) -> None:
    # KMS's lockout check: the caller (here the tests' administrator of the account) must be able
    # to PutKeyPolicy through the new policy, directly or by the account's delegation to its IAM.
    kms = fixture_cloud.client("kms")
    only_use = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "UseOnly",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                    "Resource": "*",
                }
            ],
        }
    )
    before = len(kms.list_keys()["Keys"])
    code, status, message = error_of(lambda: kms.create_key(Policy=only_use))
    assert (code, status, message) == ("MalformedPolicyDocumentException", 400, LOCKOUT)
    assert len(kms.list_keys()["Keys"]) == before
    key_id = kms.create_key(Policy=key_policy(existing_role(fixture_cloud, "dcisionai-auth-api")))[
        "KeyMetadata"
    ]["KeyId"]
    code, _, message = error_of(
        lambda: kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=only_use)
    )
    assert (code, message) == ("MalformedPolicyDocumentException", LOCKOUT)
    # an explicit Deny of PutKeyPolicy locks out as surely
    denies = json.loads(key_policy(existing_role(fixture_cloud, "dcisionai-auth-api")))
    denies["Statement"].append(
        {
            "Sid": "NoChanges",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:PutKeyPolicy",
            "Resource": "*",
        }
    )
    code, _, _ = error_of(
        lambda: kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(denies))
    )
    assert code == "MalformedPolicyDocumentException"
    # AWS's escape hatch: the caller asks to skip the check
    kms.put_key_policy(
        KeyId=key_id, PolicyName="default", Policy=only_use, BypassPolicyLockoutSafetyCheck=True
    )
    assert (
        json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])["Statement"][0]["Sid"]
        == "UseOnly"
    )


def test_a_compliance_retention_cannot_be_shortened_or_weakened(fixture_cloud: RunningCloud) -> None:
    s3 = fixture_cloud.client("s3")
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    until = datetime.now(UTC) + timedelta(days=30)
    version = s3.put_object(
        Bucket=bucket,
        Key="record",
        Body=b"audit",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]

    def retain(mode: str, when: datetime) -> Any:
        return s3.put_object_retention(
            Bucket=bucket, Key="record", VersionId=version, Retention={"Mode": mode, "RetainUntilDate": when}
        )

    for mode, when in (("COMPLIANCE", until - timedelta(days=1)), ("GOVERNANCE", until + timedelta(days=1))):
        code, status, _ = error_of(lambda m=mode, w=when: retain(m, w))  # type: ignore[misc]
        assert (code, status) == ("AccessDenied", 403)
    retain("COMPLIANCE", until + timedelta(days=1))  # lengthening is allowed
    held = s3.head_object(Bucket=bucket, Key="record", VersionId=version)  # (moto's GetObjectRetention fails)
    assert held["ObjectLockMode"] == "COMPLIANCE"
    assert held["ObjectLockRetainUntilDate"] > until
