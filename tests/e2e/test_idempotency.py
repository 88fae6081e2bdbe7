"""Idempotency-Key over HTTP: a POST that creates something runs once per key and caller.

A repeat with the same key and body gets the first reply (status and body) and creates nothing
more; another body is 422; parallel repeats create one item (the others get the first reply or
409); another tenant or user with the same key is a request of its own; no header, no idempotency.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from psycopg import sql

from tests.support.cloud import RunningCloud, wait_for, warm_workers
from tests.support.identity import mint_token, seed_tenant
from tests.support.tenants import connect_as_master

pytestmark = pytest.mark.e2e
A, B = "idem-a", "idem-b"
PARALLEL = 8


@pytest.fixture(scope="module")
def tokens(platform_cloud: RunningCloud) -> dict[str, str]:
    seed_tenant(platform_cloud, A, database="schema")
    seed_tenant(platform_cloud, B, database="schema")
    platform_cloud.client("s3").create_bucket(Bucket=f"dcisionai-10ca1000-tenant-{A}-data")
    return {
        "a-dev": mint_token(platform_cloud, A, "dana", ["developer"]),
        "a-dev2": mint_token(platform_cloud, A, "dora", ["developer"]),
        "a-admin": mint_token(platform_cloud, A, "ada", ["tenant-admin"]),
        "b-dev": mint_token(platform_cloud, B, "bo", ["developer"]),
    }


def _post(
    cloud: RunningCloud, path: str, token: str, body: dict[str, Any], key: str | None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return cloud.http("POST", path, headers=headers, json=body)


def _record_ids(cloud: RunningCloud, tenant: str, marker: str) -> list[str]:
    """Ids of the tenant's records whose data holds ``marker``, read as the master user."""
    login = json.loads(
        cloud.client("secretsmanager").get_secret_value(SecretId=f"dcisionai/tenants/{tenant}/database")[
            "SecretString"
        ]
    )
    with connect_as_master(cloud, login["dbname"]) as conn:
        rows = conn.execute(
            sql.SQL("SELECT id::text, data::text FROM {}").format(sql.Identifier(login["schema"], "records"))
        ).fetchall()
    return [row[0] for row in rows if marker in row[1]]


def _record(marker: str) -> dict[str, Any]:
    return {"data": {"marker": marker, "amount": 12}}


