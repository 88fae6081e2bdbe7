"""Red team (issue 18), over HTTP through the local cloud: two attacks that hold (regressions).

- An encoded slash in ``{username}`` does not run another route than the one authorised: a custom
  role holding users:Delete (not sessions:Revoke) cannot end another user's sessions with
  ``DELETE /tenants/{t}/users/bob%2Fsessions`` (API Gateway matches on the decoded path; the
  resolver itself does not cross-check: tests/security/test_redteam18_encoded_slash_route.py).
- The attack matrix's 500s (POST /tenants as auditor and tenant-admin, GET .../policies/history
  from another tenant) were gateway 5xx under load: asked one at a time, each is its 403.
"""

from __future__ import annotations

import pytest

from tests.support.cloud import RunningCloud
from tests.support.identity import mint_token, seed_tenant

pytestmark = pytest.mark.e2e
TENANT, OTHER = "rt18-acme", "rt18-globex"


@pytest.fixture(scope="module")
def tenants(platform_cloud: RunningCloud) -> None:
    seed_tenant(platform_cloud, TENANT)
    seed_tenant(platform_cloud, OTHER)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_encoded_slash_in_a_username_does_not_reach_the_sessions_route(
    platform_cloud: RunningCloud, tenants: None
) -> None:
    admin = mint_token(platform_cloud, TENANT, "rt-admin", ["tenant-admin"])
    defined = platform_cloud.http(
        "PUT",
        f"/tenants/{TENANT}/roles/offboarder",
        json={"permissions": ["users:Delete", "users:List"]},
        headers=_auth(admin),
    )
    assert defined.status_code == 200, defined.text
    created = platform_cloud.http(
        "POST",
        f"/tenants/{TENANT}/users",
        json={"username": "rt-bob", "email": "bob@example.com", "roles": ["viewer"]},
        headers=_auth(admin),
    )
    assert created.status_code == 201, created.text
    bob = mint_token(platform_cloud, TENANT, "rt-bob", ["viewer"])
    assert platform_cloud.http("GET", "/auth/sessions", headers=_auth(bob)).status_code == 200
    operator = mint_token(platform_cloud, TENANT, "rt-op", ["offboarder"])
    # the control: the route itself is refused to the role
    direct = platform_cloud.http(
        "DELETE", f"/tenants/{TENANT}/users/rt-bob/sessions", headers=_auth(operator)
    )
    assert direct.status_code == 403, direct.text
    sneaked = platform_cloud.http(
        "DELETE", f"/tenants/{TENANT}/users/rt-bob%2Fsessions", headers=_auth(operator)
    )
    still = platform_cloud.http("GET", "/auth/sessions", headers=_auth(bob))
    assert still.status_code == 200, (
        f"bob's session was ended by a users:Delete-only role: DELETE .../rt-bob%2Fsessions answered "
        f"{sneaked.status_code} {sneaked.text[:200]}; bob now gets {still.status_code}"
    )


@pytest.mark.parametrize(
    ("method", "path", "tenant", "role"),
    [
        ("POST", "/tenants", TENANT, "auditor"),
        ("POST", "/tenants", TENANT, "tenant-admin"),
        ("GET", f"/tenants/{TENANT}/policies/history", OTHER, "developer"),
    ],
)
def test_the_matrix_cells_that_answered_500_are_403_one_at_a_time(
    platform_cloud: RunningCloud, tenants: None, method: str, path: str, tenant: str, role: str
) -> None:
    statuses = []
    for attempt in range(3):
        token = mint_token(platform_cloud, tenant, f"rt-{role}-{attempt}", [role])
        reply = platform_cloud.http(
            method,
            path,
            headers={**_auth(token), "Content-Type": "application/json"},
            data=b"{not json" if method == "POST" else None,
        )
        statuses.append((reply.status_code, reply.text[:120]))
    assert all(status == 403 for status, _ in statuses), statuses
