"""AWS failing under a tenant's requests (the fault injector's ``aws`` flow): KMS down, the quota
table down. Each request is a clean 503 with Retry-After; nothing is written, reserved or leased
half-way; each refusal is still in the audit trail; and all works again once AWS is back.

(Onboarding steps and the audit writer between its writes have their own fault tests:
test_onboarding.py and test_audit_trail*.py.)
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import mint_token, seed_tenant
from tests.support.tenants import set_fault

pytestmark = pytest.mark.e2e

TENANT = "fault-aws"


@pytest.fixture(scope="module")
def tokens(platform_cloud: RunningCloud) -> dict[str, str]:
    seed_tenant(platform_cloud, TENANT, database="schema")
    platform_cloud.client("s3").create_bucket(Bucket=f"dcisionai-10ca1000-tenant-{TENANT}-data")
    return {
        "dev": mint_token(platform_cloud, TENANT, "dev", ["developer"]),
        "admin": mint_token(platform_cloud, TENANT, "adm", ["tenant-admin"]),
        "auditor": mint_token(platform_cloud, TENANT, "aud", ["auditor"]),
    }


def _call(cloud: RunningCloud, method: str, path: str, token: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return cloud.http(method, f"/tenants/{TENANT}{path}", headers=headers, **kwargs)


def _put_file(cloud: RunningCloud, token: str, key: str) -> Any:
    headers = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}
    return _call(cloud, "PUT", f"/files/{key}", token, data=b"payload", headers=headers)


def _objects(cloud: RunningCloud) -> list[str]:
    listed = cloud.client("s3").list_objects_v2(Bucket=f"dcisionai-10ca1000-tenant-{TENANT}-data")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _leases(cloud: RunningCloud) -> int:
    """The concurrency leases held on the tenant's counter items (rate.LEASES)."""
    reply = cloud.client("dynamodb").query(
        TableName="dcisionai-counters",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"quota#{TENANT}#0"}},
    )
    return sum(len(item.get("lz", {}).get("M", {})) for item in reply["Items"])


def _unavailable(reply: Any) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"] == "service_unavailable"
    assert reply.headers.get("Retry-After") == "1"


def _audited_refusals(cloud: RunningCloud, token: str, action: str) -> list[dict[str, Any]]:
    items = _call(cloud, "GET", "/audit", token, params={"action": action, "limit": 200}).json()["items"]
    return [i for i in items if i.get("status") == 503]


def test_with_kms_down_nothing_is_half_written(platform_cloud: RunningCloud, tokens: dict[str, str]) -> None:
    usage_before = _call(platform_cloud, "GET", "/quotas/usage", tokens["admin"]).json()["storage"]
    set_fault(platform_cloud, "aws", TENANT, "kms")
    try:
        _unavailable(_put_file(platform_cloud, tokens["dev"], "during.txt"))
        record = {"data": {"ssn": "123-45-6789"}, "sensitive": ["ssn"]}
        _unavailable(_call(platform_cloud, "POST", "/records", tokens["dev"], json=record))
        # what needs no key still works: the quota usage is read from DynamoDB
        usage = _call(platform_cloud, "GET", "/quotas/usage", tokens["admin"])
        assert usage.status_code == 200
        assert usage.json()["storage"] == usage_before  # nothing reserved and left behind
    finally:
        set_fault(platform_cloud, "aws", TENANT, None)
    assert _objects(platform_cloud) == []
    assert _leases(platform_cloud) == 0
    assert _put_file(platform_cloud, tokens["dev"], "after.txt").status_code == 200  # KMS is back
    created = _call(platform_cloud, "POST", "/records", tokens["dev"], json=record)
    assert created.status_code == 201, created.text
    # a file written while KMS was up does not decrypt while it is down: 503, not "refused"
    set_fault(platform_cloud, "aws", TENANT, "kms")
    try:
        reply = _call(
            platform_cloud,
            "GET",
            "/files/after.txt",
            tokens["dev"],
            headers={"Accept": "application/octet-stream"},
        )
        assert reply.status_code in (200, 503), reply.text  # 200 only from a warm data-key cache
        if reply.status_code == 503:
            _unavailable(reply)
        missing = _call(platform_cloud, "GET", f"/records/{uuid.uuid4()}", tokens["dev"])
        assert missing.status_code == 404  # the database is not KMS: records without a sealed part read
    finally:
        set_fault(platform_cloud, "aws", TENANT, None)
    refusals = wait_for(
        lambda: _audited_refusals(platform_cloud, tokens["auditor"], "files:Write"), timeout=60
    )
    assert refusals[0]["outcome"] != "success"


def test_with_the_quota_table_down_requests_fail_closed(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    objects = _objects(platform_cloud)
    set_fault(platform_cloud, "aws", TENANT, "dynamodb:dcisionai-counters")
    try:
        _unavailable(_call(platform_cloud, "GET", "/files", tokens["dev"]))  # not admitted unmetered
        _unavailable(_put_file(platform_cloud, tokens["dev"], "unmetered.txt"))
    finally:
        set_fault(platform_cloud, "aws", TENANT, None)
    assert _objects(platform_cloud) == objects
    assert _leases(platform_cloud) == 0
    assert _call(platform_cloud, "GET", "/files", tokens["dev"]).status_code == 200
    assert wait_for(lambda: _audited_refusals(platform_cloud, tokens["auditor"], "files:List"), timeout=60)
