"""Repeated, duplicated and forged lifecycle requests against the local cloud (template.yaml).

A repeated onboarding request -- by the API or by an event, in every status a tenant can be in --
is a no-op or a rejection, never a provisioning run; N identical requests at once provision the
tenant once; an offboarding event runs only for a tenant a platform-admin's DELETE marked, and an
event of the platform's kinds from another source is recorded as forged. After each, the keys,
buckets, secrets, database and users of the tenant are exactly what they were.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from localcloud.eventbridge import DUPLICATES_FILE
from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import Identity
from tests.support.tenants import (
    PLATFORM_SOURCE,
    execution_path,
    executions,
    finished_execution,
    finished_executions,
    now,
    put_event,
    put_onboarding_event,
    request_body,
    set_fault,
    set_status,
    tenant_resources,
)

pytestmark = pytest.mark.e2e


def _record(cloud: RunningCloud, tenant_id: str) -> dict[str, Any]:
    item = (
        cloud.client("dynamodb")
        .get_item(TableName="dcisionai-tenants", Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True)
        .get("Item", {})
    )
    return {k: item[k]["S"] for k in ("status", "owner_execution", "request_hash") if k in item}


def _state(cloud: RunningCloud, tenant_id: str) -> dict[str, Any]:
    """What a repeated request must not change: the tenant's resources and its record."""
    return {**tenant_resources(cloud, tenant_id), "record": _record(cloud, tenant_id)}


def _onboarded(cloud: RunningCloud, admin: Identity, body: dict[str, Any]) -> None:
    started = now()
    reply = cloud.http("POST", "/tenants", json=body, headers=admin.headers)
    assert reply.status_code == 202, reply.text
    assert finished_execution(cloud, "onboarding", body["tenant_id"], after=started)["status"] == "SUCCEEDED"


def _into(cloud: RunningCloud, admin: Identity, body: dict[str, Any], status: str) -> None:
    """Onboard the tenant of ``body`` and bring it into ``status`` the way it gets there."""
    tenant = body["tenant_id"]
    if status == "FAILED":
        set_fault(cloud, "onboarding", tenant, "database")
        put_onboarding_event(cloud, body)
        wait_for(lambda: _record(cloud, tenant).get("status") == "FAILED", timeout=90)
        set_fault(cloud, "onboarding", tenant, None)
        return
    _onboarded(cloud, admin, body)
    if status == "SUSPENDED":
        reply = cloud.http("POST", f"/tenants/{tenant}/suspend", headers=admin.headers)
        assert reply.status_code == 200, reply.text
    elif status == "OFFBOARDING":
        set_status(cloud, tenant, "OFFBOARDING")  # as DELETE leaves it while its workflow runs
    elif status == "OFFBOARDED":
        started = now()
        assert cloud.http("DELETE", f"/tenants/{tenant}", headers=admin.headers).status_code == 202
        assert finished_execution(cloud, "offboarding", tenant, after=started)["status"] == "SUCCEEDED"
    assert _record(cloud, tenant)["status"] == status


# What the same request again answers, by the API: status code and (for 202) the status reported.
API_ANSWER = {"ACTIVE": (202, "ACTIVE"), "SUSPENDED": (202, "SUSPENDED"), "OFFBOARDING": (409, None)}
API_ANSWER["OFFBOARDED"] = (409, None)


@pytest.mark.parametrize("status", ["ACTIVE", "SUSPENDED", "OFFBOARDING", "OFFBOARDED"])
def test_the_same_request_again_in_any_status_changes_nothing_by_api_or_by_event(
    platform_cloud: RunningCloud, platform_admin: Identity, status: str
) -> None:
    body = request_body(f"rep-{status.lower()}", "database")
    tenant = body["tenant_id"]
    _into(platform_cloud, platform_admin, body, status)
    before = _state(platform_cloud, tenant)
    # by the API: no-op (the status as it is) or a rejection; no execution is started
    started = now()
    reply = platform_cloud.http("POST", "/tenants", json=body, headers=platform_admin.headers)
    code, reported = API_ANSWER[status]
    assert reply.status_code == code, reply.text
    if reported is not None:
        assert reply.json() == {"tenant_id": tenant, "status": reported}
    # by an event (twice: EventBridge delivers at least once): each execution ends without
    # touching anything -- no key, bucket, secret, database or user of the tenant changes
    put_onboarding_event(platform_cloud, body)
    put_onboarding_event(platform_cloud, body)
    ended = finished_executions(platform_cloud, "onboarding", tenant, count=2, after=started)
    assert len(ended) == 2  # the API started none
    for execution in ended:
        path = execution_path(platform_cloud, execution["executionArn"])
        assert "Compensate" not in path, path
        assert "CreateKeys" not in path, path
        if status in ("ACTIVE", "SUSPENDED"):
            assert (execution["status"], path[-1]) == ("SUCCEEDED", "AlreadyHandled"), path
        else:  # a retired id is never onboarded again
            assert (execution["status"], execution.get("error")) == ("FAILED", "OnboardingRejected")
    assert _state(platform_cloud, tenant) == before


