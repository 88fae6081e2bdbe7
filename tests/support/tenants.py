"""Onboarding helpers for end-to-end tests: start it, wait for it, list what a tenant owns."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg

from tenant_security.database import DatabaseLogin, TenantDatabases
from tests.support.cloud import RunningCloud, wait_for

BUS = "dcisionai-platform"
# A source template.yaml's OnboardingEventSources lists (other systems than the platform itself).
OPERATOR_SOURCE = "dcisionai.operators"
PLATFORM_SOURCE = "dcisionai.tenant-security"


def request_body(tenant_id: str, isolation: str = "database", **documents: Any) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "name": tenant_id.title(),
        "isolation": isolation,
        "admin": {"username": "owner", "email": f"owner@{tenant_id}.example"},
        **documents,
    }


def put_event(cloud: RunningCloud, detail_type: str, detail: dict[str, Any], source: str) -> None:
    """One event on the platform bus, as anyone allowed to call PutEvents may put it."""
    reply = cloud.client("events").put_events(
        Entries=[
            {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": BUS}
        ]
    )
    assert reply["FailedEntryCount"] == 0


def put_onboarding_event(cloud: RunningCloud, body: dict[str, Any], source: str = OPERATOR_SOURCE) -> None:
    put_event(cloud, "Tenant Onboarding Requested", body, source)


def machine_arn(cloud: RunningCloud, kind: str) -> str:
    return str(cloud.outputs[f"{kind.title()}StateMachineArn"])


def executions(cloud: RunningCloud, kind: str, tenant_id: str, after: float = 0) -> list[dict[str, Any]]:
    """Every execution for ``tenant_id`` started after ``after`` (described, oldest first)."""
    sfn = cloud.client("stepfunctions")
    found = []
    for execution in sfn.list_executions(stateMachineArn=machine_arn(cloud, kind))["executions"]:
        if execution["startDate"].timestamp() < after - 0.05:
            continue
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if json.loads(described.get("input") or "{}").get("tenant_id") == tenant_id:
            found.append(dict(described))
    return sorted(found, key=lambda d: d["startDate"])


def finished_executions(
    cloud: RunningCloud, kind: str, tenant_id: str, count: int, after: float = 0, timeout: float = 90
) -> list[dict[str, Any]]:
    """The first ``count`` executions for ``tenant_id`` started after ``after``, once all finished."""

    def done() -> list[dict[str, Any]] | None:
        found = executions(cloud, kind, tenant_id, after)
        if len(found) < count or any(d["status"] == "RUNNING" for d in found):
            return None
        return found

    return list(wait_for(done, timeout=timeout, interval=0.3))


def finished_execution(
    cloud: RunningCloud, kind: str, tenant_id: str, after: float = 0, timeout: float = 90
) -> dict[str, Any]:
    """The newest execution for ``tenant_id`` started after ``after``, once it has finished."""

    def done() -> dict[str, Any] | None:
        found = executions(cloud, kind, tenant_id, after)
        return found[-1] if found and found[-1]["status"] != "RUNNING" else None

    return dict(wait_for(done, timeout=timeout, interval=0.3))


def execution_path(cloud: RunningCloud, execution_arn: str) -> list[str]:
    """The states an execution entered, in order (from its history)."""
    history = cloud.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)
    return [
        e["stateEnteredEventDetails"]["name"] for e in history["events"] if "stateEnteredEventDetails" in e
    ]


def set_status(cloud: RunningCloud, tenant_id: str, status: str) -> None:
    """Put a tenant in ``status`` directly (a test's stand-in for a workflow in progress)."""
    cloud.client("dynamodb").update_item(
        TableName="dcisionai-tenants",
        Key={"tenant_id": {"S": tenant_id}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}},
    )


def set_fault(cloud: RunningCloud, flow: str, tenant_id: str, step: str | None) -> None:
    ddb = cloud.client("dynamodb")
    key = {"pk": {"S": "faults"}, "sk": {"S": f"{flow}#{tenant_id}"}}
    if step is None:
        ddb.delete_item(TableName="dcisionai-counters", Key=key)
    else:
        ddb.put_item(TableName="dcisionai-counters", Item={**key, "step": {"S": step}})


def databases(cloud: RunningCloud) -> TenantDatabases:
    found = platform_database(cloud)
    assert found is not None, "this local cloud has no platform database"
    return found


