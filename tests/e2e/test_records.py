"""Tenant records over HTTP: stored in the tenant's own database or schema through its own role,
sensitive fields sealed; other tenants, wrong roles, bad input and a foreign data locality refused
with nothing written."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from psycopg import sql

from tests.support.cloud import RunningCloud
from tests.support.identity import assert_no_secrets_logged, mint_token, seed_tenant
from tests.support.tenants import connect_as_master


@pytest.fixture(scope="module")
def tenants(platform_cloud: RunningCloud) -> dict[str, str]:
    seed_tenant(platform_cloud, "recs-a", database="database")
    seed_tenant(platform_cloud, "recs-b", database="schema")
    seed_tenant(
        platform_cloud,
        "recs-eu",
        database="schema",
        data_protection={"data_locality": ["eu-west-1"], "cross_region_encryption": False},
    )
    return {
        "a-dev": mint_token(platform_cloud, "recs-a", "dana", ["developer"]),
        "a-viewer": mint_token(platform_cloud, "recs-a", "vic", ["viewer"]),
        "b-dev": mint_token(platform_cloud, "recs-b", "bo", ["developer"]),
        "eu-dev": mint_token(platform_cloud, "recs-eu", "eve", ["developer"]),
    }


def _call(cloud: RunningCloud, method: str, path: str, token: str, **kwargs: Any) -> Any:
    return cloud.http(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def _post_raw(cloud: RunningCloud, tenant: str, token: str, body: str) -> Any:
    return cloud.http(
        "POST",
        f"/tenants/{tenant}/records",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def _rows(cloud: RunningCloud, tenant: str) -> list[tuple[Any, ...]]:
    """Every row of the tenant's records table, read as the master user."""
    login = json.loads(
        cloud.client("secretsmanager").get_secret_value(SecretId=f"dcisionai/tenants/{tenant}/database")[
            "SecretString"
        ]
    )
    with connect_as_master(cloud, login["dbname"]) as conn:
        return conn.execute(
            sql.SQL("SELECT id::text, data::text, sealed FROM {}").format(
                sql.Identifier(login["schema"], "records")
            )
        ).fetchall()


