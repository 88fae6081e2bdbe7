"""Custom roles over HTTP through the local cloud: define one, grant it, its holder can use exactly
the role's routes; deleting it is refused while it is held; parallel grants racing a deletion;
another tenant's admin is refused on our roles routes; and `tenant-security roles ...`."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tenant_security.authz.routes import rule_for
from tenant_security_tools import cli
from tenant_security_tools.client import Session, save_session
from tests.support.cloud import RunningCloud, warm_workers
from tests.support.identity import Identity, create_user, first_sign_in, mint_token, seed_tenant

pytestmark = pytest.mark.e2e
TENANT, RIVAL = "roles-ops", "roles-rival"


@pytest.fixture(scope="module")
def admin(platform_cloud: RunningCloud, platform_admin: Identity) -> Identity:
    seed_tenant(platform_cloud, TENANT)
    seed_tenant(platform_cloud, RIVAL)
    return first_sign_in(
        platform_cloud,
        TENANT,
        "ro",
        create_user(platform_cloud, platform_admin, TENANT, "ro", ["tenant-admin"]),
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_custom_role_grants_exactly_its_routes(platform_cloud: RunningCloud, admin: Identity) -> None:
    put = platform_cloud.http(
        "PUT",
        f"/tenants/{TENANT}/roles/user-reader",
        headers=admin.headers,
        json={"permissions": ["users:List"]},
    )
    assert put.status_code == 200, put.text
    assert put.json()["permissions"] == ["users:List"]
    listed = platform_cloud.http("GET", f"/tenants/{TENANT}/roles", headers=admin.headers)
    assert {r["name"] for r in listed.json()["items"]} >= {"tenant-admin", "viewer", "user-reader"}
    create_user(platform_cloud, admin, TENANT, "una", ["user-reader"])
    token = mint_token(platform_cloud, TENANT, "una", ["user-reader"])
    assert platform_cloud.http("GET", f"/tenants/{TENANT}/users", headers=_bearer(token)).status_code == 200
    for method, path in (
        ("GET", f"/tenants/{TENANT}/roles"),
        ("GET", f"/tenants/{TENANT}/quotas"),
        ("PUT", f"/tenants/{TENANT}/roles/more"),
        ("DELETE", f"/tenants/{TENANT}/users/ro"),
    ):
        reply = platform_cloud.http(method, path, headers=_bearer(token), json={"permissions": ["users:*"]})
        assert reply.status_code == 403, (method, path, reply.text)
    # deleting it is refused while una holds it, naming her
    refused = platform_cloud.http("DELETE", f"/tenants/{TENANT}/roles/user-reader", headers=admin.headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "role_in_use")
    assert "una" in refused.json()["message"]
    # narrowed: within 5 s (on this worker at once) the holder loses the route
    platform_cloud.http(
        "PUT",
        f"/tenants/{TENANT}/roles/user-reader",
        headers=admin.headers,
        json={"permissions": ["files:List"]},
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = platform_cloud.http("GET", f"/tenants/{TENANT}/users", headers=_bearer(token)).status_code
        if status == 403:
            break
        time.sleep(0.5)
    assert status == 403


def test_a_role_beyond_the_caller_or_the_tenant_is_refused(
    platform_cloud: RunningCloud, admin: Identity
) -> None:
    cases = [
        ("viewer", ["files:Read"], 409, "builtin_role"),
        ("typo", ["files:Raed"], 400, "validation_error"),
        ("platform", ["tenants:Delete"], 400, "validation_error"),
        ("Bad_Name", ["files:Read"], 400, "validation_error"),
        ("empty", [], 400, "validation_error"),
    ]
    for name, permissions, status, code in cases:
        reply = platform_cloud.http(
            "PUT", f"/tenants/{TENANT}/roles/{name}", headers=admin.headers, json={"permissions": permissions}
        )
        assert (reply.status_code, reply.json()["error"]) == (status, code), (name, reply.text)
    # a custom-role admin holding roles:Write but not secrets:Read cannot make a role with it
    platform_cloud.http(
        "PUT",
        f"/tenants/{TENANT}/roles/role-admin",
        headers=admin.headers,
        json={"permissions": ["roles:*", "secrets:Write"]},
    )
    token = mint_token(platform_cloud, TENANT, "rolf", ["role-admin"])
    beyond = platform_cloud.http(
        "PUT", f"/tenants/{TENANT}/roles/peek", headers=_bearer(token), json={"permissions": ["secrets:*"]}
    )
    assert beyond.status_code == 403, beyond.text
    within = platform_cloud.http(
        "PUT",
        f"/tenants/{TENANT}/roles/put-only",
        headers=_bearer(token),
        json={"permissions": ["secrets:Write"]},
    )
    assert within.status_code == 200, within.text


def test_another_tenants_admin_is_refused_on_our_roles(platform_cloud: RunningCloud, admin: Identity) -> None:
    rival = mint_token(platform_cloud, RIVAL, "mallory", ["tenant-admin"])
    for method, path in (
        ("GET", f"/tenants/{TENANT}/roles"),
        ("PUT", f"/tenants/{TENANT}/roles/evil"),
        ("DELETE", f"/tenants/{TENANT}/roles/role-admin"),
    ):
        reply = platform_cloud.http(method, path, headers=_bearer(rival), json={"permissions": ["*"]})
        assert reply.status_code == 403, (method, path)
    names = {
        r["name"]
        for r in platform_cloud.http("GET", f"/tenants/{TENANT}/roles", headers=admin.headers).json()["items"]
    }
    assert "evil" not in names
    assert "role-admin" in names
    assert rule_for("PUT", "/tenants/{tenant_id}/roles/{role}") is not None


def _warm_workers(cloud: RunningCloud, admin: Identity, count: int) -> None:
    """``count`` warm admin-API workers (tests/support/cloud.py warm_workers)."""
    warm_workers(lambda: cloud.http("GET", f"/tenants/{TENANT}/roles", headers=admin.headers), count)


def test_parallel_grants_racing_a_deletion(platform_cloud: RunningCloud, admin: Identity) -> None:
    users = [f"par{i}" for i in range(5)]
    for name in users:
        create_user(platform_cloud, admin, TENANT, name, ["viewer"])
    reply = platform_cloud.http(
        "PUT", f"/tenants/{TENANT}/roles/racer", headers=admin.headers, json={"permissions": ["files:Read"]}
    )
    assert reply.status_code == 200
    _warm_workers(platform_cloud, admin, len(users) + 1)
    start = threading.Barrier(len(users) + 1)

    def grant(name: str) -> int:
        start.wait()
        return platform_cloud.http(
            "PUT", f"/tenants/{TENANT}/users/{name}/roles", headers=admin.headers, json={"roles": ["racer"]}
        ).status_code

    def delete() -> int:
        start.wait()
        return platform_cloud.http(
            "DELETE", f"/tenants/{TENANT}/roles/racer", headers=admin.headers
        ).status_code

    with ThreadPoolExecutor(len(users) + 1) as pool:
        grants = [pool.submit(grant, n) for n in users]
        deletion = pool.submit(delete)
        statuses = [g.result() for g in grants]
        deleted = deletion.result()
    assert set(statuses) <= {200, 400}, statuses
    assert deleted in (204, 409)
    roles = {
        r["name"]
        for r in platform_cloud.http("GET", f"/tenants/{TENANT}/roles", headers=admin.headers).json()["items"]
    }
    held = {
        u["username"]
        for u in platform_cloud.http("GET", f"/tenants/{TENANT}/users", headers=admin.headers).json()["items"]
        if "racer" in u["roles"]
    }
    if deleted == 204:
        assert "racer" not in roles
        assert held == set()  # nobody holds a deleted role
        assert 200 not in statuses
    else:
        assert "racer" in roles
        assert held == {n for n, s in zip(users, statuses, strict=True) if s == 200} != set()


def test_the_cli_lists_sets_and_deletes_roles(
    platform_cloud: RunningCloud,
    admin: Identity,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "config" / "session.json"
    monkeypatch.setenv("TENANT_SECURITY_SESSION", str(path))
    save_session(
        Session(platform_cloud.api_url, TENANT, admin.username, admin.token, time.time() + 600), path
    )
    assert cli.main(["roles", "set", "cli-role", "-p", "files:Read", "-p", "records:*"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["permissions"] == ["files:Read", "records:Read", "records:Write"]
    assert cli.main(["roles", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert "cli-role" in {r["name"] for r in listed["items"]}
    assert cli.main(["roles", "set", "viewer", "-p", "files:Read"]) == 1  # a built-in name: 409
    assert "builtin_role" in capsys.readouterr().err
    assert cli.main(["roles", "delete", "cli-role"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {"deleted": "cli-role"}
    assert cli.main(["roles", "delete", "cli-role"]) == 6  # gone: 404
    assert cli.main(["roles", "list", "--tenant", RIVAL]) == 5  # another tenant's: 403
