"""Whether a service may publish to an encrypted SNS topic, as KMS decides it on AWS.

A topic with server-side encryption needs its publisher to be allowed ``kms:GenerateDataKey*``
and ``kms:Decrypt`` on the topic's key. A service principal (CloudWatch alarms, EventBridge rules)
can only be allowed by the key policy, and an AWS managed key's policy (``alias/aws/sns``) cannot
be changed: AWS accepts the alarm or the rule, then drops every message without an error anyone
sees (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services).
moto publishes anyway; the local cloud refuses, so that such a topic fails a test here.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

# What SNS asks KMS for on a publisher's behalf.
PUBLISH_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
AWS_MANAGED_ALIAS_PREFIX = "alias/aws/"
CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"
EVENTBRIDGE_PRINCIPAL = "events.amazonaws.com"


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _allows(statement: dict[str, Any], service: str, action: str) -> bool:
    principal = statement.get("Principal") or {}
    services = _listed(principal.get("Service")) if isinstance(principal, dict) else []
    actions = _listed(statement.get("Action"))
    return (
        statement.get("Effect") == "Allow"
        and service in services
        and any(fnmatch.fnmatchcase(action.lower(), granted.lower()) for granted in actions)
    )


def publish_refusal(kms: Any, sns: Any, topic_arn: str, service: str) -> str | None:
    """Why ``service`` (e.g. ``cloudwatch.amazonaws.com``) cannot publish to ``topic_arn``, or
    None when it can: an unencrypted topic, or a key whose policy allows the service both
    actions. (Conditions in the key's statements are not evaluated here.)"""
    key = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"].get("KmsMasterKeyId")
    if not key:
        return None
    if key.startswith(AWS_MANAGED_ALIAS_PREFIX):
        return (
            f"topic {topic_arn} is encrypted under the AWS managed key {key}, whose policy cannot "
            f"allow {service}: AWS would drop every message it publishes"
        )
    policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    missing = [a for a in PUBLISH_KEY_ACTIONS if not any(_allows(s, service, a) for s in statements)]
    if missing:
        return f"the key policy of topic {topic_arn}'s key does not allow {service} {', '.join(missing)}"
    return None