def test_a_failed_tenant_is_onboarded_again_by_the_same_request(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    body = request_body("rep-failed", "schema")
    _into(platform_cloud, platform_admin, body, "FAILED")
    assert tenant_resources(platform_cloud, "rep-failed")["buckets"] == []  # rolled back
    started = now()
    reply = platform_cloud.http("POST", "/tenants", json=body, headers=platform_admin.headers)
    assert reply.json() == {"tenant_id": "rep-failed", "status": "PROVISIONING"}
    assert (
        finished_execution(platform_cloud, "onboarding", "rep-failed", after=started)["status"] == "SUCCEEDED"
    )
    assert _record(platform_cloud, "rep-failed")["status"] == "ACTIVE"
    assert len(tenant_resources(platform_cloud, "rep-failed")["buckets"]) == 2


def test_identical_requests_at_once_provision_the_tenant_once(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    body = request_body("rep-parallel", "schema")
    started = now()
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _i: put_onboarding_event(platform_cloud, body), range(6)))
    ended = finished_executions(platform_cloud, "onboarding", "rep-parallel", count=6, after=started)
    paths = [execution_path(platform_cloud, e["executionArn"]) for e in ended]
    assert [e["status"] for e in ended] == ["SUCCEEDED"] * 6
    assert sum("CreateKeys" in p for p in paths) == 1, paths  # one provisioning run
    assert not [p for p in paths if "Compensate" in p]
    owned = tenant_resources(platform_cloud, "rep-parallel")
    assert list(owned["keys"].values()) == ["Enabled"] * 3
    assert owned["users"] == ["owner"]
    assert _record(platform_cloud, "rep-parallel")["status"] == "ACTIVE"


