"""The tenant security policy over HTTP (local cloud): read it with its ETag, change it with
If-Match, a merge patch or a whole document, see its history and audit record, the lock-out
guard, and the 5-second bound for a signed-in user whose allow-list is tightened and reopened."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.support.cloud import RunningCloud, from_address, wait_for
from tests.support.identity import mint_token, seed_tenant

pytestmark = pytest.mark.e2e

TENANT, OTHER = "pol-a", "pol-b"
BOUND_SECONDS = 5.0  # API.md v2: a change governs every request that starts 5 s after its 200
ADMIN_ADDRESS = "127.0.0.2"


@pytest.fixture(scope="module")
def tokens(platform_cloud: RunningCloud) -> dict[str, str]:
    seed_tenant(platform_cloud, TENANT)
    seed_tenant(platform_cloud, OTHER)
    return {
        "security": mint_token(platform_cloud, TENANT, "sec", ["security-admin"]),
        "auditor": mint_token(platform_cloud, TENANT, "aud", ["auditor"]),
        "developer": mint_token(platform_cloud, TENANT, "dev", ["developer"]),
        "tenant-admin": mint_token(platform_cloud, TENANT, "boss", ["tenant-admin"]),
        "other": mint_token(platform_cloud, OTHER, "sec", ["security-admin"]),
        "no-mfa": mint_token(platform_cloud, TENANT, "sec2", ["security-admin"], amr=("pwd",)),
    }


def call(
    cloud: RunningCloud,
    method: str,
    token: str,
    path: str = f"/tenants/{TENANT}/policies",
    client: requests.Session | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    sender = client or requests.Session()
    return sender.request(
        method,
        cloud.api_url + path,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        timeout=30,
        **kwargs,
    )


def patch(
    cloud: RunningCloud, token: str, body: Any, etag: str | None = None, **kwargs: Any
) -> requests.Response:
    headers = {"Content-Type": "application/merge-patch+json"}
    if etag is not None:
        headers["If-Match"] = etag
    return call(cloud, "PATCH", token, headers=headers, json=body, **kwargs)


def test_get_shows_the_document_with_its_etag_to_its_roles_only(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    reply = call(platform_cloud, "GET", tokens["security"])
    assert reply.status_code == 200, reply.text
    document = reply.json()
    assert reply.headers["ETag"] == f'"{document["revision"]}"'
    assert document["access_control"]["ip_whitelist"] == []
    assert document["rollout"]["status"] in ("applied", "pending", "failed")
    for role in ("auditor", "tenant-admin"):
        assert call(platform_cloud, "GET", tokens[role]).status_code == 200
    assert call(platform_cloud, "GET", tokens["developer"]).status_code == 403
    assert call(platform_cloud, "GET", tokens["other"]).status_code == 403  # another tenant's admin
    assert (
        patch(platform_cloud, tokens["auditor"], {"access_control": {"mfa_required": True}}).status_code
        == 403
    )


def test_a_change_under_if_match_its_history_and_its_audit_record(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    etag = call(platform_cloud, "GET", tokens["security"]).headers["ETag"]
    changed = patch(
        platform_cloud, tokens["security"], {"access_control": {"max_sessions_per_user": 4}}, etag
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] != etag
    assert changed.json()["access_control"]["max_sessions_per_user"] == 4
    stale = patch(platform_cloud, tokens["security"], {"access_control": {"max_sessions_per_user": 5}}, etag)
    assert stale.status_code == 412
    assert stale.json()["error"] == "precondition_failed"
    invalid = patch(platform_cloud, tokens["security"], {"access_control": {"ip_whitelist": ["nope"]}})
    assert invalid.status_code == 400
    assert invalid.json()["fields"][0]["field"] == "access_control.ip_whitelist.0"
    history = call(
        platform_cloud, "GET", tokens["auditor"], path=f"/tenants/{TENANT}/policies/history"
    ).json()
    newest = history["items"][0]
    assert newest["changed_by"] == f"{TENANT}/sec"
    assert {"field": "access_control.max_sessions_per_user", "old": 10, "new": 4} in newest["changes"]

    def audited() -> Any:
        page = call(
            platform_cloud,
            "GET",
            tokens["auditor"],
            path=f"/tenants/{TENANT}/audit",
            params={"action": "policies:Write", "limit": 50},
        ).json()
        return [r for r in page.get("items", []) if r.get("outcome") == "success" and r.get("changes")]

    (record, *_) = wait_for(audited, timeout=60)
    assert {"field": "access_control.max_sessions_per_user", "old": 10, "new": 4} in record["changes"]


def test_a_put_of_what_get_returned_changes_nothing(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    current = call(platform_cloud, "GET", tokens["security"])
    again = call(
        platform_cloud,
        "PUT",
        tokens["security"],
        json=current.json(),
        headers={"If-Match": current.headers["ETag"]},
    )
    assert again.status_code == 200, again.text
    assert again.headers["ETag"] == current.headers["ETag"]


def test_the_lockout_guard_refuses_unless_forced(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    admin_client = from_address(ADMIN_ADDRESS)
    # an allow-list without the caller's own address
    refused = patch(platform_cloud, tokens["security"], {"access_control": {"ip_whitelist": ["10.0.0.0/8"]}})
    assert refused.status_code == 409
    assert refused.json()["error"] == "would_lock_out"
    assert refused.json()["fields"][0]["field"] == "access_control.ip_whitelist"
    # MFA for a caller who signed in without it (while the tenant did not ask for it)
    assert (
        patch(platform_cloud, tokens["security"], {"access_control": {"mfa_required": False}}).status_code
        == 200
    )
    time.sleep(BOUND_SECONDS)
    mfa = patch(platform_cloud, tokens["no-mfa"], {"access_control": {"mfa_required": True}})
    assert mfa.status_code == 409
    assert mfa.json()["fields"][0]["field"] == "access_control.mfa_required"
    forced = patch(
        platform_cloud, tokens["no-mfa"], {"access_control": {"mfa_required": True}}, params={"force": "true"}
    )
    assert forced.status_code == 200, forced.text
    time.sleep(BOUND_SECONDS)
    assert call(platform_cloud, "GET", tokens["no-mfa"]).status_code == 403  # as it was warned
    assert call(platform_cloud, "GET", tokens["security"], client=admin_client).status_code == 200


def test_an_allow_list_tightened_then_reopened_binds_a_signed_in_user_within_5_seconds(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    admin_client, user_client = from_address(ADMIN_ADDRESS), from_address("127.0.0.1")
    files = f"/tenants/{TENANT}"  # any route: the auditor reads the tenant
    assert call(platform_cloud, "GET", tokens["auditor"], path=files, client=user_client).status_code == 200
    tightened = patch(
        platform_cloud,
        tokens["security"],
        {"access_control": {"ip_whitelist": [f"{ADMIN_ADDRESS}/32"]}},
        client=admin_client,
    )
    assert tightened.status_code == 200, tightened.text
    answered = time.monotonic()

    def statuses_after_the_bound() -> list[int]:
        while time.monotonic() - answered < BOUND_SECONDS:
            time.sleep(0.1)
        seen = []
        for _ in range(5):  # every request starting 5 s after the 200, whatever worker serves it
            seen.append(
                call(platform_cloud, "GET", tokens["auditor"], path=files, client=user_client).status_code
            )
        return seen

    assert statuses_after_the_bound() == [403] * 5
    reopened = patch(
        platform_cloud, tokens["security"], {"access_control": {"ip_whitelist": []}}, client=admin_client
    )
    assert reopened.status_code == 200, reopened.text
    answered = time.monotonic()
    assert statuses_after_the_bound() == [200] * 5


def test_two_patches_sent_with_one_etag_over_http_exactly_one_lands(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    etag = call(platform_cloud, "GET", tokens["security"]).headers["ETag"]
    bodies = [{"access_control": {"max_concurrent_sessions": 50 + i}} for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(lambda body: patch(platform_cloud, tokens["security"], body, etag), bodies))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200, 412, 412, 412], [r.text for r in replies]
    (won,) = [r for r in replies if r.status_code == 200]
    stored = call(platform_cloud, "GET", tokens["security"]).json()
    assert (
        stored["access_control"]["max_concurrent_sessions"]
        == won.json()["access_control"]["max_concurrent_sessions"]
    )
    assert stored["revision"] == int(etag.strip('"')) + 1


def test_a_quota_change_binds_within_5_seconds(
    platform_cloud: RunningCloud, platform_admin: Any, tokens: dict[str, str]
) -> None:
    """Quotas were cached for a minute; they now govern as a policy does, 5 s after the 200."""
    quotas_path = f"/tenants/{TENANT}/quotas"
    admin = {"Authorization": f"Bearer {platform_admin.token}"}
    document = platform_cloud.http("GET", quotas_path, headers=admin).json()
    document["domains"] = {**document.get("domains", {}), "analytics": False}
    assert platform_cloud.http("PUT", quotas_path, headers=admin, json=document).status_code == 200
    time.sleep(BOUND_SECONDS)
    headers = {"X-Domain": "analytics"}
    assert (
        call(platform_cloud, "GET", tokens["auditor"], path=f"/tenants/{TENANT}", headers=headers).status_code
        == 403
    )
    document["domains"]["analytics"] = True
    assert platform_cloud.http("PUT", quotas_path, headers=admin, json=document).status_code == 200
    time.sleep(BOUND_SECONDS)
    assert (
        call(platform_cloud, "GET", tokens["auditor"], path=f"/tenants/{TENANT}", headers=headers).status_code
        == 200
    )
