"""EventBridge rules, Step Functions and Lambda invoke in the local cloud (fixture template)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from tests.support.cloud import RunningCloud, wait_for

pytestmark = pytest.mark.integration


def put_event(cloud: RunningCloud, detail_type: str, detail: dict[str, Any]) -> str:
    reply = cloud.client("events").put_events(
        Entries=[
            {
                "Source": "probe.tests",
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": "probe-bus",
            }
        ]
    )
    assert reply["FailedEntryCount"] == 0
    return str(reply["Entries"][0]["EventId"])


def item(cloud: RunningCloud, key: str) -> dict[str, Any] | None:
    found = cloud.client("dynamodb").get_item(
        TableName=cloud.outputs["TableName"], Key={"pk": {"S": key}}, ConsistentRead=True
    )
    return found.get("Item")


def finished_execution(cloud: RunningCloud, name_filter: Any) -> Any:
    sfn = cloud.client("stepfunctions")
    for execution in sfn.list_executions(stateMachineArn=cloud.outputs["MachineArn"])["executions"]:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING" and name_filter(described):
            return described
    return None


def test_a_rule_delivers_the_event_to_a_lambda(fixture_cloud: RunningCloud) -> None:
    probe = uuid.uuid4().hex
    event_id = put_event(fixture_cloud, "Probe Lambda", {"probe_id": probe})
    record = wait_for(lambda: item(fixture_cloud, f"event#{probe}"))
    assert record["event_id"]["S"] == event_id
    assert record["detail_type"]["S"] == "Probe Lambda"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"]["S"])  # ISO time, as EventBridge


def test_a_disabled_rule_delivers_nothing(fixture_cloud: RunningCloud) -> None:
    events = fixture_cloud.client("events")
    rules = events.list_rules(EventBusName="probe-bus")["Rules"]
    (recorder_rule,) = [r for r in rules if "RecorderFunction" in r["Name"]]
    events.disable_rule(Name=recorder_rule["Name"], EventBusName="probe-bus")
    try:
        probe = uuid.uuid4().hex
        put_event(fixture_cloud, "Probe Lambda", {"probe_id": probe})
        other = uuid.uuid4().hex
        put_event(fixture_cloud, "Probe Failure", {"probe_id": other})  # an enabled rule, as a clock
        wait_for(lambda: item(fixture_cloud, f"boom#{other}"))
        assert item(fixture_cloud, f"event#{probe}") is None
    finally:
        events.enable_rule(Name=recorder_rule["Name"], EventBusName="probe-bus")


def test_a_rule_starts_the_state_machine_with_its_input_path(fixture_cloud: RunningCloud) -> None:
    probe = uuid.uuid4().hex
    put_event(fixture_cloud, "Probe Machine", {"probe_id": probe})
    execution = wait_for(
        lambda: finished_execution(fixture_cloud, lambda d: json.loads(d["input"]).get("probe_id") == probe),
        timeout=60,
    )
    assert json.loads(execution["input"]) == {"probe_id": probe}  # InputPath $.detail
    assert execution["status"] == "SUCCEEDED"


def test_state_machine_runs_lambda_and_sdk_tasks_with_retry_and_catch(fixture_cloud: RunningCloud) -> None:
    probe = uuid.uuid4().hex
    sfn = fixture_cloud.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=fixture_cloud.outputs["MachineArn"], input=json.dumps({"probe_id": probe})
    )["executionArn"]
    done = wait_for(
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=60
    )
    assert done["status"] == "SUCCEEDED", done
    output = json.loads(done["output"])
    assert output["flaky"] == {"attempts": 2}  # failed once, Retry ran it again
    assert output["caught"]["Error"] == "ValueError"  # Catch took the failing task's error
    assert item(fixture_cloud, f"machine#{probe}") == {
        "pk": {"S": f"machine#{probe}"},
        "kind": {"S": "machine"},
    }
    assert item(fixture_cloud, f"boom#{probe}")["calls"]["N"] == "1"  # Catch without Retry: one call


def test_a_failing_target_is_retried_per_policy_then_dead_lettered(fixture_cloud: RunningCloud) -> None:
    probe = uuid.uuid4().hex
    event_id = put_event(fixture_cloud, "Probe Failure", {"probe_id": probe})
    sqs = fixture_cloud.client("sqs")
    url = fixture_cloud.outputs["DlqUrl"]

    def dead_letter() -> Any:
        # Other tests dead-letter events too; theirs stay hidden for the visibility timeout.
        reply = sqs.receive_message(
            QueueUrl=url, MessageAttributeNames=["All"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        mine = [m for m in reply.get("Messages", []) if json.loads(m["Body"])["id"] == event_id]
        return mine[0] if mine else None

    message = wait_for(dead_letter, timeout=60)
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["ERROR_CODE"] == "ValueError"
    assert "BoomFunction" in attributes["TARGET_ARN"]
    assert json.loads(message["Body"])["detail"] == {"probe_id": probe}
    assert item(fixture_cloud, f"boom#{probe}")["calls"]["N"] == "3"  # 1 try + MaximumRetryAttempts 2


def test_lambda_invoke_runs_the_function(fixture_cloud: RunningCloud) -> None:
    client = fixture_cloud.client("lambda")
    probe = uuid.uuid4().hex
    event = {
        "id": "e1",
        "detail-type": "Direct",
        "time": "2026-11-26T00:00:00Z",
        "detail": {"probe_id": probe},
    }
    reply = client.invoke(FunctionName=fixture_cloud.outputs["RecorderName"], Payload=json.dumps(event))
    assert "FunctionError" not in reply
    assert json.loads(reply["Payload"].read()) == {"recorded": probe}
    failed = client.invoke(
        FunctionName=fixture_cloud.outputs["BoomName"], Payload=json.dumps({"probe_id": probe})
    )
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"