def test_a_record_round_trips_and_its_sensitive_fields_are_sealed(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    body = {"data": {"patient": "P-17", "diagnosis": "J45.909", "score": 0.93}, "sensitive": ["diagnosis"]}
    created = _call(platform_cloud, "POST", "/tenants/recs-a/records", tenants["a-dev"], json=body)
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["sensitive"] == ["diagnosis"]
    assert record["created_by"] == "dana"
    uuid.UUID(record["id"])
    for reader in ("a-dev", "a-viewer"):
        got = _call(platform_cloud, "GET", f"/tenants/recs-a/records/{record['id']}", tenants[reader])
        assert got.status_code == 200, got.text
        assert got.json()["data"] == body["data"]
    (row,) = [r for r in _rows(platform_cloud, "recs-a") if r[0] == record["id"]]
    assert "J45.909" not in row[1]
    assert b"J45.909" not in bytes(row[2])
    assert "P-17" in row[1]
    # a viewer reads but does not write
    denied = _call(platform_cloud, "POST", "/tenants/recs-a/records", tenants["a-viewer"], json=body)
    assert denied.status_code == 403


def test_another_tenants_records_are_out_of_reach(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    mine = _call(platform_cloud, "POST", "/tenants/recs-b/records", tenants["b-dev"], json={"data": {"k": 1}})
    assert mine.status_code == 201, mine.text
    theirs = f"/tenants/recs-b/records/{mine.json()['id']}"
    assert _call(platform_cloud, "GET", theirs, tenants["a-dev"]).status_code == 403
    before = len(_rows(platform_cloud, "recs-b"))
    post = _call(platform_cloud, "POST", "/tenants/recs-b/records", tenants["a-dev"], json={"data": {"x": 1}})
    assert post.status_code == 403
    assert len(_rows(platform_cloud, "recs-b")) == before
    # B's record id under A's own path: A's database has no such record
    assert (
        _call(
            platform_cloud, "GET", f"/tenants/recs-a/records/{mine.json()['id']}", tenants["a-dev"]
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{nope", 400),
        ("[]", 400),
        ('{"data": []}', 400),
        ('{"data": "x"}', 400),
        ('{"data": {"a": 1}, "sensitive": "a"}', 400),
        ('{"data": {"a": 1}, "sensitive": ["b"]}', 400),
        ('{"data": {"a": 1}, "extra": true}', 400),
        ('{"data": {"a": "x\\u0000y"}}', 400),
        ('{"data": {"a": NaN}}', 400),
        ('{"data": {"a": 1e999}}', 400),
        ('{"data": {"d": ' + "[" * 40 + "]" * 40 + "}}", 400),
        (json.dumps({"data": {"big": "x" * 300_000}}), 413),
        (json.dumps({"data": {"'; DROP TABLE records; --": "x"}, "sensitive": ["b"]}), 400),
    ],
)
def test_bad_records_are_4xx_and_write_nothing(
    platform_cloud: RunningCloud, tenants: dict[str, str], body: str, status: int
) -> None:
    before = _rows(platform_cloud, "recs-a")
    reply = _post_raw(platform_cloud, "recs-a", tenants["a-dev"], body)
    assert reply.status_code == status, reply.text
    assert "error" in reply.json()
    assert _rows(platform_cloud, "recs-a") == before


def test_injection_strings_are_stored_as_data_and_ids_are_checked(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    hostile = {
        "'; DROP TABLE records; --": "1' OR '1'='1",
        "path": "../../etc/passwd",
        "crlf": "a\r\nSet-Cookie: x",
    }
    created = _call(
        platform_cloud, "POST", "/tenants/recs-a/records", tenants["a-dev"], json={"data": hostile}
    )
    assert created.status_code == 201, created.text
    got = _call(platform_cloud, "GET", f"/tenants/recs-a/records/{created.json()['id']}", tenants["a-dev"])
    assert got.json()["data"] == hostile
    for bad_id in ("1%27%20OR%20%271%27=%271", "not-a-uuid", "%2E%2E"):
        reply = _call(platform_cloud, "GET", f"/tenants/recs-a/records/{bad_id}", tenants["a-dev"])
        assert reply.status_code == 400, (bad_id, reply.text)
    missing = _call(platform_cloud, "GET", f"/tenants/recs-a/records/{uuid.uuid4()}", tenants["a-dev"])
    assert missing.status_code == 404


def test_writes_outside_the_tenants_data_locality_are_refused(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    # recs-eu allows only eu-west-1; this stack stores data in us-east-1
    record = _call(
        platform_cloud, "POST", "/tenants/recs-eu/records", tenants["eu-dev"], json={"data": {"a": 1}}
    )
    assert record.status_code == 403
    assert record.json()["error"] == "data_locality"
    file = platform_cloud.http(
        "PUT",
        "/tenants/recs-eu/files/a.txt",
        data=b"x",
        headers={"Authorization": f"Bearer {tenants['eu-dev']}", "Content-Type": "application/octet-stream"},
    )
    assert file.status_code == 403
    assert file.json()["error"] == "data_locality"
    officer = mint_token(platform_cloud, "recs-eu", "sam", ["security-admin"])
    secret = _call(platform_cloud, "PUT", "/tenants/recs-eu/secrets/k", officer, json={"value": "v"})
    assert secret.status_code == 403
    assert secret.json()["error"] == "data_locality"
    assert _rows(platform_cloud, "recs-eu") == []
    names = [s["Name"] for s in platform_cloud.client("secretsmanager").list_secrets()["SecretList"]]
    assert "dcisionai/tenants/recs-eu/app/k" not in names


def test_no_database_password_reached_the_logs(
    platform_cloud: RunningCloud, platform_admin: Any, tenants: dict[str, str]
) -> None:
    assert_no_secrets_logged(platform_cloud)