def test_a_repeat_gets_the_first_reply_and_creates_one_record(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    key, marker = str(uuid.uuid4()), f"m-{uuid.uuid4().hex}"
    path = f"/tenants/{A}/records"
    first = _post(platform_cloud, path, tokens["a-dev"], _record(marker), key)
    assert first.status_code == 201, first.text
    # the same body, its keys in another order and spaced otherwise, is the same request
    again = platform_cloud.http(
        "POST",
        path,
        headers={
            "Authorization": f"Bearer {tokens['a-dev']}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        },
        data=json.dumps({"data": {"amount": 12, "marker": marker}}, indent=2),
    )
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert _record_ids(platform_cloud, A, marker) == [first.json()["id"]]


def test_the_same_key_with_another_body_is_422(platform_cloud: RunningCloud, tokens: dict[str, str]) -> None:
    key, marker = str(uuid.uuid4()), f"m-{uuid.uuid4().hex}"
    path = f"/tenants/{A}/records"
    assert _post(platform_cloud, path, tokens["a-dev"], _record(marker), key).status_code == 201
    other = _post(platform_cloud, path, tokens["a-dev"], _record(marker + "-other"), key)
    assert other.status_code == 422, other.text
    assert other.json()["error"] == "idempotency_key_reused"
    assert _record_ids(platform_cloud, A, marker + "-other") == []
    # the same key on another route is another request too
    upload = _post(platform_cloud, f"/tenants/{A}/uploads", tokens["a-dev"], {"key": "x.bin", "size": 3}, key)
    assert upload.status_code == 422, upload.text


def _warm_workers(cloud: RunningCloud, token: str) -> None:
    """PARALLEL warm data-API workers (tests/support/cloud.py warm_workers)."""
    missing = f"/tenants/{A}/records/{uuid.uuid4()}"
    warm_workers(lambda: cloud.http("GET", missing, headers={"Authorization": f"Bearer {token}"}), PARALLEL)


def test_parallel_repeats_create_one_record(platform_cloud: RunningCloud, tokens: dict[str, str]) -> None:
    key, marker = str(uuid.uuid4()), f"m-{uuid.uuid4().hex}"
    path = f"/tenants/{A}/records"
    _warm_workers(platform_cloud, tokens["a-dev"])
    with ThreadPoolExecutor(PARALLEL) as pool:
        replies = list(
            pool.map(
                lambda _: _post(platform_cloud, path, tokens["a-dev"], _record(marker), key), range(PARALLEL)
            )
        )
    created = [r for r in replies if r.status_code == 201]
    assert created, [r.text for r in replies]
    assert all(r.status_code in (201, 409) for r in replies), [(r.status_code, r.text) for r in replies]
    assert all(r.json()["error"] == "idempotency_key_in_use" for r in replies if r.status_code == 409)
    assert len({r.json()["id"] for r in created}) == 1
    assert _record_ids(platform_cloud, A, marker) == [created[0].json()["id"]]
    # once the first finished, a repeat gets its reply
    late = _post(platform_cloud, path, tokens["a-dev"], _record(marker), key)
    assert late.status_code == 201
    assert late.json() == created[0].json()


def test_another_tenant_or_user_with_the_same_key_is_a_request_of_its_own(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    key, marker = str(uuid.uuid4()), f"m-{uuid.uuid4().hex}"
    mine = _post(platform_cloud, f"/tenants/{A}/records", tokens["a-dev"], _record(marker), key)
    assert mine.status_code == 201, mine.text
    # a forger who learnt the key gets nothing of the first reply: its own request runs
    theirs = _post(platform_cloud, f"/tenants/{B}/records", tokens["b-dev"], _record(marker), key)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["created_by"] == "bo"
    colleague = _post(platform_cloud, f"/tenants/{A}/records", tokens["a-dev2"], _record(marker), key)
    assert colleague.status_code == 201, colleague.text
    assert colleague.json()["id"] != mine.json()["id"]
    assert colleague.json()["created_by"] == "dora"
    assert sorted(_record_ids(platform_cloud, A, marker)) == sorted(
        [mine.json()["id"], colleague.json()["id"]]
    )
    assert _record_ids(platform_cloud, B, marker) == [theirs.json()["id"]]


def test_without_the_header_each_request_creates(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    path = f"/tenants/{A}/records"
    ids = [_post(platform_cloud, path, tokens["a-dev"], _record(marker), None).json()["id"] for _ in range(2)]
    assert len(set(ids)) == 2
    assert sorted(_record_ids(platform_cloud, A, marker)) == sorted(ids)


def test_a_malformed_key_is_400(platform_cloud: RunningCloud, tokens: dict[str, str]) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    reply = _post(platform_cloud, f"/tenants/{A}/records", tokens["a-dev"], _record(marker), "short")
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == "validation_error"
    assert _record_ids(platform_cloud, A, marker) == []


def test_a_repeated_user_creation_returns_the_one_time_password_once_created(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    key = str(uuid.uuid4())
    body = {"username": "idem-user", "email": "idem-user@example.com", "roles": ["viewer"]}
    path = f"/tenants/{A}/users"
    first = _post(platform_cloud, path, tokens["a-admin"], body, key)
    assert first.status_code == 201, first.text
    again = _post(platform_cloud, path, tokens["a-admin"], body, key)
    assert (again.status_code, again.json()) == (201, first.json())
    # without the key, the user exists already
    assert _post(platform_cloud, path, tokens["a-admin"], body, None).status_code == 409
    # the kept reply is sealed: the one-time password is nowhere in the table
    items = platform_cloud.client("dynamodb").scan(TableName="dcisionai-idempotency")["Items"]
    assert items
    assert first.json()["temporary_password"] not in json.dumps(items)


def test_a_replay_says_so_in_its_reply_and_its_audit_record(
    platform_cloud: RunningCloud, tokens: dict[str, str]
) -> None:
    auditor = mint_token(platform_cloud, A, "audrey", ["tenant-admin", "auditor"])
    key, name = str(uuid.uuid4()), f"u{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@example.com", "roles": ["viewer"]}
    path = f"/tenants/{A}/users"
    first = _post(platform_cloud, path, auditor, body, key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = _post(platform_cloud, path, auditor, body, key)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"

    def creations() -> list[dict[str, Any]] | None:
        reply = platform_cloud.http(
            "GET",
            f"/tenants/{A}/audit",
            params={"action": "users:Create", "actor": "audrey"},
            headers={"Authorization": f"Bearer {auditor}"},
        )
        assert reply.status_code == 200, reply.text
        items = [i for i in reply.json()["items"] if (i.get("target") or {}).get("user") == name]
        return items if len(items) >= 2 else None

    items = wait_for(creations, timeout=60, interval=2)
    # both name the user; the replay is told apart from the creation
    assert sorted(bool((i.get("details") or {}).get("replay")) for i in items) == [False, True], items


def test_a_repeated_upload_gets_the_same_upload(platform_cloud: RunningCloud, tokens: dict[str, str]) -> None:
    key = str(uuid.uuid4())
    body = {"key": f"idem/{uuid.uuid4().hex}.bin", "size": 5}
    path = f"/tenants/{A}/uploads"
    first = _post(platform_cloud, path, tokens["a-dev"], body, key)
    assert first.status_code == 201, first.text
    again = _post(platform_cloud, path, tokens["a-dev"], body, key)
    assert (again.status_code, again.json()) == (201, first.json())
