"""Sessions over HTTP through the local cloud: a user signs in from two devices (two addresses,
two User-Agents), lists both, ends one (whose token is refused at its next request); N parallel
ends of one session end it once; a security-admin lists the tenant's sessions in pages and ends
one user's; a platform-admin does so in a suspended tenant; each step is in the trail, and the
user agents are in no log."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.support.cloud import RunningCloud, from_address, wait_for, warm_workers
from tests.support.identity import (
    Identity,
    challenge_for,
    create_user,
    first_sign_in,
    mint_token,
    new_signed_in_user,
    seen,
)

TENANT = "sess-acme"
PARALLEL = 8


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sign_in_with_a_backup_code(
    cloud: RunningCloud, user: Identity, code: str, agent: str, client: Any = requests
) -> dict[str, Any]:
    """Password, then a backup code (TOTP steps are each accepted once), from ``client``."""
    reply = client.post(
        cloud.api_url + "/auth/mfa/verify",
        json={"challenge_token": challenge_for(cloud, user), "backup_code": code},
        headers={"User-Agent": agent},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    seen(reply.json()["access_token"])
    return dict(reply.json())


def _warm_workers(cloud: RunningCloud, token: str, count: int) -> None:
    """``count`` warm auth-API workers (tests/support/cloud.py warm_workers)."""
    warm_workers(lambda: _mine(cloud, token), count)


def _mine(cloud: RunningCloud, token: str) -> list[dict[str, Any]]:
    reply = cloud.http("GET", "/auth/sessions", headers=_as(token))
    assert reply.status_code == 200, reply.text
    return list(reply.json()["items"])


def test_a_user_sees_and_ends_their_own_sessions_and_an_admin_ends_a_users(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    sara = new_signed_in_user(platform_cloud, platform_admin, TENANT, "sara", ["security-admin"])
    uma = first_sign_in(
        platform_cloud, TENANT, "uma", create_user(platform_cloud, platform_admin, TENANT, "uma", ["viewer"])
    )
    laptop_agent, phone_agent = (f"{d}/{secrets.token_hex(6)}" for d in ("Laptop", "Phone"))
    laptop = _sign_in_with_a_backup_code(platform_cloud, uma, uma.backup_codes[0], laptop_agent)
    phone = _sign_in_with_a_backup_code(
        platform_cloud, uma, uma.backup_codes[1], phone_agent, from_address("127.0.0.23")
    )

    listed = {s["session_id"]: s for s in _mine(platform_cloud, laptop["access_token"])}
    assert {laptop["session_id"], phone["session_id"]} <= set(listed)
    assert len(listed) == 3  # and the session of the first sign-in's new password
    here, there = listed[laptop["session_id"]], listed[phone["session_id"]]
    assert (here["user_agent"], here["source_ip"], here["current"]) == (laptop_agent, "127.0.0.1", True)
    assert (there["user_agent"], there["source_ip"], there["current"]) == (phone_agent, "127.0.0.23", False)
    assert {s["username"] for s in listed.values()} == {"uma"}

    # ending the phone's session: its token is refused at its very next request
    phone_sid = phone["session_id"]
    ended = platform_cloud.http("DELETE", f"/auth/sessions/{phone_sid}", headers=_as(laptop["access_token"]))
    assert ended.status_code == 204, ended.text
    assert platform_cloud.http("GET", "/auth/sessions", headers=_as(phone["access_token"])).status_code == 401
    again = platform_cloud.http("DELETE", f"/auth/sessions/{phone_sid}", headers=_as(laptop["access_token"]))
    assert again.status_code == 404
    # another user's session is not the caller's to end: 404, and it stays
    saras = _mine(platform_cloud, sara.token)
    other = platform_cloud.http(
        "DELETE", f"/auth/sessions/{saras[0]['session_id']}", headers=_as(laptop["access_token"])
    )
    assert other.status_code == 404
    assert _mine(platform_cloud, sara.token) == saras

    # N parallel ends of one session: exactly one ends it
    tablet = _sign_in_with_a_backup_code(platform_cloud, uma, uma.backup_codes[2], "Tablet/3")
    _warm_workers(platform_cloud, laptop["access_token"], PARALLEL)
    with ThreadPoolExecutor(PARALLEL) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    platform_cloud.http(
                        "DELETE",
                        f"/auth/sessions/{tablet['session_id']}",
                        headers=_as(laptop["access_token"]),
                    ).status_code
                ),
                range(PARALLEL),
            )
        )
    assert sorted(statuses) == [204] + [404] * (PARALLEL - 1)

    # the security-admin sees every live session of the tenant, a page at a time
    pages, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 1} | ({"next": after} if after else {})
        page = platform_cloud.http("GET", f"/tenants/{TENANT}/sessions", headers=sara.headers, params=params)
        assert page.status_code == 200, page.text
        pages.append(page.json())
        if (after := page.json()["next"]) is None:
            break
    tenant_wide = {s["session_id"]: s for p in pages for s in p["items"]}
    assert laptop["session_id"] in tenant_wide
    assert phone_sid not in tenant_wide
    assert tenant_wide[laptop["session_id"]]["user_agent"] == laptop_agent
    assert tenant_wide[laptop["session_id"]]["current"] is False
    assert [s["current"] for s in tenant_wide.values() if s["username"] == "sara"] == [True]
    viewer = platform_cloud.http("GET", f"/tenants/{TENANT}/sessions", headers=_as(laptop["access_token"]))
    assert viewer.status_code == 403  # a viewer lists their own sessions only
    bad = platform_cloud.http(
        "GET", f"/tenants/{TENANT}/sessions", headers=sara.headers, params={"next": "x"}
    )
    assert bad.status_code == 400

    # ... and ends every session of one user (an unknown user is 404)
    wiped = platform_cloud.http("DELETE", f"/tenants/{TENANT}/users/uma/sessions", headers=sara.headers)
    assert wiped.status_code == 204, wiped.text
    assert (
        platform_cloud.http("GET", "/auth/sessions", headers=_as(laptop["access_token"])).status_code == 401
    )
    missing = platform_cloud.http("DELETE", f"/tenants/{TENANT}/users/nobody/sessions", headers=sara.headers)
    assert missing.status_code == 404
    repeat = platform_cloud.http("DELETE", f"/tenants/{TENANT}/users/uma/sessions", headers=sara.headers)
    assert repeat.status_code == 204  # nothing left to end
    assert _mine(platform_cloud, sara.token) == saras  # the admin's own session is untouched

    def recorded() -> dict[str, dict[str, Any]] | None:
        items = platform_cloud.http(
            "GET", f"/tenants/{TENANT}/audit", headers=platform_admin.headers, params={"limit": 200}
        ).json()["items"]
        by_action = {(r["action"], r["status"]): r for r in items}
        wanted = [("auth:ListSessions", 200), ("auth:EndSession", 204), ("sessions:List", 200)]
        wanted.append(("sessions:Revoke", 204))
        return by_action if all(w in by_action for w in wanted) else None

    trail = wait_for(recorded, timeout=60, interval=1)
    revoke = trail[("sessions:Revoke", 204)]
    assert (revoke["actor"]["user"], revoke["target"]["user"]) == ("sara", "uma")
    assert trail[("auth:EndSession", 204)]["category"] == "authentication"
    log = platform_cloud.log()
    assert laptop_agent not in log
    assert phone_agent not in log


def test_a_platform_admin_lists_and_ends_the_sessions_of_a_suspended_tenant(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    tenant = "sess-frozen"
    new_signed_in_user(platform_cloud, platform_admin, tenant, "ivy", ["tenant-admin"])
    suspended = platform_cloud.http("POST", f"/tenants/{tenant}/suspend", headers=platform_admin.headers)
    assert suspended.status_code == 200, suspended.text
    # a session left over (as one created a moment before the suspension would be)
    mint_token(platform_cloud, tenant, "ivy", ["tenant-admin"])
    listed = platform_cloud.http("GET", f"/tenants/{tenant}/sessions", headers=platform_admin.headers)
    assert listed.status_code == 200, listed.text
    assert [s["username"] for s in listed.json()["items"]] == ["ivy"]
    ended = platform_cloud.http(
        "DELETE", f"/tenants/{tenant}/users/ivy/sessions", headers=platform_admin.headers
    )
    assert ended.status_code == 204, ended.text
    after = platform_cloud.http("GET", f"/tenants/{tenant}/sessions", headers=platform_admin.headers)
    assert after.json() == {"items": [], "next": None}