def test_a_registration_of_an_execution_stopped_a_moment_ago_is_not_taken_over(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    body = request_body("rep-stuck", "schema")
    started = now()
    put_onboarding_event(platform_cloud, body)
    first = wait_for(
        lambda: (executions(platform_cloud, "onboarding", "rep-stuck", after=started) or [None])[0]
    )
    wait_for(lambda: _record(platform_cloud, "rep-stuck").get("owner_execution") == first["executionArn"])
    sfn = platform_cloud.client("stepfunctions")
    sfn.stop_execution(executionArn=first["executionArn"])
    wait_for(lambda: sfn.describe_execution(executionArn=first["executionArn"])["status"] != "RUNNING")
    if _record(platform_cloud, "rep-stuck")["status"] == "ACTIVE":
        pytest.skip("the first run finished before it could be stopped")
    # a step of the stopped execution may still be running (for up to the function's timeout):
    # the same request again changes nothing yet -- it is taken over later (test_onboarding_ownership)
    again = now()
    put_onboarding_event(platform_cloud, body)
    second = finished_execution(platform_cloud, "onboarding", "rep-stuck", after=again)
    path = execution_path(platform_cloud, second["executionArn"])
    assert (second["status"], path[-1]) == ("SUCCEEDED", "AlreadyHandled"), path
    assert _record(platform_cloud, "rep-stuck")["owner_execution"] == first["executionArn"]


def test_a_request_eventbridge_delivers_twice_is_provisioned_once_and_never_compensated(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    """EventBridge delivers at least once: the local cloud's duplicate switch hands the one
    onboarding event to the state machine twice, at once. Registration records the owning
    execution: the other one changes nothing, and neither undoes the other's resources."""
    body = request_body("rep-twice", "schema")
    switch = platform_cloud.state_dir / DUPLICATES_FILE
    started = now()
    switch.write_text("1")
    try:
        reply = platform_cloud.http("POST", "/tenants", json=body, headers=platform_admin.headers)
        assert reply.status_code == 202, reply.text
        ended = finished_executions(platform_cloud, "onboarding", "rep-twice", count=2, after=started)
    finally:
        switch.unlink()
    paths = [execution_path(platform_cloud, e["executionArn"]) for e in ended]
    assert [e["status"] for e in ended] == ["SUCCEEDED"] * 2, paths
    assert sum("CreateKeys" in p for p in paths) == 1, paths  # one provisioning run
    assert not [p for p in paths if "Compensate" in p], paths
    owner = [e["executionArn"] for e, p in zip(ended, paths, strict=True) if "CreateKeys" in p]
    record = _record(platform_cloud, "rep-twice")
    assert (record["status"], record["owner_execution"]) == ("ACTIVE", owner[0])
    owned = tenant_resources(platform_cloud, "rep-twice")
    assert list(owned["keys"].values()) == ["Enabled"] * 3
    assert owned["users"] == ["owner"]


# ---------------------------------------------------------------------- offboarding and forgery
def _forged(cloud: RunningCloud, admin: Identity, tenant: str) -> list[dict[str, Any]]:
    """The platform trail's forged-event records that claim ``tenant``."""
    reply = cloud.http(
        "GET", "/tenants/platform/audit", params={"action": "security:forged_event"}, headers=admin.headers
    )
    assert reply.status_code == 200, reply.text
    return [r for r in reply.json()["items"] if r["details"].get("about_tenant") == tenant]


@pytest.mark.parametrize("source", ["attacker.example", PLATFORM_SOURCE])
def test_an_offboarding_event_without_the_apis_decision_offboards_nothing(
    platform_cloud: RunningCloud, platform_admin: Identity, source: str
) -> None:
    tenant = "forge-" + ("ext" if source != PLATFORM_SOURCE else "int")
    _onboarded(platform_cloud, platform_admin, request_body(tenant))
    before = _state(platform_cloud, tenant)
    started = now()
    put_event(platform_cloud, "Tenant Offboarding Requested", {"tenant_id": tenant}, source)
    if source == PLATFORM_SOURCE:
        # even as the platform's source (a compromised platform role): the workflow refuses
        refused = finished_execution(platform_cloud, "offboarding", tenant, after=started)
        assert (refused["status"], refused.get("error")) == ("FAILED", "OffboardingRefused")
    else:
        # another source starts no workflow at all; the attempt is in the platform's trail
        def forged() -> list[dict[str, Any]]:
            reply = platform_cloud.http(
                "GET",
                "/tenants/platform/audit",
                params={"action": "security:forged_event"},
                headers=platform_admin.headers,
            )
            return [r for r in reply.json()["items"] if r["details"].get("about_tenant") == tenant]

        (record,) = wait_for(forged, timeout=30)
        assert record["details"]["claimed_source"] == source
        assert record["details"]["claimed_detail_type"] == "Tenant Offboarding Requested"
        assert executions(platform_cloud, "offboarding", tenant, after=started) == []
    assert _state(platform_cloud, tenant) == before


def test_offboarding_is_the_platform_admins_decision_recorded_with_who_asked(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    tenant = "forge-delete"
    _onboarded(platform_cloud, platform_admin, request_body(tenant))
    started = now()
    assert (
        platform_cloud.http("DELETE", f"/tenants/{tenant}", headers=platform_admin.headers).status_code == 202
    )
    assert finished_execution(platform_cloud, "offboarding", tenant, after=started)["status"] == "SUCCEEDED"
    item = platform_cloud.client("dynamodb").get_item(
        TableName="dcisionai-tenants", Key={"tenant_id": {"S": tenant}}, ConsistentRead=True
    )["Item"]
    assert item["status"]["S"] == "OFFBOARDED"
    assert item["offboarding_requested_by"]["S"] == f"platform/{platform_admin.username}"
    # the same decision again: the (idempotent) workflow runs again and changes nothing
    before = _state(platform_cloud, tenant)
    again = now()
    put_event(platform_cloud, "Tenant Offboarding Requested", {"tenant_id": tenant}, PLATFORM_SOURCE)
    assert finished_execution(platform_cloud, "offboarding", tenant, after=again)["status"] == "SUCCEEDED"
    assert _state(platform_cloud, tenant) == before


def test_an_onboarding_request_from_an_unlisted_source_starts_nothing_and_is_recorded(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    started = now()
    put_onboarding_event(platform_cloud, request_body("forge-onb"), source="attacker.example")

    (record,) = wait_for(lambda: _forged(platform_cloud, platform_admin, "forge-onb"), timeout=30)
    assert record["details"]["claimed_detail_type"] == "Tenant Onboarding Requested"
    assert executions(platform_cloud, "onboarding", "forge-onb", after=started) == []
    assert tenant_resources(platform_cloud, "forge-onb")["aliases"] == []
