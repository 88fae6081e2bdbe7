"""The running local cloud refuses policy documents AWS refuses, with AWS's errors (moto alone
stores them): a wildcard inside a key policy's principal ARN, a malformed bucket policy."""

from __future__ import annotations

import json
import uuid
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
    kms.create_key(Policy=key_policy(f"arn:aws:iam::{ACCOUNT}:role/dcisionai-auth-api"))


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
