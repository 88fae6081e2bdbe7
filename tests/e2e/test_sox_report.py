"""Compliance reports over HTTP: a planted segregation-of-duties conflict is non_compliant and
named; a fresh tenant has insufficient evidence; the HTML page shows the status and a chart; GDPR
and ISO 27001 reports rest on the onboarded tenant's real keys and buckets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import Identity, mint_token, seed_tenant
from tests.support.tenants import finished_execution, now, request_body


def _quarter() -> str:
    now = datetime.now(UTC)
    return f"{now.year}-Q{(now.month - 1) // 3 + 1}"


def _call(cloud: RunningCloud, path: str, token: str, **params: Any) -> Any:
    return cloud.http("GET", path, headers={"Authorization": f"Bearer {token}"}, params=params)


def test_a_planted_conflict_is_non_compliant_and_names_the_user(platform_cloud: RunningCloud) -> None:
    tenant = "sox-conflict"
    seed_tenant(platform_cloud, tenant)
    admin = mint_token(platform_cloud, tenant, "ada", ["tenant-admin"])
    created = platform_cloud.http(
        "POST",
        f"/tenants/{tenant}/users",
        json={"username": "mallory", "email": "m@example.com", "roles": ["security-admin", "auditor"]},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert created.status_code == 201, created.text
    auditor = mint_token(platform_cloud, tenant, "aud", ["auditor"])
    wait_for(lambda: _call(platform_cloud, f"/tenants/{tenant}/audit", auditor).json()["items"], timeout=60)
    reply = _call(platform_cloud, f"/tenants/{tenant}/reports/sox", auditor, period=_quarter())
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["status"] == "non_compliant"
    sod = next(c for c in report["checks"] if c["id"] == "segregation_of_duties")
    assert {"user": "mallory", "conflicting_roles": ["auditor", "security-admin"]} in sod["findings"]
    privileged = next(c for c in report["checks"] if c["id"] == "privileged_actions")
    creation = next(a for a in privileged["evidence"]["by_actor"] if a["action"] == "users:Create")
    assert creation["user"] == "ada"
    assert creation["audit_sequences"]
    page = _call(platform_cloud, f"/tenants/{tenant}/reports/sox", auditor, period=_quarter(), format="html")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "non_compliant" in page.text
    assert "mallory" in page.text
    assert "<svg" in page.text


def test_a_fresh_tenant_has_insufficient_evidence(platform_cloud: RunningCloud) -> None:
    tenant = "sox-fresh"
    seed_tenant(platform_cloud, tenant)
    auditor = mint_token(platform_cloud, tenant, "aud", ["auditor"])
    report = _call(platform_cloud, f"/tenants/{tenant}/reports/sox", auditor, period=_quarter()).json()
    assert report["status"] == "insufficient_evidence"
    # red team B: the years at datetime's edges were a 500
    for bad in (
        "2026-Q5",
        "last-year",
        "'; DROP TABLE users; --",
        "9999-Q4",
        "9999-12",
        "0000-01",
        "1969-12",
    ):
        assert _call(platform_cloud, f"/tenants/{tenant}/reports/sox", auditor, period=bad).status_code == 400
    assert (
        _call(platform_cloud, f"/tenants/{tenant}/reports/sox", auditor).status_code == 400
    )  # period required
    viewer = mint_token(platform_cloud, tenant, "vic", ["viewer"])
    assert (
        _call(platform_cloud, f"/tenants/{tenant}/reports/sox", viewer, period=_quarter()).status_code == 403
    )


def test_gdpr_and_iso27001_reports_rest_on_the_tenants_real_keys_and_buckets(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    tenant = "frameworks"
    body = request_body(tenant, "schema", security_policies={"access_control": {"ip_whitelist": []}})
    started = now()
    assert (
        platform_cloud.http("POST", "/tenants", json=body, headers=platform_admin.headers).status_code == 202
    )
    assert finished_execution(platform_cloud, "onboarding", tenant, after=started)["status"] == "SUCCEEDED"
    auditor = mint_token(platform_cloud, tenant, "aud", ["auditor"])
    wait_for(lambda: _call(platform_cloud, f"/tenants/{tenant}/audit", auditor).json()["items"], timeout=60)
    data_key = platform_cloud.client("kms").describe_key(KeyId=f"alias/dcisionai-tenant-{tenant}-data")
    for framework, controls in (("gdpr", {"Art. 32", "Art. 44"}), ("iso27001", {"A.8.24", "A.5.19"})):
        reply = _call(platform_cloud, f"/tenants/{tenant}/reports/{framework}", auditor, period=_quarter())
        assert reply.status_code == 200, reply.text
        report = reply.json()
        assert controls <= {c["id"] for c in report["controls"]}
        checks = {c["id"]: c for c in report["checks"]}
        for passed in ("encryption_at_rest", "key_rotation", "data_locality"):
            assert checks[passed]["status"] == "pass", checks[passed]
        assert checks["encryption_at_rest"]["evidence"]["data_key"]["arn"] == data_key["KeyMetadata"]["Arn"]
        assert checks["data_locality"]["evidence"]["key_replicas"]["data"] == ["us-west-2"]
        # the onboarding request allowed every source address: found, and the report says so
        assert checks["network_access"]["status"] == "fail"
        assert report["status"] == "non_compliant"
    assert checks["tenant_separation"]["evidence"]["database_isolation"] == "schema"  # the ISO report's
    page = _call(
        platform_cloud, f"/tenants/{tenant}/reports/iso27001", auditor, period=_quarter(), format="html"
    )
    assert "A.8.24" in page.text
    assert page.text.startswith("<!doctype html>")
    assert (
        _call(platform_cloud, f"/tenants/{tenant}/reports/hipaa", auditor, period=_quarter()).status_code
        == 404
    )
    viewer = mint_token(platform_cloud, tenant, "vic", ["viewer"])
    assert (
        _call(platform_cloud, f"/tenants/{tenant}/reports/gdpr", viewer, period=_quarter()).status_code == 403
    )
    other = mint_token(platform_cloud, "sox-fresh", "aud", ["auditor"])
    assert (
        _call(platform_cloud, f"/tenants/{tenant}/reports/gdpr", other, period=_quarter()).status_code == 403
    )


def test_the_platform_tenants_reports_read_the_platform_master_key(platform_cloud: RunningCloud) -> None:
    # Regression (issue 16, item 7): the platform tenant's keys are the platform master key; the
    # compliance role could read the state only of keys aliased alias/<prefix>-tenant-*, so KMS
    # answered AccessDenied and the report was a 500 (the local cloud enforces IAM per function).
    auditor = mint_token(platform_cloud, "platform", "aud", ["auditor"])
    master = platform_cloud.client("kms").describe_key(KeyId="alias/dcisionai-platform-master")["KeyMetadata"]
    for framework in ("gdpr", "iso27001"):
        reply = _call(platform_cloud, f"/tenants/platform/reports/{framework}", auditor, period=_quarter())
        assert reply.status_code == 200, reply.text
        checks = {c["id"]: c for c in reply.json()["checks"]}
        assert checks["encryption_at_rest"]["evidence"]["data_key"]["arn"] == master["Arn"]
        assert checks["key_rotation"]["status"] == "pass", checks["key_rotation"]
