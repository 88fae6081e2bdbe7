"""The running local cloud authorizes a function's calls as the account would: its role from the
template, each service's resource ARN, and AWS's error for a denied call, in each protocol. The
test signs with the function's own access key (``localcloud-<LogicalId>``), as its code does."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.cloud import RunningCloud

pytestmark = pytest.mark.integration

RECORDER = "localcloud-RecorderFunction"  # DynamoDBCrudPolicy on the probe table, nothing else


def as_function(cloud: RunningCloud, service: str, key: str = RECORDER) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=cloud.info["aws_endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="localcloud",
        config=Config(retries={"max_attempts": 1}),
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


def test_a_function_may_do_what_its_role_allows_on_the_resources_it_names(
    fixture_cloud: RunningCloud,
) -> None:
    ddb = as_function(fixture_cloud, "dynamodb")
    ddb.put_item(TableName="probe-records", Item={"pk": {"S": f"iam-{uuid.uuid4().hex}"}})
    other = f"iam-other-{uuid.uuid4().hex[:8]}"
    fixture_cloud.client("dynamodb").create_table(
        TableName=other,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    code, status, message = error_of(lambda: ddb.put_item(TableName=other, Item={"pk": {"S": "x"}}))
    assert (code, status) == ("AccessDeniedException", 400)
    assert message.startswith("User: arn:aws:sts::123456789012:assumed-role/")
    assert (
        "is not authorized to perform: dynamodb:PutItem on resource: "
        f"arn:aws:dynamodb:us-east-1:123456789012:table/{other}" in message
    )
    # a transaction is authorized item by item: one item outside the role fails it all
    items = [
        {"Put": {"TableName": "probe-records", "Item": {"pk": {"S": "t1"}}}},
        {"Put": {"TableName": other, "Item": {"pk": {"S": "t2"}}}},
    ]
    assert error_of(lambda: ddb.transact_write_items(TransactItems=items))[0] == "AccessDeniedException"
    assert "Item" not in fixture_cloud.client("dynamodb").get_item(
        TableName="probe-records", Key={"pk": {"S": "t1"}}
    )


def test_each_service_answers_a_denied_call_in_its_own_protocol(fixture_cloud: RunningCloud) -> None:
    admin_s3 = fixture_cloud.client("s3")
    bucket = f"iam-{uuid.uuid4().hex[:12]}"
    admin_s3.create_bucket(Bucket=bucket)
    queue = fixture_cloud.client("sqs").create_queue(QueueName=f"iam-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    topic = fixture_cloud.client("sns").create_topic(Name=f"iam-{uuid.uuid4().hex[:8]}")["TopicArn"]
    secret = fixture_cloud.client("secretsmanager").create_secret(
        Name=f"iam/{uuid.uuid4().hex[:8]}", SecretString="v"
    )
    denied = {
        "s3": lambda: as_function(fixture_cloud, "s3").get_object(Bucket=bucket, Key="k"),
        "kms": lambda: as_function(fixture_cloud, "kms").create_key(),
        "sqs": lambda: as_function(fixture_cloud, "sqs").send_message(QueueUrl=queue, MessageBody="m"),
        "sns": lambda: as_function(fixture_cloud, "sns").publish(TopicArn=topic, Message="m"),
        "secretsmanager": lambda: as_function(fixture_cloud, "secretsmanager").get_secret_value(
            SecretId=secret["ARN"]
        ),
        "events": lambda: as_function(fixture_cloud, "events").put_events(
            Entries=[
                {"Source": "probe.tests", "DetailType": "x", "Detail": "{}", "EventBusName": "probe-bus"}
            ]
        ),
    }
    answers = {service: error_of(call)[:2] for service, call in denied.items()}
    assert answers == {
        "s3": ("AccessDenied", 403),
        "kms": ("AccessDeniedException", 400),
        "sqs": ("AccessDenied", 400),
        "sns": ("AuthorizationError", 403),
        "secretsmanager": ("AccessDeniedException", 400),
        "events": ("AccessDeniedException", 400),
    }
    # nothing reached the services
    assert "Messages" not in fixture_cloud.client("sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=0)


def test_a_condition_key_the_local_cloud_cannot_supply_fails_the_call(fixture_cloud: RunningCloud) -> None:
    iam = fixture_cloud.client("iam")
    role = next(r["RoleName"] for r in iam.list_roles()["Roles"] if "-RecorderFunctionRole-" in r["RoleName"])
    table = f"iam-cond-{uuid.uuid4().hex[:8]}"
    fixture_cloud.client("dynamodb").create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    statement = {
        "Effect": "Allow",
        "Action": "dynamodb:GetItem",
        "Resource": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}",
        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    }
    iam.put_role_policy(
        RoleName=role,
        PolicyName=f"{table}-by-address",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    try:
        code, status, message = error_of(
            lambda: as_function(fixture_cloud, "dynamodb").get_item(TableName=table, Key={"pk": {"S": "x"}})
        )
        assert (code, status) == ("InternalFailure", 500)
        assert "aws:SourceIp" in message  # an error naming the key, never an allow
    finally:
        iam.delete_role_policy(RoleName=role, PolicyName=f"{table}-by-address")


def _recorder_role(cloud: RunningCloud) -> dict[str, Any]:
    iam = cloud.client("iam")
    return next(r for r in iam.list_roles()["Roles"] if "-RecorderFunctionRole-" in r["RoleName"])


def test_create_key_with_tags_also_needs_tag_resource_in_iam(fixture_cloud: RunningCloud) -> None:
    """KMS: "To add tags when creating a KMS key, the caller must have kms:TagResource
    permission in an IAM policy"; kms:CreateKey alone creates untagged keys only."""
    iam, role = fixture_cloud.client("iam"), _recorder_role(fixture_cloud)["RoleName"]
    name = f"iam-tags-{uuid.uuid4().hex[:8]}"
    create_only = {"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}
    iam.put_role_policy(
        RoleName=role,
        PolicyName=name,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [create_only]}),
    )
    kms, admin = as_function(fixture_cloud, "kms"), fixture_cloud.client("kms")
    tags = [{"TagKey": "ManagedBy", "TagValue": name}]
    try:
        before = len(admin.list_keys(Limit=1000)["Keys"])
        code, _, message = error_of(lambda: kms.create_key(Tags=tags))
        assert code == "AccessDeniedException"
        assert "kms:TagResource" in message
        assert "no identity-based policy allows" in message
        assert len(admin.list_keys(Limit=1000)["Keys"]) == before  # nothing was created
        assert kms.create_key()["KeyMetadata"]["KeyId"]  # untagged: kms:CreateKey suffices
        tag_any_key = {
            "Effect": "Allow",
            "Action": "kms:TagResource",
            "Resource": "arn:aws:kms:us-east-1:123456789012:key/*",
            "Condition": {"StringEquals": {"aws:RequestTag/ManagedBy": name}},
        }
        iam.put_role_policy(
            RoleName=role,
            PolicyName=name,
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [create_only, tag_any_key]}),
        )
        created = kms.create_key(Tags=tags)["KeyMetadata"]["KeyId"]
        assert admin.list_resource_tags(KeyId=created)["Tags"] == tags
    finally:
        iam.delete_role_policy(RoleName=role, PolicyName=name)


