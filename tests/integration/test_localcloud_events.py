"""EventBridge rules, Step Functions and Lambda invoke in the local cloud (fixture template)."""

from __future__ import annotations

import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from localcloud.eventbridge import DUPLICATES_FILE
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


def _messages(cloud: RunningCloud, url: str, match: Any) -> Any:
    # Other tests put messages too; theirs stay hidden for the visibility timeout.
    reply = cloud.client("sqs").receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], MaxNumberOfMessages=10, WaitTimeSeconds=1
    )
    mine = [m for m in reply.get("Messages", []) if match(json.loads(m["Body"]))]
    return mine[0] if mine else None


def test_a_function_error_is_retried_by_lambdas_async_config_and_never_reaches_the_rules_dlq(
    fixture_cloud: RunningCloud,
) -> None:
    """EventBridge invokes Lambda asynchronously: the function's EventInvokeConfig (1 retry, an
    SQS on-failure destination) applies, not the rule's RetryPolicy (2 retries) and its DLQ."""
    probe = uuid.uuid4().hex
    event_id = put_event(fixture_cloud, "Probe Failure", {"probe_id": probe})
    record = json.loads(
        wait_for(
            lambda: _messages(
                fixture_cloud,
                fixture_cloud.outputs["FailuresUrl"],
                lambda body: (body.get("requestPayload") or {}).get("id") == event_id,
            ),
            timeout=60,
        )["Body"]
    )
    assert record["version"] == "1.0"
    context = record["requestContext"]
    assert context["condition"] == "RetriesExhausted"
    assert context["approximateInvokeCount"] == 2  # the first invoke and MaximumRetryAttempts 1
    assert context["functionArn"].endswith(f":function:{fixture_cloud.outputs['BoomName']}:$LATEST")
    assert record["requestPayload"]["detail"] == {"probe_id": probe}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert item(fixture_cloud, f"boom#{probe}")["calls"]["N"] == "2"
    # The rule's DLQ is for events EventBridge could not hand to Lambda; this one it could.
    assert (
        _messages(fixture_cloud, fixture_cloud.outputs["DlqUrl"], lambda body: body.get("id") == event_id)
        is None
    )


def test_a_synchronous_invocation_over_reserved_concurrency_is_throttled_at_once(
    fixture_cloud: RunningCloud,
) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    # botocore retries a throttle by itself: one attempt, to see Lambda's answer
    client = boto3.client(
        "lambda",
        endpoint_url=fixture_cloud.info["aws_endpoint_url"],
        region_name=fixture_cloud.info["region"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=60),
    )
    name = fixture_cloud.outputs["LimitsName"]
    probe = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=1) as pool:
        # holds the function's one slot; the count shows it started
        slow = pool.submit(
            client.invoke,
            FunctionName=name,
            Payload=json.dumps({"mode": "sleep", "seconds": 4, "probe_id": probe}),
        )
        wait_for(lambda: item(fixture_cloud, f"limits#{probe}"))
        with pytest.raises(ClientError) as refused:
            client.invoke(FunctionName=name, Payload=json.dumps({"mode": "missing", "probe_id": probe}))
        error = refused.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert error["Error"]["Code"] == "TooManyRequestsException"
        assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        # an asynchronous invocation meanwhile is accepted, and run once the slot is free
        queued = client.invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps({"mode": "missing", "probe_id": probe}),
        )
        assert queued["StatusCode"] == 202
        assert "FunctionError" not in slow.result()
    assert wait_for(lambda: item(fixture_cloud, f"limits#{probe}")["calls"]["N"] == "2" or None)
    assert item(fixture_cloud, f"limits#{probe}")["calls"]["N"] == "2"  # the throttled one never ran