def platform_database(cloud: RunningCloud) -> TenantDatabases | None:
    """The master's view of the platform database, None for a cloud started without one."""
    secrets = cloud.client("secretsmanager")
    found = [s for s in secrets.list_secrets()["SecretList"] if s["Name"].endswith("/platform-database")]
    if not found:
        return None
    (secret,) = found
    value = json.loads(secrets.get_secret_value(SecretId=secret["ARN"])["SecretString"])
    return TenantDatabases(DatabaseLogin.from_secret(value))


def connect_as_master(cloud: RunningCloud, dbname: str = "postgres") -> psycopg.Connection[Any]:
    """The platform database's master user (what an operator, or a test, inspects with)."""
    master = databases(cloud).master
    return psycopg.connect(
        host=master.host,
        port=master.port,
        user=master.username,
        password=master.password,
        dbname=dbname,
        connect_timeout=10,
        autocommit=True,
    )


def connect_as_tenant(
    cloud: RunningCloud, tenant_id: str, dbname: str | None = None
) -> psycopg.Connection[Any]:
    secret = cloud.client("secretsmanager").get_secret_value(
        SecretId=f"dcisionai/tenants/{tenant_id}/database"
    )
    creds = json.loads(secret["SecretString"])
    return psycopg.connect(
        host=creds["host"],
        port=creds["port"],
        user=creds["username"],
        password=creds["password"],
        dbname=dbname or creds["dbname"],
        connect_timeout=10,
        autocommit=True,
    )


def tenant_resources(cloud: RunningCloud, tenant_id: str) -> dict[str, Any]:
    """Everything of the tenant that exists, and the state of its keys."""
    kms, s3, secrets = cloud.client("kms"), cloud.client("s3"), cloud.client("secretsmanager")
    aliases = [
        a["AliasName"]
        for a in kms.list_aliases()["Aliases"]
        if a["AliasName"].startswith(f"alias/dcisionai-tenant-{tenant_id}-")
    ]
    key_states = {}
    for key in kms.list_keys()["Keys"]:
        tags = {
            t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
        }
        if tags.get("TenantId") == tenant_id:
            key_states[key["KeyId"]] = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"]
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"] if tenant_id in b["Name"]]
    secret_names = [
        s["Name"] for s in secrets.list_secrets()["SecretList"] if f"/tenants/{tenant_id}/" in s["Name"]
    ]
    users = cloud.client("dynamodb").query(
        TableName="dcisionai-users",
        KeyConditionExpression="tenant_id = :t",
        ExpressionAttributeValues={":t": {"S": tenant_id}},
    )["Items"]
    return {
        "aliases": aliases,
        "keys": key_states,
        "buckets": buckets,
        "secrets": secret_names,
        "database": database.exists(tenant_id) if (database := platform_database(cloud)) else None,
        "users": [u["username"]["S"] for u in users],
    }


def now() -> float:
    return time.time()


def event_observer(cloud: RunningCloud, name: str, pattern: dict[str, Any]) -> Any:
    """Route platform events matching ``pattern`` to a new SQS queue; a function that waits for
    and returns those whose detail matches (it keeps every event it has seen)."""
    sqs, events = cloud.client("sqs"), cloud.client("events")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_arn = events.put_rule(Name=name, EventBusName=BUS, EventPattern=json.dumps(pattern))["RuleArn"]
    # as on AWS, EventBridge sends only where the queue's policy lets it (for this rule)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule=name, EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    seen: list[dict[str, Any]] = []

    def matching(detail_type: str | None = None, **detail: Any) -> list[dict[str, Any]]:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            seen.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [
            e
            for e in seen
            if (detail_type is None or e["detail-type"] == detail_type)
            and all(e["detail"].get(k) == v for k, v in detail.items())
        ]

    return matching


def alert_mailbox(cloud: RunningCloud, name: str) -> Any:
    """An SQS queue subscribed to the alert topic, as an e-mail address is; a function returning
    the text of the messages it got (every one it has seen so far)."""
    sqs, sns = cloud.client("sqs"), cloud.client("sns")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=cloud.outputs["AlertTopicArn"], Protocol="sqs", Endpoint=arn)
    seen: list[str] = []

    def messages() -> list[str]:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            seen.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return seen

    return messages
