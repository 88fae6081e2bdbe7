"""User administration over HTTP: roles, deletion, revoking a tenant's sessions."""

from __future__ import annotations

import pytest

from tenant_security.identity.sessions import SessionStore
from tests.support.cloud import RunningCloud
from tests.support.identity import (
    Identity,
    assert_no_secrets_logged,
    create_user,
    first_sign_in,
    mint_token,
    seed_tenant,
)

pytestmark = pytest.mark.e2e
TENANT = "admin-ops"


@pytest.fixture(scope="module")
def tenant_admin(platform_cloud: RunningCloud, platform_admin: Identity) -> Identity:
    seed_tenant(platform_cloud, TENANT)
    password = create_user(platform_cloud, platform_admin, TENANT, "ivy", ["tenant-admin"])
    return first_sign_in(platform_cloud, TENANT, "ivy", password)


def test_roles_change_and_the_users_sessions_end(
    platform_cloud: RunningCloud, tenant_admin: Identity
) -> None:
    create_user(platform_cloud, tenant_admin, TENANT, "jack", ["viewer"])
    mint_token(platform_cloud, TENANT, "jack", ["viewer"])
    sessions = SessionStore(platform_cloud.client("dynamodb"), "dcisionai-sessions", "dcisionai-counters")
    assert len(sessions.list_live(TENANT, "jack")) == 1
    reply = platform_cloud.http(
        "PUT",
        f"/tenants/{TENANT}/users/jack/roles",
        headers=tenant_admin.headers,
        json={"roles": ["developer", "auditor"]},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["roles"] == ["auditor", "developer"]
    assert sessions.list_live(TENANT, "jack") == []  # the new roles apply at the next sign-in


@pytest.mark.parametrize(
    ("roles", "status", "code"),
    [
        (["wizard"], 400, "validation_error"),
        (["platform-admin"], 403, "forbidden"),
        ([], 400, "validation_error"),
    ],
)
def test_roles_are_checked(
    platform_cloud: RunningCloud, tenant_admin: Identity, roles: list[str], status: int, code: str
) -> None:
    reply = platform_cloud.http(
        "POST",
        f"/tenants/{TENANT}/users",
        headers=tenant_admin.headers,
        json={"username": "kim", "email": "kim@x.io", "roles": roles},
    )
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == code


def test_duplicate_users_are_409(platform_cloud: RunningCloud, tenant_admin: Identity) -> None:
    create_user(platform_cloud, tenant_admin, TENANT, "lee", ["viewer"])
    again = platform_cloud.http(
        "POST",
        f"/tenants/{TENANT}/users",
        headers=tenant_admin.headers,
        json={"username": "lee", "email": "lee@x.io", "roles": ["viewer"]},
    )
    assert again.status_code == 409


def test_deleting_a_user(platform_cloud: RunningCloud, tenant_admin: Identity) -> None:
    create_user(platform_cloud, tenant_admin, TENANT, "mo", ["viewer"])
    assert (
        platform_cloud.http("DELETE", f"/tenants/{TENANT}/users/mo", headers=tenant_admin.headers).status_code
        == 204
    )
    assert (
        platform_cloud.http("DELETE", f"/tenants/{TENANT}/users/mo", headers=tenant_admin.headers).status_code
        == 404
    )
    names = [
        u["username"]
        for u in platform_cloud.http("GET", f"/tenants/{TENANT}/users", headers=tenant_admin.headers).json()[
            "items"
        ]
    ]
    assert "mo" not in names
    assert (
        platform_cloud.http(
            "DELETE", f"/tenants/{TENANT}/users/ivy", headers=tenant_admin.headers
        ).status_code
        == 409
    )


def test_a_security_admin_revokes_every_session_of_the_tenant(
    platform_cloud: RunningCloud, tenant_admin: Identity
) -> None:
    victim = mint_token(platform_cloud, TENANT, "nia", ["tenant-admin"])
    assert (
        platform_cloud.http(
            "GET", f"/tenants/{TENANT}/users", headers={"Authorization": f"Bearer {victim}"}
        ).status_code
        == 200
    )
    security = mint_token(platform_cloud, TENANT, "sec", ["security-admin"])
    reply = platform_cloud.http(
        "DELETE", f"/tenants/{TENANT}/sessions", headers={"Authorization": f"Bearer {security}"}
    )
    assert reply.status_code == 200
    assert reply.json()["revoked"] >= 2
    after = platform_cloud.http(
        "GET", f"/tenants/{TENANT}/users", headers={"Authorization": f"Bearer {victim}"}
    )
    assert after.status_code == 401


def test_the_last_tenant_admin_is_not_demoted_nor_deleted_even_by_a_platform_admin(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    """Red team B: the last tenant-admin demoted itself, and a platform-admin deleted the owner."""
    tenant = "admin-last"
    seed_tenant(platform_cloud, tenant)
    create_user(platform_cloud, platform_admin, tenant, "owner", ["tenant-admin"])
    owner = mint_token(platform_cloud, tenant, "owner", ["tenant-admin"])
    demoted = platform_cloud.http(
        "PUT",
        f"/tenants/{tenant}/users/owner/roles",
        headers={"Authorization": f"Bearer {owner}"},
        json={"roles": ["viewer"]},
    )
    assert (demoted.status_code, demoted.json()["error"]) == (409, "last_tenant_admin")
    deleted = platform_cloud.http("DELETE", f"/tenants/{tenant}/users/owner", headers=platform_admin.headers)
    assert (deleted.status_code, deleted.json()["error"]) == (409, "last_tenant_admin")
    create_user(platform_cloud, platform_admin, tenant, "deputy", ["tenant-admin"])
    assert (
        platform_cloud.http(
            "DELETE", f"/tenants/{tenant}/users/owner", headers=platform_admin.headers
        ).status_code
        == 204
    )


def test_no_secret_reached_the_logs(platform_cloud: RunningCloud, tenant_admin: Identity) -> None:
    assert_no_secrets_logged(platform_cloud)
