"""GDPR over HTTP: a subject's export (profile, sessions, audit entries) and erasure (user removed,
their PII key destroyed, the trail still verifying)."""

from __future__ import annotations

from typing import Any

from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import mint_token, seed_tenant

TENANT = "gdpr-co"


def _call(cloud: RunningCloud, method: str, path: str, token: str, **kwargs: Any) -> Any:
    return cloud.http(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def test_export_then_erase_a_subject(platform_cloud: RunningCloud) -> None:
    seed_tenant(platform_cloud, TENANT)
    admin = mint_token(platform_cloud, TENANT, "ada", ["tenant-admin"])
    created = _call(
        platform_cloud,
        "POST",
        f"/tenants/{TENANT}/users",
        admin,
        json={"username": "eve", "email": "eve@example.com", "roles": ["viewer"]},
    )
    assert created.status_code == 201, created.text
    eve = mint_token(platform_cloud, TENANT, "eve", ["viewer"])
    assert _call(platform_cloud, "GET", f"/tenants/{TENANT}/users", eve).status_code == 403  # eve acts
    officer = mint_token(platform_cloud, TENANT, "sam", ["security-admin"])
    auditor = mint_token(platform_cloud, TENANT, "aud", ["auditor"])

    def recorded() -> bool:
        items = _call(
            platform_cloud, "GET", f"/tenants/{TENANT}/audit", auditor, params={"limit": 200}
        ).json()
        actions = {(r["action"], r["actor"]["user"]) for r in items["items"]}
        return {("users:Create", "ada"), ("security:permission_denied", "eve")} <= actions

    wait_for(recorded, timeout=60, interval=2)
    reply = _call(platform_cloud, "GET", f"/tenants/{TENANT}/gdpr/subjects/eve", officer)
    assert reply.status_code == 200, reply.text
    exported = reply.json()
    about = {(r["action"], r["actor"]["user"]) for r in exported["audit"]["items"]}
    assert {("users:Create", "ada"), ("security:permission_denied", "eve")} <= about
    assert all("eve" in (r["actor"]["user"], r["target"]["user"]) for r in exported["audit"]["items"])
    assert exported["profile"]["email"] == "eve@example.com"
    assert exported["profile"]["roles"] == ["viewer"]
    assert len(exported["sessions"]) == 1
    made = next(r for r in exported["audit"]["items"] if r["action"] == "users:Create")
    assert made["target"] == {"user": "eve", "email": "eve@example.com"}

    erased = _call(platform_cloud, "DELETE", f"/tenants/{TENANT}/gdpr/subjects/eve", officer)
    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "tenant_id": TENANT,
        "subject": "eve",
        "user_removed": True,
        "sessions_revoked": 1,
        "pii_key_destroyed": True,
    }
    assert _call(platform_cloud, "POST", "/auth/logout", eve).status_code == 401  # her session is gone
    trail = _call(platform_cloud, "GET", f"/tenants/{TENANT}/audit", auditor, params={"limit": 200}).json()
    creation = next(r for r in trail["items"] if r["action"] == "users:Create")
    assert creation["target"] == {"user": "[erased]", "email": "[erased]"}
    assert creation["actor"]["user"] == "ada"  # another subject: untouched
    report = _call(platform_cloud, "GET", f"/tenants/{TENANT}/audit/verify", auditor).json()
    assert report["status"] == "VALID", report
    users = _call(platform_cloud, "GET", f"/tenants/{TENANT}/users", admin).json()["items"]
    assert "eve" not in {u["username"] for u in users}


def test_subject_routes_are_for_the_security_admin_and_refuse_bad_names(platform_cloud: RunningCloud) -> None:
    tenant = "gdpr-guard"
    seed_tenant(platform_cloud, tenant)
    viewer = mint_token(platform_cloud, tenant, "vic", ["viewer"])
    officer = mint_token(platform_cloud, tenant, "sam", ["security-admin"])
    assert _call(platform_cloud, "GET", f"/tenants/{tenant}/gdpr/subjects/vic", viewer).status_code == 403
    assert _call(platform_cloud, "DELETE", f"/tenants/{tenant}/gdpr/subjects/vic", viewer).status_code == 403
    assert (
        _call(platform_cloud, "GET", f"/tenants/{tenant}/gdpr/subjects/nobody-here", officer).status_code
        == 404
    )
    assert (
        _call(platform_cloud, "GET", f"/tenants/{tenant}/gdpr/subjects/%27%3B%20DROP", officer).status_code
        == 400
    )
    assert _call(platform_cloud, "GET", "/tenants/gdpr-co/gdpr/subjects/eve", officer).status_code == 403
