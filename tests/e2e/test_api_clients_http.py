"""Machine access over HTTP through the local cloud: a tenant-admin makes an API client, a service
takes tokens with a standard OAuth 2.0 client library (authlib, both client authentication
methods) and calls the API; the client is listed without its secret, its tokens are refused once
it is deleted or expired, its rotated-away secret gets no token after the grace period; token
requests race a rotation; the RFC 6749 error shapes; machine access turned off by the policy; a
suspended tenant; no secret in any table or log; a warm token request makes no KMS call but the
token's signature."""

from __future__ import annotations

import base64
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from tenant_security.identity.client_secrets import SECRET_PATTERN
from tests.support.clients import new_client, onboarded_admin, token_request
from tests.support.cloud import RunningCloud, aws_calls_of, from_address
from tests.support.identity import Identity, new_signed_in_user, seen

TENANT, OTHER = "mach-acme", "mach-globex"
# the service's own address: its token requests count against no other test's throttle
SERVICE_ADDRESS = "127.0.0.91"
PARALLEL = 6


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_new_client = partial(new_client, name="billing sync")
# a token request by hand (client_secret_post), for the refusals a library would not send
_token = partial(token_request, address=SERVICE_ADDRESS)


def _service(client: dict[str, Any], method: str) -> OAuth2Session:
    """A service's OAuth 2.0 client (authlib), from its own address."""
    session = OAuth2Session(client["client_id"], client["client_secret"], token_endpoint_auth_method=method)
    from_address(SERVICE_ADDRESS, session)
    return session


@pytest.fixture(scope="module")
def admin(platform_cloud: RunningCloud, platform_admin: Identity) -> Identity:
    return onboarded_admin(platform_cloud, platform_admin, TENANT, "tina")


