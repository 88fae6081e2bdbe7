"""Onboarding under AWS's limits in the local cloud (issue 16, items 15 and 16).

- The onboarding function's reserved concurrency (``OnboardingConcurrency``, 2) throttles a step
  at once, as Lambda does: more concurrent onboardings than that all succeed, none compensated,
  on the state machine's own throttle retries.
- POST /tenants refuses a request that would not fit in an event and an execution's state with
  a 413 before anything happens.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tenant_security.onboarding.requests import ONBOARDING_REQUEST_MAX_BYTES
from tests.support.cloud import RunningCloud
from tests.support.identity import Identity
from tests.support.tenants import (
    OPERATOR_SOURCE,
    execution_path,
    finished_execution,
    now,
    put_onboarding_event,
    request_body,
    tenant_resources,
)

pytestmark = pytest.mark.e2e


def _throttled_steps(cloud: RunningCloud, execution_arn: str) -> int:
    """How often a step of the execution was refused with Lambda's throttle (from its history)."""
    history = cloud.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)
    return sum(
        1
        for e in history["events"]
        if (e.get("taskFailedEventDetails") or {}).get("error") == "Lambda.TooManyRequestsException"
    )


def test_more_concurrent_onboardings_than_reserved_concurrency_all_succeed_uncompensated(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    tenants = [f"lim-busy-{i}" for i in range(4)]
    started = now()

    def onboard(tenant: str) -> int:
        reply = platform_cloud.http(
            "POST", "/tenants", json=request_body(tenant, "schema"), headers=platform_admin.headers
        )
        return reply.status_code

    with ThreadPoolExecutor(max_workers=len(tenants)) as pool:
        assert list(pool.map(onboard, tenants)) == [202] * len(tenants)
    ended = {
        t: finished_execution(platform_cloud, "onboarding", t, after=started, timeout=600) for t in tenants
    }
    paths = {t: execution_path(platform_cloud, e["executionArn"]) for t, e in ended.items()}
    assert {t: e["status"] for t, e in ended.items()} == dict.fromkeys(tenants, "SUCCEEDED"), paths
    assert not [t for t, p in paths.items() if "Compensate" in p], paths
    for tenant in tenants:
        owned = tenant_resources(platform_cloud, tenant)
        assert list(owned["keys"].values()) == ["Enabled"] * 3
        assert owned["users"] == ["owner"]
    # The test is about throttling: Lambda refused steps (two run at once), and they were retried.
    assert sum(_throttled_steps(platform_cloud, e["executionArn"]) for e in ended.values()) > 0


def test_an_onboarding_request_too_large_for_an_event_is_refused_before_anything_is_done(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    body = request_body("lim-huge", "schema")
    text = json.dumps(body)
    # valid JSON of a valid request, as large as the JSON body limit (256 KiB) allows
    padded = text[:-1] + " " * (256 * 1024 - len(text)) + "}"
    assert len(padded) == 256 * 1024
    started = now()
    reply = platform_cloud.http(
        "POST",
        "/tenants",
        data=padded,
        headers={**platform_admin.headers, "Content-Type": "application/json"},
    )
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"] == "payload_too_large"
    assert str(ONBOARDING_REQUEST_MAX_BYTES) in reply.json()["message"]
    # nothing was registered or started
    record = platform_cloud.client("dynamodb").get_item(
        TableName="dcisionai-tenants", Key={"tenant_id": {"S": "lim-huge"}}, ConsistentRead=True
    )
    assert "Item" not in record
    sfn = platform_cloud.client("stepfunctions")
    arn = platform_cloud.outputs["OnboardingStateMachineArn"]
    recent = [
        e
        for e in sfn.list_executions(stateMachineArn=arn)["executions"]
        if e["startDate"].timestamp() >= started
    ]
    assert not [
        e
        for e in recent
        if "lim-huge" in (sfn.describe_execution(executionArn=e["executionArn"]).get("input") or "")
    ]
    # the same request without the padding is taken
    compact = platform_cloud.http("POST", "/tenants", json=body, headers=platform_admin.headers)
    assert compact.status_code == 202, compact.text
    assert (
        finished_execution(platform_cloud, "onboarding", "lim-huge", after=started)["status"] == "SUCCEEDED"
    )


def test_an_oversized_onboarding_event_from_the_bus_is_rejected_not_lost(
    platform_cloud: RunningCloud,
) -> None:
    """A listed source may put an onboarding event as large as PutEvents takes (256 KB), no API
    in front of it. It is invalid (an unknown field): the execution must still end in Rejected,
    with its "Tenant Onboarding Failed" event -- the Catch must not keep that input beside the
    error, which would exceed the 256 KB state limit (States.DataLimitExceeded, caught by none)."""
    tenant = "lim-bus-huge"
    body = request_body(tenant, "schema")
    room = 262_144 - len(OPERATOR_SOURCE) - len("Tenant Onboarding Requested") - len(json.dumps(body)) - 64
    detail = {**body, "pad": "x" * room}
    started = now()
    put_onboarding_event(platform_cloud, detail)
    ended = finished_execution(platform_cloud, "onboarding", tenant, after=started, timeout=120)
    path = execution_path(platform_cloud, ended["executionArn"])
    history = platform_cloud.client("stepfunctions").get_execution_history(
        executionArn=ended["executionArn"], maxResults=1000
    )["events"]
    failures = [
        {k: str(v)[:300] for k, v in e.items() if k.endswith("Details")}
        for e in history
        if "Failed" in e["type"]
    ]
    assert (ended["status"], ended.get("error")) == ("FAILED", "OnboardingRejected"), (path, failures)
    assert "RejectedEvent" in path
    record = platform_cloud.client("dynamodb").get_item(
        TableName="dcisionai-tenants", Key={"tenant_id": {"S": tenant}}, ConsistentRead=True
    )
    assert "Item" not in record
