"""Signing in through the local cloud's HTTP API (template.yaml): bootstrap admin, MFA enrolment,
one-time passwords, replay, backup codes, lockout, logout, session limits."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.support.cloud import SIGN_IN_PER_ACCOUNT, SIGN_IN_PER_ADDRESS, RunningCloud, from_address
from tests.support.identity import (
    Identity,
    assert_no_secrets_logged,
    challenge_for,
    create_user,
    first_sign_in,
    new_signed_in_user,
    post,
    seed_tenant,
    seen,
)

pytestmark = pytest.mark.e2e


def test_the_bootstrap_admin_signs_in_enrols_and_calls_a_protected_route(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    replies = platform_admin.replies
    assert replies["login"].json()["status"] == "MFA_ENROLLMENT_REQUIRED"
    enrolment = replies["enroll"].json()
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/DcisionAI-platform:")
    assert "issuer=DcisionAI-platform" in enrolment["otpauth_uri"]
    assert enrolment["qr_svg"].lstrip().startswith("<svg")
    assert len(enrolment["backup_codes"]) == 10
    first = replies["activate"].json()
    assert first["token_type"] == "Bearer"
    assert first["password_change_required"] is True
    assert 0 < first["expires_in"] <= 900
    # the one-time password's token opens nothing but POST /auth/password ...
    assert replies["limited_probe"].status_code == 403
    assert replies["password"].json()["password_change_required"] is False
    # ... and after the change it is refused still (API Gateway's cached Deny; its session ended)
    limited = platform_cloud.http(
        "GET", "/tenants/platform/users", headers={"Authorization": f"Bearer {replies['limited_token']}"}
    )
    assert limited.status_code in (401, 403)
    users = platform_cloud.http("GET", "/tenants/platform/users", headers=platform_admin.headers)
    assert users.status_code == 200
    (admin,) = users.json()["items"]
    assert admin["mfa_enrolled"] is True
    assert set(admin) == {
        "username",
        "email",
        "roles",
        "status",
        "mfa_enrolled",
        "password_change_required",
        "created_at",
    }


def test_the_same_code_again_is_refused(platform_cloud: RunningCloud, platform_admin: Identity) -> None:
    login = post(
        platform_cloud,
        "/auth/login",
        {"tenant_id": "platform", "username": platform_admin.username, "password": platform_admin.password},
    )
    assert login.json()["status"] == "MFA_REQUIRED"
    challenge = login.json()["challenge_token"]
    seen(challenge)
    used = platform_admin.replies["activate"].request.body.decode()  # the activation's request
    code = used.split('"code": "')[1][:6]
    again = post(platform_cloud, "/auth/mfa/verify", {"challenge_token": challenge, "code": code})
    assert again.status_code == 401
    assert again.json()["error"] == "unauthorized"
    fresh = post(
        platform_cloud, "/auth/mfa/verify", {"challenge_token": challenge, "code": platform_admin.code(+1)}
    )
    assert fresh.status_code == 200, fresh.text
    seen(fresh.json()["access_token"])


def test_users_created_by_an_admin_must_enrol_and_change_their_password(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    seed_tenant(platform_cloud, "acme-signin")
    password = create_user(platform_cloud, platform_admin, "acme-signin", "dana", ["developer"])
    dana = first_sign_in(platform_cloud, "acme-signin", "dana", password)
    assert dana.replies["activate"].json()["password_change_required"] is True
    assert dana.replies["password"].status_code == 200
    old = post(
        platform_cloud, "/auth/login", {"tenant_id": "acme-signin", "username": "dana", "password": password}
    )
    assert old.status_code == 401  # the one-time password is gone
    listed = platform_cloud.http("GET", "/tenants/acme-signin/users", headers=platform_admin.headers).json()[
        "items"
    ]
    assert [u["username"] for u in listed] == ["dana"]
    assert "temporary_password" not in str(listed)


def test_a_backup_code_signs_in_once(platform_cloud: RunningCloud, platform_admin: Identity) -> None:
    erin = new_signed_in_user(platform_cloud, platform_admin, "acme-backup", "erin", ["viewer"])
    for expected in (200, 401):
        reply = post(
            platform_cloud,
            "/auth/mfa/verify",
            {"challenge_token": challenge_for(platform_cloud, erin), "backup_code": erin.backup_codes[0]},
        )
        assert reply.status_code == expected, reply.text


def test_five_wrong_codes_lock_the_user_out(platform_cloud: RunningCloud, platform_admin: Identity) -> None:
    frank = new_signed_in_user(platform_cloud, platform_admin, "acme-lockout", "frank", ["viewer"])
    challenge = challenge_for(platform_cloud, frank)
    good = frank.code(+1)
    wrong = "000000" if good != "000000" else "111111"
    statuses = [
        post(platform_cloud, "/auth/mfa/verify", {"challenge_token": challenge, "code": wrong}).status_code
        for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 401, 423]
    locked = post(platform_cloud, "/auth/mfa/verify", {"challenge_token": challenge, "code": good})
    assert locked.status_code == 423
    assert int(locked.headers["Retry-After"]) > 0
    # the password step tells nothing (a stranger learns no lock); the lock holds at the MFA step
    again = post(
        platform_cloud,
        "/auth/login",
        {"tenant_id": "acme-lockout", "username": "frank", "password": frank.password},
    )
    assert again.json()["status"] == "MFA_REQUIRED"
    seen(again.json()["challenge_token"])
    assert (
        post(
            platform_cloud,
            "/auth/mfa/verify",
            {"challenge_token": again.json()["challenge_token"], "code": frank.code(+1)},
        ).status_code
        == 423
    )


def test_32_parallel_wrong_codes_get_at_most_five_guesses(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    ivan = new_signed_in_user(platform_cloud, platform_admin, "acme-race", "ivan", ["viewer"])
    challenge = challenge_for(platform_cloud, ivan)
    good = ivan.code()
    wrong = "000000" if good not in ("000000", ivan.code(-1), ivan.code(+1)) else "999999"
    with ThreadPoolExecutor(16) as pool:
        statuses = list(
            pool.map(
                lambda _i: (
                    post(
                        platform_cloud, "/auth/mfa/verify", {"challenge_token": challenge, "code": wrong}
                    ).status_code
                ),
                range(32),
            )
        )
    assert set(statuses) <= {401, 423}
    assert statuses.count(401) <= 4  # the fifth evaluated guess is the one that locks (423)
    right = post(platform_cloud, "/auth/mfa/verify", {"challenge_token": challenge, "code": good})
    assert right.status_code == 423  # the right code is refused while locked


def _within_one_minute(seconds: float) -> None:
    """Wait for the next minute unless ``seconds`` of this one are left: the throttles' windows
    slide, so a flood that straddles a minute's boundary is let through a little more as the
    earlier minute's weight falls (an exact count needs the flood inside one minute)."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.5)