def test_a_service_takes_tokens_with_a_standard_oauth_client_and_calls_the_api(
    platform_cloud: RunningCloud, admin: Identity
) -> None:
    created = _new_client(platform_cloud, admin.headers, TENANT, ["developer", "viewer"])
    assert re.fullmatch(SECRET_PATTERN, created["client_secret"])
    assert created["client_id"].startswith(f"{TENANT}_")
    assert created["roles"] == ["developer", "viewer"]
    days = (
        time.mktime(time.strptime(created["expires_at"][:19], "%Y-%m-%dT%H:%M:%S"))
        - time.mktime(time.strptime(created["created_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    ) / 86400
    assert round(days) == 90  # the default

    metadata = platform_cloud.http("GET", "/.well-known/oauth-authorization-server").json()
    assert metadata["token_endpoint"] == platform_cloud.api_url + "/oauth2/token"
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert metadata["grant_types_supported"] == ["client_credentials"]
    jwks = platform_cloud.http("GET", "/.well-known/jwks.json").json()
    assert requests.get(metadata["jwks_uri"], timeout=30).json() == jwks  # the same keys as a person's

    for method in ("client_secret_basic", "client_secret_post"):
        service = _service(created, method)
        token = service.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        seen(token["access_token"])
        assert token["token_type"].lower() == "bearer"
        assert 0 < token["expires_in"] <= 900
        assert token["scope"] == "developer viewer"
        put = service.put(
            f"{platform_cloud.api_url}/tenants/{TENANT}/files/from-{method}.txt", data=b"machine", timeout=30
        )
        assert put.status_code in (200, 201), put.text
        listing = service.get(f"{platform_cloud.api_url}/tenants/{TENANT}/files", timeout=30)
        assert listing.status_code == 200, listing.text

    # scope narrows the token to some of the client's roles
    narrow = _service(created, "client_secret_basic")
    token = narrow.fetch_token(metadata["token_endpoint"], grant_type="client_credentials", scope="viewer")
    seen(token["access_token"])
    assert token["scope"] == "viewer"
    refused = narrow.put(f"{platform_cloud.api_url}/tenants/{TENANT}/files/no.txt", data=b"x", timeout=30)
    assert refused.status_code == 403

    listed = platform_cloud.http("GET", f"/tenants/{TENANT}/clients", headers=_as(admin.token))
    assert listed.status_code == 200
    (mine,) = [c for c in listed.json()["items"] if c["client_id"] == created["client_id"]]
    assert mine["last_used_at"] is not None
    assert "client_secret" not in listed.text
    assert created["client_secret"] not in listed.text

    # its activity is audited as the client's
    trail = _audit_actions(platform_cloud, admin, created["client_id"])
    assert "files:Write" in trail
    assert "oauth2:Token" in trail


def _audit_actions(cloud: RunningCloud, admin: Identity, client_id: str) -> set[str]:
    def actions() -> set[str] | None:
        reply = cloud.http("GET", f"/tenants/{TENANT}/audit?limit=200", headers=_as(admin.token))
        assert reply.status_code == 200, reply.text
        found = {
            r["action"]
            for r in reply.json()["items"]
            if {"type": "client", "client_id": client_id}.items() <= (r.get("actor") or {}).items()
        }
        return found if {"files:Write", "oauth2:Token"} <= found else None

    from tests.support.cloud import wait_for

    return set(wait_for(actions, timeout=60, interval=1))


def test_token_errors_are_rfc_6749s(platform_cloud: RunningCloud, admin: Identity) -> None:
    created = _new_client(platform_cloud, admin.headers, TENANT, ["viewer"])
    client_id, secret = created["client_id"], created["client_secret"]
    url = platform_cloud.api_url + "/oauth2/token"
    caller = from_address(SERVICE_ADDRESS)

    def expect(reply: requests.Response, status: int, error: str) -> None:
        assert reply.status_code == status, reply.text
        body = reply.json()
        assert body["error"] == error
        assert isinstance(body["error_description"], str)
        assert reply.headers["Cache-Control"] == "no-store"

    expect(_token(platform_cloud, client_id, secret, grant_type="password"), 400, "unsupported_grant_type")
    expect(
        caller.post(url, data={"client_id": client_id, "client_secret": secret}, timeout=30),
        400,
        "invalid_request",
    )
    expect(_token(platform_cloud, client_id, secret, scope="tenant-admin"), 400, "invalid_scope")
    expect(caller.post(url, json={"grant_type": "client_credentials"}, timeout=30), 400, "invalid_request")
    twice = caller.post(
        url,
        data=f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}&scope=viewer&scope=viewer",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    expect(twice, 400, "invalid_request")
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    both = caller.post(
        url,
        data={"grant_type": "client_credentials", "client_secret": secret},
        headers={"Authorization": basic},
        timeout=30,
    )
    expect(both, 400, "invalid_request")
    wrong = secret[:-7] + ("A" if secret[-7] != "A" else "B") + secret[-6:]
    for reply in (
        _token(platform_cloud, client_id, wrong),
        _token(platform_cloud, f"{TENANT}_{'0' * 20}", secret),
        caller.post(
            url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic " + base64.b64encode(f"{client_id}:{wrong}".encode()).decode()},
            timeout=30,
        ),
        caller.post(url, data={"grant_type": "client_credentials"}, timeout=30),
    ):
        expect(reply, 401, "invalid_client")
        assert reply.headers["WWW-Authenticate"].startswith("Basic ")
    assert _token(platform_cloud, client_id, secret).status_code == 200


def test_the_attack_matrix_of_client_tokens(
    platform_cloud: RunningCloud, platform_admin: Identity, admin: Identity
) -> None:
    other_admin = new_signed_in_user(platform_cloud, platform_admin, OTHER, "olga", ["tenant-admin"])
    viewer = _new_client(platform_cloud, admin.headers, TENANT, ["viewer"])
    admin_client = _new_client(platform_cloud, admin.headers, TENANT, ["tenant-admin"])
    token = _token(platform_cloud, viewer["client_id"], viewer["client_secret"]).json()["access_token"]
    boss = _token(platform_cloud, admin_client["client_id"], admin_client["client_secret"]).json()[
        "access_token"
    ]
    seen(token, boss)
    caller = from_address(SERVICE_ADDRESS)

    def status(method: str, path: str, bearer: str, **kwargs: Any) -> int:
        return caller.request(
            method, platform_cloud.api_url + path, headers=_as(bearer), timeout=30, **kwargs
        ).status_code

    assert status("GET", f"/tenants/{TENANT}/files", token) == 200
    # another tenant's data, with a client token of this one
    assert status("GET", f"/tenants/{OTHER}/files", token) == 403
    assert status("GET", f"/tenants/{OTHER}/users", boss) == 403
    # a role the client does not hold
    assert status("GET", f"/tenants/{TENANT}/users", token) == 403
    # another tenant's client id in the path: not found, nothing deleted
    other_client = _new_client(platform_cloud, other_admin.headers, OTHER, ["viewer"])
    assert status("DELETE", f"/tenants/{TENANT}/clients/{other_client['client_id']}", admin.token) == 404
    # a machine never mints machine credentials, nor has sessions
    assert status("POST", f"/tenants/{TENANT}/clients", boss, json={"name": "x", "roles": ["viewer"]}) == 403
    assert status("POST", f"/tenants/{TENANT}/clients/{viewer['client_id']}/secret", boss) == 403
    assert status("GET", "/auth/sessions", boss) == 403
    assert status("GET", f"/tenants/{TENANT}/users", boss) == 200  # what its role allows
    # a client's token cannot change a password
    changed = caller.post(
        platform_cloud.api_url + "/auth/password",
        json={"current_password": "x" * 12, "new_password": "y" * 16},
        headers=_as(boss),
        timeout=30,
    )
    assert changed.status_code == 401

    # expired: refused from the next request, and no new token
    platform_cloud.client("dynamodb").update_item(
        TableName="dcisionai-api-clients",
        Key={"tenant_id": {"S": TENANT}, "client_id": {"S": viewer["client_id"]}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    assert status("GET", f"/tenants/{TENANT}/files", token) == 401
    assert _token(platform_cloud, viewer["client_id"], viewer["client_secret"]).status_code == 401

    # deleted: the same
    assert status("DELETE", f"/tenants/{TENANT}/clients/{admin_client['client_id']}", admin.token) == 204
    assert status("GET", f"/tenants/{TENANT}/users", boss) == 401
    assert _token(platform_cloud, admin_client["client_id"], admin_client["client_secret"]).status_code == 401
    assert status("DELETE", f"/tenants/{TENANT}/clients/{admin_client['client_id']}", admin.token) == 404


# Long enough that a loaded machine (the whole suite on 2 cores) still asks within it
GRACE = 12


def test_a_rotated_away_secret_works_for_its_grace_period_only_and_rotations_race(
    platform_cloud: RunningCloud, admin: Identity
) -> None:
    created = _new_client(platform_cloud, admin.headers, TENANT, ["viewer"])
    client_id, old = created["client_id"], created["client_secret"]
    path = f"/tenants/{TENANT}/clients/{client_id}/secret"

    def rotate(grace: int) -> requests.Response:
        return platform_cloud.http("POST", path, json={"grace_seconds": grace}, headers=_as(admin.token))

    assert rotate(86401).status_code == 400
    # token requests with the old secret race a rotation with a grace period: every one is answered
    with ThreadPoolExecutor(PARALLEL + 1) as pool:
        racing = [pool.submit(_token, platform_cloud, client_id, old) for _ in range(PARALLEL)]
        rotation = pool.submit(rotate, GRACE)
        replies = [f.result() for f in racing]
        rotated = rotation.result()
    grace_ends = time.monotonic() + GRACE  # at the latest (the rotation began before its reply)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["client_secret"]
    seen(new)
    assert new != old
    assert re.fullmatch(SECRET_PATTERN, new)
    assert [r.status_code for r in replies] == [200] * PARALLEL
    assert _token(platform_cloud, client_id, new).status_code == 200
    assert _token(platform_cloud, client_id, old).status_code == 200  # in its grace
    time.sleep(max(0.0, grace_ends - time.monotonic()) + 0.5)
    assert _token(platform_cloud, client_id, old).status_code == 401  # after it
    assert _token(platform_cloud, client_id, new).status_code == 200

    # without grace, the old secret is void at once; of N rotations at once one lands
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(lambda _: rotate(0), range(PARALLEL)))
    codes = Counter(r.status_code for r in outcomes)
    assert set(codes) <= {200, 409}, codes
    assert codes[200] >= 1, codes
    landed = [r.json()["client_secret"] for r in outcomes if r.status_code == 200]
    seen(*landed)
    working = [s for s in [new, *landed] if _token(platform_cloud, client_id, s).status_code == 200]
    assert len(working) == 1, f"{len(working)} secrets work after {codes[200]} rotations landed"


def test_a_warm_token_request_makes_no_kms_call_but_its_signature(
    platform_cloud: RunningCloud, admin: Identity
) -> None:
    created = _new_client(platform_cloud, admin.headers, TENANT, ["viewer"])
    assert _token(platform_cloud, created["client_id"], created["client_secret"]).status_code == 200  # warm
    before = aws_calls_of(platform_cloud, "AuthApiFunction")
    for _ in range(5):
        reply = _token(platform_cloud, created["client_id"], created["client_secret"])
        assert reply.status_code == 200
        seen(reply.json()["access_token"])
    spent = aws_calls_of(platform_cloud, "AuthApiFunction") - before
    kms = {op: n for op, n in spent.items() if op.startswith("kms:")}
    # a worker that was not warm yet may unwrap the verifier key once
    assert kms.get("kms:Sign") == 5, kms
    assert kms.get("kms:Decrypt", 0) <= 1, kms
    assert set(kms) <= {"kms:Sign", "kms:Decrypt"}, kms


def test_no_client_secret_is_in_any_table_or_log(platform_cloud: RunningCloud, admin: Identity) -> None:
    created = _new_client(platform_cloud, admin.headers, TENANT, ["viewer"])
    assert _token(platform_cloud, created["client_id"], created["client_secret"]).status_code == 200
    secret = created["client_secret"]
    body = secret[len("tsk_") : len("tsk_") + 43]
    ddb = platform_cloud.client("dynamodb")
    for table in ddb.list_tables()["TableNames"]:
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            text = repr(page["Items"])
            assert secret not in text, f"a client secret is in {table}"
            assert body not in text, f"a client secret is in {table}"
    log = platform_cloud.log()
    assert f'"client_id":"{created["client_id"]}"' in log  # the function did log its token request
    assert secret not in log
    assert body not in log


def test_machine_access_turned_off_and_a_suspended_tenant(
    platform_cloud: RunningCloud, platform_admin: Identity, admin: Identity
) -> None:
    created = _new_client(platform_cloud, admin.headers, TENANT, ["viewer"])
    token = _token(platform_cloud, created["client_id"], created["client_secret"]).json()["access_token"]
    seen(token)
    caller = from_address(SERVICE_ADDRESS)
    files = platform_cloud.api_url + f"/tenants/{TENANT}/files"

    off = platform_cloud.http(
        "PATCH",
        f"/tenants/{TENANT}/policies",
        json={"access_control": {"api_clients_allowed": False}},
        headers={**_as(admin.token), "Content-Type": "application/merge-patch+json"},
    )
    assert off.status_code == 200, off.text
    time.sleep(5.5)  # every function sees a policy change within 5 s
    refused = _token(platform_cloud, created["client_id"], created["client_secret"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    assert caller.get(files, headers=_as(token), timeout=30).status_code == 403
    on = platform_cloud.http(
        "PATCH",
        f"/tenants/{TENANT}/policies",
        json={"access_control": {"api_clients_allowed": True}},
        headers={**_as(admin.token), "Content-Type": "application/merge-patch+json"},
    )
    assert on.status_code == 200, on.text
    time.sleep(5.5)
    assert caller.get(files, headers=_as(token), timeout=30).status_code == 200

    # last in the module: a suspension ends every session of the tenant, the admin's too
    suspended = platform_cloud.http(
        "POST", f"/tenants/{TENANT}/suspend", json={}, headers=_as(platform_admin.token)
    )
    assert suspended.status_code == 200, suspended.text
    try:
        time.sleep(5.5)
        assert _token(platform_cloud, created["client_id"], created["client_secret"]).status_code == 401
        assert caller.get(files, headers=_as(token), timeout=30).status_code == 403
    finally:
        back = platform_cloud.http(
            "POST", f"/tenants/{TENANT}/reinstate", json={}, headers=_as(platform_admin.token)
        )
        assert back.status_code == 200, back.text
    time.sleep(5.5)
    assert _token(platform_cloud, created["client_id"], created["client_secret"]).status_code == 200