def test_lambdas_payload_limits(fixture_cloud: RunningCloud) -> None:
    from botocore.exceptions import ClientError

    client = fixture_cloud.client("lambda")
    name = fixture_cloud.outputs["LimitsName"]
    padding = "x" * 6_291_556  # with the JSON around it, over the 6 MB synchronous limit
    with pytest.raises(ClientError) as refused:
        client.invoke(FunctionName=name, Payload=json.dumps({"mode": "missing", "pad": padding}))
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert refused.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    with pytest.raises(ClientError) as refused_async:
        client.invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps({"mode": "missing", "pad": padding[:1_048_576]}),
        )
    assert refused_async.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    # an answer over 6 MB: the function ran, the caller gets Lambda's error instead
    big = client.invoke(FunctionName=name, Payload=json.dumps({"mode": "big", "bytes": 6_400_000}))
    assert big["FunctionError"] == "Unhandled"
    assert json.loads(big["Payload"].read())["errorType"] == "Function.ResponseSizeTooLarge"
    fits = client.invoke(FunctionName=name, Payload=json.dumps({"mode": "big", "bytes": 5_900_000}))
    assert "FunctionError" not in fits
    assert len(json.loads(fits["Payload"].read())["value"]) == 5_900_000


def test_put_events_over_256_kb_is_refused_whole(fixture_cloud: RunningCloud) -> None:
    from botocore.exceptions import ClientError

    probe = uuid.uuid4().hex
    entry = {"Source": "probe.tests", "DetailType": "Probe Lambda", "EventBusName": "probe-bus"}
    detail = json.dumps({"probe_id": probe, "pad": "x" * 262_144})
    with pytest.raises(ClientError) as refused:
        fixture_cloud.client("events").put_events(Entries=[{**entry, "Detail": detail}])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "over the limit" in refused.value.response["Error"]["Message"]
    # just under the limit (EventBridge's formula: source, detail-type and detail bytes) is taken
    room = (
        262_144 - len("probe.tests") - len("Probe Lambda") - len(json.dumps({"probe_id": probe, "pad": ""}))
    )
    fits = json.dumps({"probe_id": probe, "pad": "x" * room})
    assert (
        fixture_cloud.client("events").put_events(Entries=[{**entry, "Detail": fits}])["FailedEntryCount"]
        == 0
    )
    assert wait_for(lambda: item(fixture_cloud, f"event#{probe}"))


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"mode": "missing"}, "States.Runtime"),  # the ResultSelector's path is not in the output
        ({"mode": "big", "bytes": 300_000}, "States.DataLimitExceeded"),
    ],
)
def test_catch_states_all_does_not_catch_terminal_errors(
    fixture_cloud: RunningCloud, payload: dict[str, Any], error: str
) -> None:
    sfn = fixture_cloud.client("stepfunctions")
    machine = fixture_cloud.outputs["TerminalMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))["executionArn"]
    done = wait_for(
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=60
    )
    assert done["status"] == "FAILED", done
    assert done["error"] == error
    # the same Catch takes a function error: it is the error kind, not the Catch, that decides
    caught = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"mode": "fail"}))["executionArn"]
    ended = wait_for(
        lambda: (d := sfn.describe_execution(executionArn=caught))["status"] != "RUNNING" and d, timeout=60
    )
    assert ended["status"] == "SUCCEEDED"
    assert json.loads(ended["output"])["caught"]["Error"] == "ValueError"


def test_a_duplicate_delivery_switch_delivers_each_event_twice(fixture_cloud: RunningCloud) -> None:
    switch = fixture_cloud.state_dir / DUPLICATES_FILE
    switch.write_text("1")
    try:
        probe = uuid.uuid4().hex
        event_id = put_event(fixture_cloud, "Probe Lambda", {"probe_id": probe})
        assert wait_for(
            lambda: (item(fixture_cloud, f"recorded#{probe}") or {}).get("calls", {}).get("N") == "2"
        )
        assert item(fixture_cloud, f"event#{probe}")["event_id"]["S"] == event_id  # the same event twice
    finally:
        switch.unlink()
    once = uuid.uuid4().hex
    put_event(fixture_cloud, "Probe Lambda", {"probe_id": once})
    wait_for(lambda: item(fixture_cloud, f"recorded#{once}"))
    other = uuid.uuid4().hex
    put_event(fixture_cloud, "Probe Lambda", {"probe_id": other})  # later, as a clock
    wait_for(lambda: item(fixture_cloud, f"recorded#{other}"))
    assert item(fixture_cloud, f"recorded#{once}")["calls"]["N"] == "1"


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