def test_sign_in_is_throttled_per_address_and_per_account(platform_cloud: RunningCloud) -> None:
    stranger = from_address("127.0.0.77")
    _within_one_minute(40)  # each failed login is answered after the 0.5 s floor

    def login(client: Any, username: str) -> requests.Response:
        return client.post(
            platform_cloud.api_url + "/auth/login",
            json={"tenant_id": "platform", "username": username, "password": "not the password"},
            timeout=30,
        )

    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda i: login(stranger, f"ghost{i}").status_code, range(SIGN_IN_PER_ADDRESS + 5))
        )
    refused = login(stranger, "ghost")
    assert refused.status_code == 429
    assert statuses.count(429) >= 5
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"] == "too_many_attempts"
    # one account from many addresses
    with ThreadPoolExecutor(8) as pool:
        account = list(
            pool.map(
                lambda i: login(from_address(f"127.0.1.{i}"), "target").status_code,
                range(1, SIGN_IN_PER_ACCOUNT + 3),
            )
        )
    assert (account.count(401), account.count(429)) == (SIGN_IN_PER_ACCOUNT, 2)


def test_a_refused_address_answers_as_a_wrong_password_and_spends_nothing_of_the_account(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    """A stranger the tenant's allow-list refuses learns neither that the tenant exists nor
    anything else, and however often they try, the user signs in from an admitted address."""
    from tenant_security.alerts import AlertKind
    from tenant_security.refusals import RefusalCounter

    tenant = "acme-fenced"
    seed_tenant(platform_cloud, tenant, access_control={"ip_whitelist": ["127.0.0.0/29"]})
    vera = first_sign_in(
        platform_cloud,
        tenant,
        "vera",
        create_user(platform_cloud, platform_admin, tenant, "vera", ["viewer"]),
    )
    stranger = from_address("127.0.0.66")
    first_minute = int(time.time() // 60)

    def login(client: Any, tenant_id: str, password: str) -> requests.Response:
        return client.post(
            platform_cloud.api_url + "/auth/login",
            json={"tenant_id": tenant_id, "username": "vera", "password": password},
            timeout=30,
        )

    with ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(lambda i: login(stranger, tenant, f"guess number {i}"), range(SIGN_IN_PER_ACCOUNT + 5))
        )
    assert {r.status_code for r in replies} <= {401, 429}  # never the 403 that told the tenant exists
    refused = next(r for r in replies if r.status_code == 401)
    nosuch = login(from_address("127.0.0.67"), "no-such-fenced", "guess")
    wrong = login(from_address("127.0.0.6"), tenant, "not her password")  # admitted, wrong password
    assert [r.status_code for r in (nosuch, wrong)] == [401, 401]
    assert refused.json() == nosuch.json() == wrong.json()
    # vera, right password, from an admitted address she never signed in from: not held up
    mine = login(from_address("127.0.0.5"), tenant, vera.password)
    assert mine.status_code == 200, mine.text
    seen(mine.json()["challenge_token"])
    # the tenant's trail still learns why: counted refusals, naming the reason
    counters = RefusalCounter(platform_cloud.client("dynamodb"), "dcisionai-counters")
    samples = {
        c.sample
        for minute in range(first_minute, int(time.time() // 60) + 1)
        for c in counters.of_minute(minute)
        if c.tenant_id == tenant and c.source_ip == "127.0.0.66"
    }
    assert f"auth:Login: {AlertKind.SOURCE_IP_NOT_ALLOWED}" in samples


def test_a_full_account_window_does_not_keep_the_user_out_where_they_signed_in_before(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    walt = new_signed_in_user(platform_cloud, platform_admin, "acme-known", "walt", ["viewer"])  # 127.0.0.1

    def login(address: str, password: str) -> requests.Response:
        return from_address(address).post(
            platform_cloud.api_url + "/auth/login",
            json={"tenant_id": "acme-known", "username": "walt", "password": password},
            timeout=30,
        )

    _within_one_minute(15)
    with ThreadPoolExecutor(8) as pool:  # strangers the (open) allow-list admits fill walt's window
        list(pool.map(lambda i: login(f"127.0.4.{i}", "not his password"), range(1, SIGN_IN_PER_ACCOUNT + 3)))
    elsewhere = login("127.0.5.1", walt.password)
    assert elsewhere.status_code == 429  # what remains: a brand-new address waits out the window
    home = login("127.0.0.1", walt.password)
    assert home.status_code == 200, home.text
    challenge = home.json()["challenge_token"]
    seen(challenge)
    verified = post(platform_cloud, "/auth/mfa/verify", {"challenge_token": challenge, "code": walt.code(+1)})
    assert verified.status_code == 200, verified.text
    seen(verified.json()["access_token"])


def test_logout_ends_the_session_at_once(platform_cloud: RunningCloud, platform_admin: Identity) -> None:
    gina = new_signed_in_user(platform_cloud, platform_admin, "acme-logout", "gina", ["tenant-admin"])
    assert platform_cloud.http("GET", "/tenants/acme-logout/users", headers=gina.headers).status_code == 200
    assert platform_cloud.http("POST", "/auth/logout", headers=gina.headers).status_code == 204
    # API Gateway still holds a cached Allow for this token; the session check refuses it anyway
    after = platform_cloud.http("GET", "/tenants/acme-logout/users", headers=gina.headers)
    assert after.status_code == 401


def test_the_tenant_session_limit_holds(platform_cloud: RunningCloud, platform_admin: Identity) -> None:
    hank = new_signed_in_user(
        platform_cloud,
        platform_admin,
        "acme-limit",
        "hank",
        ["viewer"],
        access_control={"max_concurrent_sessions": 1, "ip_whitelist": []},
    )
    challenge = challenge_for(platform_cloud, hank)
    second = post(
        platform_cloud,
        "/auth/mfa/verify",
        {"challenge_token": challenge, "code": hank.code(+1)},
    )
    assert second.status_code == 403
    assert second.json()["error"] == "session_limit_reached"


@pytest.mark.parametrize(
    "body",
    [
        {"tenant_id": "platform", "username": "admin"},
        {"tenant_id": "Platform!", "username": "admin", "password": "x"},
        {"tenant_id": "platform", "username": "admin", "password": "x" * 300},
        {"tenant_id": "platform", "username": "admin' OR 1=1 --", "password": "x"},
        {"tenant_id": "platform", "username": "admin", "password": "x", "extra": 1},
    ],
)
def test_bad_login_bodies_are_400(platform_cloud: RunningCloud, body: dict[str, object]) -> None:
    reply = post(platform_cloud, "/auth/login", body)
    assert reply.status_code == 400
    assert reply.json()["error"] == "validation_error"


def test_unknown_users_wrong_passwords_and_locked_accounts_look_the_same(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    new_signed_in_user(platform_cloud, platform_admin, "acme-alike", "jill", ["viewer"])
    platform_cloud.client("dynamodb").update_item(
        TableName="dcisionai-users",
        Key={"tenant_id": {"S": "acme-alike"}, "username": {"S": "jill"}},
        UpdateExpression="SET locked_until = :u",
        ExpressionAttributeValues={":u": {"N": str(int(time.time()) + 600)}},
    )
    replies = [
        post(platform_cloud, "/auth/login", body)
        for body in (
            {"tenant_id": "acme-alike", "username": "ghost", "password": "nope nope"},
            {"tenant_id": "no-such-tenant", "username": "ghost", "password": "nope"},
            {"tenant_id": "acme-alike", "username": "jill", "password": "not her password"},  # locked too
        )
    ]
    assert [r.status_code for r in replies] == [401, 401, 401]
    assert replies[0].json() == replies[1].json() == replies[2].json()
    assert {k for k in replies[0].headers if k.lower() == "retry-after"} == set()


def test_no_secret_reached_the_logs(platform_cloud: RunningCloud, platform_admin: Identity) -> None:
    assert_no_secrets_logged(platform_cloud)
