"""The audit trail through the local cloud: events on the bus → the audit writer Lambda →
object-locked chains; API activity recorded; reads and verification over HTTP."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tenant_security.audit.chain import record_range
from tenant_security.identity.passwords import hash_password
from tenant_security.identity.users import User, UserStore
from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import Identity, mint_token, seed_tenant
from tests.support.tenants import set_fault

BUS = "dcisionai-platform"
SOURCE = "dcisionai.tenant-security"


def _head(cloud: RunningCloud, tenant_id: str) -> int:
    item = (
        cloud.client("dynamodb")
        .get_item(TableName="dcisionai-audit-heads", Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True)
        .get("Item")
    )
    return int(item["sequence"]["N"]) if item else 0


def _records(cloud: RunningCloud, tenant_id: str) -> int:
    """How many records are in the tenant's bucket (an object holds one, or a batch)."""
    paginator = cloud.client("s3").get_paginator("list_objects_v2")
    ranges = [
        record_range(o["Key"])
        for p in paginator.paginate(Bucket=f"dcisionai-10ca1000-audit-logs-{tenant_id}", Prefix="audit/")
        for o in p.get("Contents", [])
    ]
    return sum(last - first + 1 for first, last in filter(None, ranges))


def _put(cloud: RunningCloud, details: list[dict[str, Any]]) -> None:
    events = cloud.client("events")
    for start in range(0, len(details), 10):
        reply = events.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": "User Activity",
                    "Detail": json.dumps(d),
                    "EventBusName": BUS,
                }
                for d in details[start : start + 10]
            ]
        )
        assert reply["FailedEntryCount"] == 0


def _activity(tenant_id: str, n: int) -> dict[str, Any]:
    return {
        "event_id": f"{tenant_id}-{n}",
        "tenant_id": tenant_id,
        "action": "files:Read",
        "category": "data",
        "outcome": "success",
        "user": f"user-{n % 5}",
        "source_ip": "10.0.0.1",
    }


def _get(cloud: RunningCloud, path: str, token: str, **params: Any) -> Any:
    return cloud.http("GET", path, headers={"Authorization": f"Bearer {token}"}, params=params)


def assert_concurrent_events_appear_once(
    cloud: RunningCloud, admin: Identity, prefix: str, tenant_count: int, per_tenant: int
) -> None:
    """``tenant_count`` tenants x ``per_tenant`` activity events put by 8 threads at once, in
    batches of 10: each appears exactly once, in sequence, and every chain verifies. (The 10 x 200
    soak is in benchmarks/test_audit_writer.py: a load run belongs to `make bench`.)"""
    tenants = [f"{prefix}-{i}" for i in range(tenant_count)]
    for tenant in tenants:
        seed_tenant(cloud, tenant)
    batches = [
        [_activity(t, n) for n in range(start, min(start + 10, per_tenant))]
        for t in tenants
        for start in range(0, per_tenant, 10)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda batch: _put(cloud, batch), batches))
    wait_for(lambda: all(_head(cloud, t) >= per_tenant for t in tenants), timeout=280, interval=1)
    wait_for(lambda: all(_records(cloud, t) >= per_tenant for t in tenants), timeout=30, interval=1)
    for tenant in tenants:
        report = _get(cloud, f"/tenants/{tenant}/audit/verify", admin.token, to=per_tenant).json()
        assert report["status"] == "VALID", report
        assert report["checked"] == per_tenant
        page = _get(cloud, f"/tenants/{tenant}/audit", admin.token, limit=per_tenant).json()
        assert [r["sequence"] for r in page["items"]] == list(range(1, per_tenant + 1))
        assert {r["event_id"] for r in page["items"]} == {f"{tenant}-{n}" for n in range(per_tenant)}
        assert {r["actor"]["user"] for r in page["items"]} == {f"user-{n}" for n in range(5)}  # revealed