def test_update_alias_needs_the_key_the_alias_points_at_now(fixture_cloud: RunningCloud) -> None:
    """KMS authorizes UpdateAlias on the alias, its current key and the new target key: a
    caller allowed on the target alone cannot take over an alias of a key it may not touch."""
    iam, role = fixture_cloud.client("iam"), _recorder_role(fixture_cloud)
    admin = fixture_cloud.client("kms")
    root = "arn:aws:iam::123456789012:root"

    def key_policy(*statements: dict[str, Any]) -> str:
        account = {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"}
        return json.dumps({"Version": "2012-10-17", "Statement": [account, *statements]})

    update_by_role = {
        "Effect": "Allow",
        "Principal": {"AWS": role["Arn"]},
        "Action": "kms:UpdateAlias",
        "Resource": "*",
    }
    current = admin.create_key(Policy=key_policy())["KeyMetadata"]
    target = admin.create_key(Policy=key_policy(update_by_role))["KeyMetadata"]
    alias = f"alias/iam-probe-{uuid.uuid4().hex[:8]}"
    admin.create_alias(AliasName=alias, TargetKeyId=current["KeyId"])
    name = alias.rsplit("/", 1)[1]
    statement = {
        "Effect": "Allow",
        "Action": "kms:UpdateAlias",
        "Resource": f"arn:aws:kms:us-east-1:123456789012:{alias}",
    }
    iam.put_role_policy(
        RoleName=role["RoleName"],
        PolicyName=name,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )

    def points_at() -> str:
        aliases = admin.list_aliases(Limit=100)["Aliases"]
        return next(a["TargetKeyId"] for a in aliases if a["AliasName"] == alias)

    kms = as_function(fixture_cloud, "kms")
    try:
        code, _, message = error_of(lambda: kms.update_alias(AliasName=alias, TargetKeyId=target["KeyId"]))
        assert code == "AccessDeniedException"
        assert f"kms:UpdateAlias on resource: {current['Arn']}" in message
        assert points_at() == current["KeyId"]
        # allowed on the current key too: the update goes through
        admin.put_key_policy(KeyId=current["KeyId"], PolicyName="default", Policy=key_policy(update_by_role))
        kms.update_alias(AliasName=alias, TargetKeyId=target["KeyId"])
        assert points_at() == target["KeyId"]
    finally:
        iam.delete_role_policy(RoleName=role["RoleName"], PolicyName=name)
