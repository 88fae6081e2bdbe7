"""Red team of issue 19 (machine access), over HTTP through the local cloud: findings written as
failing tests (see the red-team report), which pass since the fixes.

- A tenant-admin of the platform tenant (no platform-admin) took over a platform-admin API client
  by rotating its secret. Fixed: only a platform-admin manages the platform tenant's clients, and
  a rotation is judged as a grant of the client's roles.
- A binary body at the token endpoint (application/octet-stream is one of the API's binary media
  types, so API Gateway hands it base64-encoded) was a 500, before the endpoint's throttle.
  Fixed: the endpoint decodes the body itself (invalid_request when it cannot).
- GDPR erasure left the erased user's name on every API client they made (created_by). Fixed:
  no created_by on a client (who made it is in the trail, which erasure reaches).
"""

from __future__ import annotations

from functools import partial

import pytest

from tests.support.clients import new_client, token_request
from tests.support.cloud import RunningCloud, from_address
from tests.support.identity import Identity, mint_token, seed_tenant, seen

pytestmark = pytest.mark.e2e
TENANT = "rt19-a"
ADDRESS = "127.0.0.97"


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tenant(platform_cloud: RunningCloud) -> str:
    seed_tenant(platform_cloud, TENANT, access_control={"ip_whitelist": [], "mfa_required": False})
    return TENANT


_token = partial(token_request, address=ADDRESS)


def test_a_platform_tenant_admin_cannot_rotate_a_platform_admin_client(
    platform_cloud: RunningCloud, platform_admin: Identity, tenant: str
) -> None:
    platform = platform_cloud.info["platform_tenant"]
    created = new_client(
        platform_cloud, platform_admin.headers, platform, ["platform-admin"], name="fleet automation"
    )
    deputy = mint_token(platform_cloud, platform, "rt19-deputy", ["tenant-admin"])
    # the deputy may not make a platform client...
    own = platform_cloud.http(
        "POST",
        f"/tenants/{platform}/clients",
        json={"name": "mine", "roles": ["viewer"]},
        headers=_as(deputy),
    )
    assert own.status_code == 403, own.text
    # ...so must not take over the platform-admin's one
    rotated = platform_cloud.http(
        "POST", f"/tenants/{platform}/clients/{created['client_id']}/secret", json={}, headers=_as(deputy)
    )
    if rotated.status_code == 200:
        secret = rotated.json()["client_secret"]
        seen(secret)
        token = _token(platform_cloud, created["client_id"], secret)
        assert token.status_code == 200, token.text
        seen(token.json()["access_token"])
        reach = platform_cloud.http("GET", f"/tenants/{tenant}", headers=_as(token.json()["access_token"]))
        pytest.fail(
            "a platform tenant-admin (no platform-admin) rotated a platform-admin client and got its "
            f"credential: scope {token.json()['scope']!r}, GET /tenants/{tenant} -> {reach.status_code}"
        )
    assert rotated.status_code == 403, rotated.text


def test_a_binary_body_at_the_token_endpoint_is_an_oauth_error_not_a_500(
    platform_cloud: RunningCloud, tenant: str
) -> None:
    url = platform_cloud.api_url + "/oauth2/token"
    caller = from_address(ADDRESS)
    for body in (b"\xff\xfegrant_type=client_credentials", b"grant_type=client_credentials"):
        reply = caller.post(url, data=body, headers={"Content-Type": "application/octet-stream"}, timeout=30)
        assert reply.status_code == 400, f"{body!r}: {reply.status_code} {reply.text[:200]}"
        assert reply.json()["error"] == "invalid_request"


def test_gdpr_erasure_leaves_no_name_on_the_clients_the_user_made(
    platform_cloud: RunningCloud, tenant: str
) -> None:
    boss = mint_token(platform_cloud, tenant, "rt19-boss", ["tenant-admin"])
    # a stored tenant-admin besides gina: erasing her leaves the tenant administered
    for username in ("rt19-keeper", "rt19-gina"):
        created_user = platform_cloud.http(
            "POST",
            f"/tenants/{tenant}/users",
            json={"username": username, "email": f"{username}@example.com", "roles": ["tenant-admin"]},
            headers=_as(boss),
        )
        assert created_user.status_code == 201, created_user.text
        seen(created_user.json()["temporary_password"])
    gina = mint_token(platform_cloud, tenant, "rt19-gina", ["tenant-admin"])
    made = new_client(platform_cloud, _as(gina), tenant, ["viewer"], name="gina sync")
    erased = platform_cloud.http("DELETE", f"/tenants/{tenant}/gdpr/subjects/rt19-gina", headers=_as(boss))
    assert erased.status_code == 200, erased.text
    listed = platform_cloud.http("GET", f"/tenants/{tenant}/clients", headers=_as(boss))
    assert listed.status_code == 200, listed.text
    (mine,) = [c for c in listed.json()["items"] if c["client_id"] == made["client_id"]]
    assert "created_by" not in mine, "who made a client is the trail's, not the client's"
    assert "rt19-gina" not in str(mine), "the erased subject's name lives on in the clients table"


def test_held_the_partitions_own_items_and_forwarded_addresses(
    platform_cloud: RunningCloud, tenant: str
) -> None:
    """Attacks that hold (regressions): the tenant's #count and #verifier-key items are no client
    to DELETE or rotate (however encoded); X-Forwarded-For does not move a token request into a
    client's own allow-list."""
    boss = mint_token(platform_cloud, tenant, "rt19-boss", ["tenant-admin"])
    for name in ("%23count", "%23verifier-key", "%2523count", f"{tenant}_%23count"):
        gone = platform_cloud.http("DELETE", f"/tenants/{tenant}/clients/{name}", headers=_as(boss))
        assert gone.status_code in (400, 404), f"{name}: {gone.status_code} {gone.text[:200]}"
        rotated = platform_cloud.http(
            "POST", f"/tenants/{tenant}/clients/{name}/secret", json={}, headers=_as(boss)
        )
        assert rotated.status_code in (400, 404), f"{name}: {rotated.status_code} {rotated.text[:200]}"
    # made: the count and the key still work
    created = new_client(
        platform_cloud, _as(boss), tenant, ["viewer"], name="pinned", ip_whitelist=["127.0.0.97/32"]
    )
    elsewhere = from_address("127.0.0.96").post(
        platform_cloud.api_url + "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": created["client_id"],
            "client_secret": created["client_secret"],
        },
        headers={"X-Forwarded-For": ADDRESS, "X-Real-IP": ADDRESS},
        timeout=30,
    )
    assert elsewhere.status_code == 401, elsewhere.text
    here = _token(platform_cloud, created["client_id"], created["client_secret"])
    assert here.status_code == 200, here.text
    seen(here.json()["access_token"])
