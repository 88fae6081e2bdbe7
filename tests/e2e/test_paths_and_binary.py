"""Paths, file sizes and binary downloads over real HTTP, as API Gateway hands them to Lambda: path
parameters still percent-encoded (decoded once by the API), a file body as base64 inside Lambda's
6 MB, bytes only for a request whose first Accept type is the binary media type."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import requests

from tenant_security.storage.file_keys import MAX_API_FILE_BYTES
from tests.support.cloud import RunningCloud
from tests.support.identity import Identity, mint_token
from tests.support.tenants import finished_execution, now, request_body

pytestmark = pytest.mark.e2e
TENANT = "paths-a"
BINARY = "application/octet-stream"


@pytest.fixture(scope="module")
def tokens(platform_cloud: RunningCloud, platform_admin: Identity) -> dict[str, str]:
    started = now()
    body = request_body(
        TENANT,
        isolation="schema",
        security_policies={"access_control": {"ip_whitelist": []}},
        resource_quotas={"storage": {"max_file_size": "8MB", "max_data_size": "64MB"}},
    )
    reply = platform_cloud.http("POST", "/tenants", json=body, headers=platform_admin.headers)
    assert reply.status_code == 202, reply.text
    assert finished_execution(platform_cloud, "onboarding", TENANT, after=started)["status"] == "SUCCEEDED"
    return {
        "dev": mint_token(platform_cloud, TENANT, "dev", ["developer"]),
        "admin": mint_token(platform_cloud, TENANT, "boss", ["tenant-admin"]),
    }


def _auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def _put(cloud: RunningCloud, token: str, path_key: str, data: bytes) -> Any:
    return cloud.http(
        "PUT",
        f"/tenants/{TENANT}/files/{path_key}",
        data=data,
        headers=_auth(token, **{"Content-Type": BINARY, "Accept": BINARY}),
    )


def _get(cloud: RunningCloud, token: str, path_key: str, accept: str | None = BINARY) -> Any:
    return cloud.http(
        "GET", f"/tenants/{TENANT}/files/{path_key}", headers={**_auth(token), "Accept": accept}
    )


@pytest.mark.parametrize(
    ("key", "sent"),
    [
        ("notes/a b.txt", "notes/a%20b.txt"),  # a space
        ("r\u00e9sum\u00e9/\u65e5\u672c.pdf", quote("r\u00e9sum\u00e9/\u65e5\u672c.pdf")),  # non-ASCII
        ("dir/inner.txt", "dir%2Finner.txt"),  # an encoded slash names the same key as "/"
        ("x+y@z.bin", "x+y@z.bin"),  # '+' and '@' as sent, not encoded
        ("x+y@w.bin", "x%2By%40w.bin"),  # and encoded
        ("100%.txt", "100%25.txt"),  # decoded once: %25 is a '%'
        ("%2F.txt", "%252F.txt"),  # ... and %252F the text %2F, never a '/'
    ],
)
def test_a_key_round_trips_as_the_client_encoded_it(
    platform_cloud: RunningCloud, tokens: dict[str, str], key: str, sent: str
) -> None:
    data = key.encode() + b"\x00\xff"
    written = _put(platform_cloud, tokens["dev"], sent, data)
    assert written.status_code == 200, written.text
    assert written.json()["key"] == key
    got = _get(platform_cloud, tokens["dev"], sent)
    assert got.status_code == 200, got.text
    assert got.content == data
    listed = platform_cloud.http(
        "GET", f"/tenants/{TENANT}/files", params={"prefix": key}, headers=_auth(tokens["dev"])
    )
    assert [item["key"] for item in listed.json()["items"]] == [key]
    assert _get(platform_cloud, tokens["dev"], quote(key)).content == data  # however it is encoded


@pytest.mark.parametrize(
    ("sent", "status", "code"),
    [
        ("a%0Ab", (400, 404), ("validation_error", "not_found")),  # a control character
        ("a%00b", (400, 404), ("validation_error", "not_found")),
        ("a%FFb", (400,), ("bad_request",)),  # not UTF-8
        ("..%2Fetc%2Fpasswd", (400, 404), ("validation_error", "not_found")),  # traversal
        ("a%2F..%2Fb", (400, 404), ("validation_error", "not_found")),
    ],
)
def test_an_encoded_bad_key_is_refused_with_a_json_error(
    platform_cloud: RunningCloud,
    tokens: dict[str, str],
    sent: str,
    status: tuple[int, ...],
    code: tuple[str, ...],
) -> None:
    reply = _put(platform_cloud, tokens["dev"], sent, b"x")
    assert reply.status_code in status, reply.text
    assert reply.json()["error"] in code
    listed = platform_cloud.http("GET", f"/tenants/{TENANT}/files", headers=_auth(tokens["dev"])).json()
    assert all(".." not in item["key"] and "\ufffd" not in item["key"] for item in listed["items"])


@pytest.mark.parametrize(
    ("username", "sent"),
    [
        ("ann+ops@paths.example", "ann+ops@paths.example"),
        ("bob+ops@paths.example", "bob%2Bops%40paths.example"),
    ],
)
def test_a_user_name_with_at_and_plus_is_the_same_user_encoded_or_not(
    platform_cloud: RunningCloud, tokens: dict[str, str], username: str, sent: str
) -> None:
    admin = _auth(tokens["admin"])
    created = platform_cloud.http(
        "POST",
        f"/tenants/{TENANT}/users",
        headers=admin,
        json={"username": username, "email": "someone@paths.example", "roles": ["viewer"]},
    )
    assert created.status_code == 201, created.text
    roles = platform_cloud.http(
        "PUT", f"/tenants/{TENANT}/users/{sent}/roles", headers=admin, json={"roles": ["auditor"]}
    )
    assert roles.status_code == 200, roles.text
    assert roles.json()["roles"] == ["auditor"]
    gone = platform_cloud.http("DELETE", f"/tenants/{TENANT}/users/{sent}", headers=admin)
    assert gone.status_code == 204, gone.text
    users = platform_cloud.http("GET", f"/tenants/{TENANT}/users", headers=admin).json()["items"]
    assert username not in [u["username"] for u in users]


@pytest.mark.parametrize("accept", ["*/*", None, "text/html, application/octet-stream", "application/json"])
def test_a_download_not_asked_for_as_bytes_first_is_406(
    platform_cloud: RunningCloud, tokens: dict[str, str], accept: str | None
) -> None:
    assert _put(platform_cloud, tokens["dev"], "accept/one.bin", b"\x01\x02").status_code == 200
    reply = _get(platform_cloud, tokens["dev"], "accept/one.bin", accept)
    # API Gateway would send the base64 text with a 200; the API says what to send instead
    assert reply.status_code == 406, reply.text
    assert reply.json()["error"] == "not_acceptable"
    assert BINARY in reply.json()["message"]
    ok = _get(platform_cloud, tokens["dev"], "accept/one.bin", f"{BINARY}, */*;q=0.1")
    assert (ok.status_code, ok.content) == (200, b"\x01\x02")


def test_a_file_over_what_lambda_carries_is_413_with_the_way_to_upload_it(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    fits = _put(platform_cloud, tokens["dev"], "size/fits.bin", b"\x07" * MAX_API_FILE_BYTES)
    assert fits.status_code == 200, fits.text
    got = _get(platform_cloud, tokens["dev"], "size/fits.bin")
    assert got.status_code == 200, got.text
    assert len(got.content) == MAX_API_FILE_BYTES
    # one byte more reaches the function (its event is still under 6 MB) and is refused there
    over = _put(platform_cloud, tokens["dev"], "size/over.bin", b"\x07" * (MAX_API_FILE_BYTES + 1))
    assert over.status_code == 413, over.text
    assert over.json()["error"] == "payload_too_large"
    assert f"/tenants/{TENANT}/uploads" in over.json()["message"]
    # 5 MiB never reaches it: Lambda refuses the event (over 6 MB as base64), API Gateway says 413
    lambda_refused = _put(platform_cloud, tokens["dev"], "size/big.bin", b"\x07" * (5 * 1024 * 1024))
    assert lambda_refused.status_code == 413, lambda_refused.text
    assert lambda_refused.json()["error"] == "payload_too_large"
    listed = platform_cloud.http(
        "GET", f"/tenants/{TENANT}/files", params={"prefix": "size/"}, headers=_auth(tokens["dev"])
    ).json()
    assert [item["key"] for item in listed["items"]] == ["size/fits.bin"]


def test_an_uploaded_file_too_large_to_return_points_to_a_download_link(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    data = b"\x09" * (MAX_API_FILE_BYTES + 1)
    auth = _auth(tokens["dev"])
    grant = platform_cloud.http(
        "POST", f"/tenants/{TENANT}/uploads", json={"key": "size/scan.tif", "size": len(data)}, headers=auth
    )
    assert grant.status_code == 201, grant.text
    upload = grant.json()
    sent = requests.post(upload["url"], data=upload["fields"], files={"file": ("s", data)}, timeout=60)
    assert sent.status_code == 204, sent.text
    done = platform_cloud.http(
        "POST", f"/tenants/{TENANT}/uploads/{upload['upload_id']}/complete", headers=auth
    )
    assert done.status_code == 200, done.text
    # as base64 in the Lambda response it would be over 6 MB: a 502 on AWS, a pointer here
    reply = _get(platform_cloud, tokens["dev"], "size/scan.tif")
    assert reply.status_code == 413, reply.text
    assert f"/tenants/{TENANT}/downloads" in reply.json()["message"]
    link = platform_cloud.http(
        "POST", f"/tenants/{TENANT}/downloads", json={"key": "size/scan.tif"}, headers=auth
    )
    assert link.status_code == 200, link.text
    assert requests.get(link.json()["url"], timeout=60).content == data
