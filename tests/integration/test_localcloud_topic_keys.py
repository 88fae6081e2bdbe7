"""Issue 16, item 4: CloudWatch alarms and EventBridge cannot publish to a topic under the AWS
managed key ``alias/aws/sns`` (its policy cannot allow them), so AWS drops every alarm and alert.
The local cloud refuses such a topic where AWS would drop its messages."""

from __future__ import annotations

import json
import uuid

import pytest

from localcloud.topickeys import CLOUDWATCH_PRINCIPAL, EVENTBRIDGE_PRINCIPAL, publish_refusal
from tests.support.cloud import RunningCloud

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"


def _key(kms: object, services: list[str]) -> str:
    statements = [
        {
            "Sid": "Administration",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    statements += [
        {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Resource": "*",
        }
        for service in services
    ]
    policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
    return str(kms.create_key(Policy=policy)["KeyMetadata"]["KeyId"])  # type: ignore[attr-defined]


def test_the_stacks_alert_topic_takes_alarms_and_security_alerts(platform_cloud: RunningCloud) -> None:
    """The stack started at all: the local cloud refuses an alarm whose topic would drop it."""
    kms, sns = platform_cloud.client("kms"), platform_cloud.client("sns")
    topic = platform_cloud.outputs["AlertTopicArn"]
    key = sns.get_topic_attributes(TopicArn=topic)["Attributes"]["KmsMasterKeyId"]
    assert not key.startswith("alias/aws/")
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyManager"] == "CUSTOMER"
    assert publish_refusal(kms, sns, topic, CLOUDWATCH_PRINCIPAL) is None
    assert publish_refusal(kms, sns, topic, EVENTBRIDGE_PRINCIPAL) is None


def test_a_topic_under_the_aws_managed_key_or_a_key_without_the_service_is_refused(
    fixture_cloud: RunningCloud,
) -> None:
    kms, sns = fixture_cloud.client("kms"), fixture_cloud.client("sns")

    def topic(key: str | None) -> str:
        attributes = {"KmsMasterKeyId": key} if key else {}
        return str(sns.create_topic(Name=f"t-{uuid.uuid4().hex[:10]}", Attributes=attributes)["TopicArn"])

    managed = topic("alias/aws/sns")
    for service in (CLOUDWATCH_PRINCIPAL, EVENTBRIDGE_PRINCIPAL):
        assert "AWS managed key alias/aws/sns" in (publish_refusal(kms, sns, managed, service) or "")
    alarms_only = topic(_key(kms, [CLOUDWATCH_PRINCIPAL]))
    assert publish_refusal(kms, sns, alarms_only, CLOUDWATCH_PRINCIPAL) is None
    refused = publish_refusal(kms, sns, alarms_only, EVENTBRIDGE_PRINCIPAL) or ""
    assert "does not allow events.amazonaws.com kms:GenerateDataKey, kms:Decrypt" in refused
    assert publish_refusal(kms, sns, topic(None), EVENTBRIDGE_PRINCIPAL) is None
