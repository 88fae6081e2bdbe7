"""Tenant files over HTTP on an onboarded tenant: client-side encryption under the tenant data key,
storage quotas, bad keys and sizes, other tenants, and crypto-shredding at offboarding."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tenant_security import crypto
from tests.support.cloud import RunningCloud
from tests.support.identity import Identity, mint_token
from tests.support.tenants import finished_execution, now, request_body

OPEN = {"access_control": {"ip_whitelist": []}}


def _onboard(cloud: RunningCloud, admin: Identity, tenant: str, **documents: Any) -> None:
    started = now()
    body = request_body(tenant, isolation="schema", security_policies=OPEN, **documents)
    reply = cloud.http("POST", "/tenants", json=body, headers=admin.headers)
    assert reply.status_code == 202, reply.text
    assert finished_execution(cloud, "onboarding", tenant, after=started)["status"] == "SUCCEEDED"


@pytest.fixture(scope="module")
def tenants(platform_cloud: RunningCloud, platform_admin: Identity) -> dict[str, str]:
    _onboard(
        platform_cloud,
        platform_admin,
        "files-a",
        resource_quotas={"storage": {"max_file_size": "64KB", "max_data_size": "200KB"}},
    )
    _onboard(platform_cloud, platform_admin, "files-b")
    return {
        "a": mint_token(platform_cloud, "files-a", "dev", ["developer"]),
        "a-viewer": mint_token(platform_cloud, "files-a", "val", ["viewer"]),
        "b": mint_token(platform_cloud, "files-b", "dev", ["developer"]),
    }


def _headers(token: str, binary: bool = True) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        **(
            {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}
            if binary
            else {}
        ),
    }


def test_a_file_round_trips_encrypted_under_the_tenant_key(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    data = bytes(range(256)) * 40  # binary, 10 KiB
    path = "/tenants/files-a/files/reports/2026/q4.bin"
    put = platform_cloud.http("PUT", path, data=data, headers=_headers(tenants["a"]))
    assert put.status_code == 200, put.text
    assert put.json()["size"] == len(data)
    got = platform_cloud.http("GET", path, headers=_headers(tenants["a-viewer"]))
    assert got.status_code == 200, got.text
    assert got.content == data
    s3 = platform_cloud.client("s3")
    stored = s3.get_object(Bucket="dcisionai-10ca1000-tenant-files-a-data", Key="reports/2026/q4.bin")
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert stored["SSEKMSKeyId"].startswith("arn:aws:kms:")
    assert data not in stored["Body"].read()  # the object is an Encryption SDK message
    listed = platform_cloud.http(
        "GET", "/tenants/files-a/files", headers=_headers(tenants["a"], False)
    ).json()
    assert "reports/2026/q4.bin" in {i["key"] for i in listed["items"]}
    usage = platform_cloud.http(
        "GET",
        "/tenants/files-a/quotas/usage",
        headers=_headers(mint_token(platform_cloud, "files-a", "ta", ["tenant-admin"]), False),
    ).json()
    assert usage["storage"]["bytes"] == len(data)
    assert platform_cloud.http("DELETE", path, headers=_headers(tenants["a"], False)).status_code == 204
    assert platform_cloud.http("GET", path, headers=_headers(tenants["a"])).status_code == 404


def test_other_tenants_and_roles_are_refused(platform_cloud: RunningCloud, tenants: dict[str, str]) -> None:
    path = "/tenants/files-a/files/secret.txt"
    assert platform_cloud.http("PUT", path, data=b"x", headers=_headers(tenants["a"])).status_code == 200
    for method in ("GET", "PUT", "DELETE"):
        assert platform_cloud.http(method, path, data=b"y", headers=_headers(tenants["b"])).status_code == 403
    assert (
        platform_cloud.http("PUT", path, data=b"y", headers=_headers(tenants["a-viewer"])).status_code == 403
    )
    # a ciphertext of A copied into B's bucket does not decrypt as B's
    s3 = platform_cloud.client("s3")
    stolen = s3.get_object(Bucket="dcisionai-10ca1000-tenant-files-a-data", Key="secret.txt")["Body"].read()
    kms = platform_cloud.client("kms")
    b_key = kms.describe_key(KeyId="alias/dcisionai-tenant-files-b-data")["KeyMetadata"]["Arn"]
    s3.put_object(
        Bucket="dcisionai-10ca1000-tenant-files-b-data",
        Key="secret.txt",
        Body=stolen,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=b_key,
    )
    reply = platform_cloud.http("GET", "/tenants/files-b/files/secret.txt", headers=_headers(tenants["b"]))
    assert reply.status_code == 403
    assert reply.json()["error"] == "decryption_refused"


@pytest.mark.parametrize(
    "key", ["..%2Fetc%2Fpasswd", "a%2F%2E%2E%2Fb", "%2Fleading", "a//b", "a%00b", "a%0Ab", "a%5Cb", "x" * 600]
)
def test_bad_keys_are_400_and_write_nothing(
    platform_cloud: RunningCloud, tenants: dict[str, str], key: str
) -> None:
    reply = platform_cloud.http(
        "PUT", f"/tenants/files-a/files/{key}", data=b"x", headers=_headers(tenants["a"])
    )
    # 404: a path API Gateway itself cannot route; 403: an empty segment, which every authorizer
    # answer denies (a parameter is never empty)
    assert reply.status_code in (400, 403, 404), reply.text
    assert reply.json()["error"] in ("validation_error", "not_found", "forbidden")
    listed = (
        platform_cloud.client("s3")
        .list_objects_v2(Bucket="dcisionai-10ca1000-tenant-files-a-data")
        .get("Contents", [])
    )
    assert all(".." not in o["Key"] and "\\x00" not in o["Key"] for o in listed)


def test_sizes_over_the_quota_are_413_and_release_nothing(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    big = platform_cloud.http(
        "PUT", "/tenants/files-a/files/big.bin", data=b"x" * (65 * 1024), headers=_headers(tenants["a"])
    )
    assert big.status_code == 413
    assert big.json()["error"] == "payload_too_large"
    for i in range(3):
        ok = platform_cloud.http(
            "PUT",
            f"/tenants/files-a/files/fill-{i}.bin",
            data=b"x" * (60 * 1024),
            headers=_headers(tenants["a"]),
        )
        assert ok.status_code == 200, ok.text
    full = platform_cloud.http(
        "PUT", "/tenants/files-a/files/fill-3.bin", data=b"x" * (60 * 1024), headers=_headers(tenants["a"])
    )
    assert full.status_code == 413
    assert (
        platform_cloud.http(
            "GET", "/tenants/files-a/files/fill-3.bin", headers=_headers(tenants["a"])
        ).status_code
        == 404
    )
    for i in range(3):
        platform_cloud.http(
            "DELETE", f"/tenants/files-a/files/fill-{i}.bin", headers=_headers(tenants["a"], False)
        )
    again = platform_cloud.http(
        "PUT", "/tenants/files-a/files/fill-3.bin", data=b"x" * (60 * 1024), headers=_headers(tenants["a"])
    )
    assert again.status_code == 200  # deletes released the space


def test_a_file_over_the_payload_limit_goes_through_a_presigned_upload(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    data = b"\x07" * 60_000
    auth = _headers(tenants["a"], binary=False)
    reply = platform_cloud.http(
        "POST", "/tenants/files-a/uploads", json={"key": "big/scan.tif", "size": len(data)}, headers=auth
    )
    assert reply.status_code == 201, reply.text
    upload = reply.json()
    # straight to S3 (moto), the way a browser form or curl -F sends it
    sent = requests.post(upload["url"], data=upload["fields"], files={"file": ("scan.tif", data)}, timeout=10)
    assert sent.status_code == 204, sent.text
    refused = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("x", data + b"!")}, timeout=10
    )
    assert refused.status_code == 403  # the signed policy fixes the size
    complete = f"/tenants/files-a/uploads/{upload['upload_id']}/complete"
    assert (
        platform_cloud.http("POST", complete, headers=_headers(tenants["b"], binary=False)).status_code == 403
    )
    done = platform_cloud.http("POST", complete, headers=auth)
    assert done.status_code == 200, done.text
    assert done.json()["key"] == "big/scan.tif"
    got = platform_cloud.http(
        "GET", "/tenants/files-a/files/big/scan.tif", headers=_headers(tenants["a-viewer"])
    )
    assert got.content == data
    link = platform_cloud.http(
        "POST", "/tenants/files-a/downloads", json={"key": "big/scan.tif"}, headers=auth
    )
    assert link.status_code == 200, link.text
    assert requests.get(link.json()["url"], timeout=10).content == data
    head = platform_cloud.client("s3").head_object(
        Bucket="dcisionai-10ca1000-tenant-files-a-data", Key="big/scan.tif"
    )
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(":key/" + head["SSEKMSKeyId"].rsplit("/", 1)[-1])
    # other tenants and bad requests
    other = _headers(tenants["b"], binary=False)
    for method, path, body in (
        ("POST", "/tenants/files-a/uploads", {"key": "x", "size": 1}),
        ("POST", "/tenants/files-a/downloads", {"key": "big/scan.tif"}),
    ):
        assert platform_cloud.http(method, path, json=body, headers=other).status_code == 403
    for body in (
        {"key": "x", "size": 0},
        {"key": "x", "size": "1"},
        {"key": "../x", "size": 1},
        {"key": ".uploads/x", "size": 1},
        {"size": 1},
    ):
        bad = platform_cloud.http("POST", "/tenants/files-a/uploads", json=body, headers=auth)
        assert bad.status_code == 400, (body, bad.text)
    too_big = platform_cloud.http(
        "POST", "/tenants/files-a/uploads", json={"key": "x", "size": 65 * 1024}, headers=auth
    )
    assert too_big.status_code == 413
    assert (
        platform_cloud.http("POST", "/tenants/files-a/uploads/not-an-id/complete", headers=auth).status_code
        == 400
    )


def test_parallel_completes_answer_as_one_and_a_presigned_post_sent_again_is_never_completed(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    auth = _headers(tenants["a"], binary=False)
    data = b"\x05" * 3000
    reply = platform_cloud.http(
        "POST", "/tenants/files-a/uploads", json={"key": "race/one.bin", "size": len(data)}, headers=auth
    )
    assert reply.status_code == 201, reply.text
    upload = reply.json()

    def send(body: bytes) -> int:
        return requests.post(
            upload["url"], data=upload["fields"], files={"file": ("f", body)}, timeout=10
        ).status_code

    assert send(data) == 204
    complete = f"/tenants/files-a/uploads/{upload['upload_id']}/complete"
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _i: platform_cloud.http("POST", complete, headers=auth), range(6)))
    assert {r.status_code for r in replies} <= {200, 409}, [r.text for r in replies]  # never a 5xx
    answers = [r.json() for r in replies if r.status_code == 200]
    assert answers, [r.text for r in replies]
    assert all(a == answers[0] for a in answers)
    assert (answers[0]["key"], answers[0]["size"]) == ("race/one.bin", len(data))
    for busy in (r for r in replies if r.status_code == 409):
        assert (busy.json()["error"], busy.headers.get("Retry-After")) == ("file_busy", "1")
    # S3 takes the presigned POST again until it expires: never completed (or counted) again
    assert send(b"\x06" * 3000) == 204
    again = platform_cloud.http("POST", complete, headers=auth)
    assert (again.status_code, again.json()) == (200, answers[0])
    s3 = platform_cloud.client("s3")
    versions = s3.list_object_versions(Bucket="dcisionai-10ca1000-tenant-files-a-data", Prefix="race/one.bin")
    assert len(versions["Versions"]) == 1
    got = platform_cloud.http(
        "GET", "/tenants/files-a/files/race/one.bin", headers=_headers(tenants["a-viewer"])
    )
    assert got.content == data
    gone = platform_cloud.http(
        "DELETE", "/tenants/files-a/files/race/one.bin", headers=_headers(tenants["a"])
    )
    assert gone.status_code == 204


def test_offboarding_shreds_every_copy_of_the_files(
    platform_cloud: RunningCloud, platform_admin: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    _onboard(platform_cloud, platform_admin, "files-gone")
    token = mint_token(platform_cloud, "files-gone", "dev", ["developer"])
    path = "/tenants/files-gone/files/keep.txt"
    assert platform_cloud.http("PUT", path, data=b"confidential", headers=_headers(token)).status_code == 200
    copy = platform_cloud.client("s3").get_object(
        Bucket="dcisionai-10ca1000-tenant-files-gone-data", Key="keep.txt"
    )
    ciphertext = copy["Body"].read()  # a backup, or a leaked object
    started = now()
    assert (
        platform_cloud.http("DELETE", "/tenants/files-gone", headers=platform_admin.headers).status_code
        == 202
    )
    assert (
        finished_execution(platform_cloud, "offboarding", "files-gone", after=started)["status"]
        == "SUCCEEDED"
    )
    for name, value in platform_cloud.aws_environment().items():
        monkeypatch.setenv(name, value)
    crypto.reset_caches()
    try:
        with pytest.raises(crypto.DecryptionRefused):  # the tenant data key is pending deletion
            crypto.decrypt(
                ciphertext, {"tenant_id": "files-gone", "purpose": "file", "key": "keep.txt"}, "123456789012"
            )
    finally:
        crypto.reset_caches()