def test_five_tenants_times_60_concurrent_events_each_appear_once_and_verify(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    assert_concurrent_events_appear_once(platform_cloud, platform_admin, "audit-load", 5, 60)


def test_a_writer_crash_is_filled_by_the_retry_and_duplicates_append_nothing(
    platform_cloud: RunningCloud,
) -> None:
    tenant = "audit-crash"
    seed_tenant(platform_cloud, tenant)
    _put(platform_cloud, [_activity(tenant, 0)])
    wait_for(lambda: _records(platform_cloud, tenant) == 1)
    set_fault(platform_cloud, "audit", tenant, "after_head")
    try:
        _put(platform_cloud, [_activity(tenant, 1)])
        wait_for(lambda: _head(platform_cloud, tenant) == 2)  # sequence 2 claimed ...
        assert _records(platform_cloud, tenant) == 1  # ... its object not written: the writer "died"
    finally:
        set_fault(platform_cloud, "audit", tenant, None)
    # the queue gives the failed event to a writer again after 31 s (AuditRetrySeconds), which fills it
    wait_for(lambda: _records(platform_cloud, tenant) == 2, timeout=90)
    assert _head(platform_cloud, tenant) == 2
    _put(platform_cloud, [_activity(tenant, 1), _activity(tenant, 0), _activity(tenant, 2)])  # 2 duplicates
    wait_for(lambda: _records(platform_cloud, tenant) == 3, timeout=60)
    assert _head(platform_cloud, tenant) == 3
    s3 = platform_cloud.client("s3")
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=f"dcisionai-10ca1000-audit-logs-{tenant}")["Contents"]
    ]
    assert [k.rsplit("/", 1)[1] for k in sorted(keys)] == [f"{n:016d}.json" for n in (1, 2, 3)]
    auditor = mint_token(platform_cloud, tenant, "aud", ["auditor"])
    report = _get(platform_cloud, f"/tenants/{tenant}/audit/verify", auditor).json()
    assert (report["status"], report["checked"]) == ("VALID", 3)


def test_api_activity_sign_in_and_denials_are_in_the_trail(platform_cloud: RunningCloud) -> None:
    tenant, other = "audit-act", "audit-other"
    for t in (tenant, other):
        seed_tenant(platform_cloud, t)
    admin = mint_token(platform_cloud, tenant, "ada", ["tenant-admin"])
    # (first: API Gateway answers a repeat from its authorizer cache, which raises no alert)
    assert _get(platform_cloud, f"/tenants/{other}/users", admin).status_code == 403  # cross-tenant
    assert _get(platform_cloud, f"/tenants/{tenant}/users", admin).status_code == 200
    UserStore(platform_cloud.client("dynamodb"), "dcisionai-users").create(
        User(
            tenant_id=tenant,
            username="nina",
            email="n@x.io",
            roles=["viewer"],
            password_hash=hash_password("her own password"),
        )
    )
    # a wrong password for an account is recorded per attempt, in the tenant's trail (an unknown
    # account's refusals are counted per address and minute instead)
    login = platform_cloud.http(
        "POST", "/auth/login", json={"tenant_id": tenant, "username": "nina", "password": "wrong-password"}
    )
    assert login.status_code == 401
    auditor = mint_token(platform_cloud, tenant, "aud", ["auditor"])

    def recorded() -> dict[str, dict[str, Any]] | None:
        items = _get(platform_cloud, f"/tenants/{tenant}/audit", auditor, limit=200).json()["items"]
        by_action = {r["action"]: r for r in items}
        wanted = ("users:List", "security:cross_tenant_access", "auth:Login")
        return by_action if all(a in by_action for a in wanted) else None

    by_action = wait_for(recorded, timeout=60, interval=1)
    listed = by_action["users:List"]
    assert (listed["outcome"], listed["status"], listed["actor"]["user"]) == ("success", 200, "ada")
    assert listed["source_ip"] == "127.0.0.1"
    alert = by_action["security:cross_tenant_access"]
    assert alert["details"]["target_tenant"] == other
    assert (by_action["auth:Login"]["outcome"], by_action["auth:Login"]["reason"]) == (
        "failure",
        "unauthorized",
    )
    viewer = mint_token(platform_cloud, tenant, "vic", ["viewer"])
    assert _get(platform_cloud, f"/tenants/{tenant}/audit", viewer).status_code == 403
    assert _get(platform_cloud, f"/tenants/{other}/audit", auditor).status_code == 403


def test_audit_queries_refuse_bad_input(platform_cloud: RunningCloud) -> None:
    tenant = "audit-input"
    seed_tenant(platform_cloud, tenant)
    auditor = mint_token(platform_cloud, tenant, "aud", ["auditor"])
    path = f"/tenants/{tenant}/audit"
    for params in (
        {"limit": "0"},
        {"limit": "abc"},
        {"limit": "100000"},
        {"from": "yesterday"},
        {"next": "not-a-token"},
        {"actor": "'; DROP TABLE users; --"},
        {"action": "x" * 500},
        # red team B: valid times that UTC cannot hold were a 500
        {"from": "0001-01-01T00:00:00+01:00"},
        {"to": "9999-12-31T23:59:59-01:00"},
    ):
        reply = _get(platform_cloud, path, auditor, **params)
        assert reply.status_code == 400, (params, reply.text)
        assert reply.json()["error"] in ("validation_error", "bad_request"), reply.text
    for params in ({"from": "0"}, {"from": "5", "to": "2"}, {"to": "-1"}):
        assert _get(platform_cloud, f"{path}/verify", auditor, **params).status_code == 400, params
