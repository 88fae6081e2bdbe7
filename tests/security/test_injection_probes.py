"""Injection probes in every string input of every operation of the OpenAPI document.

Each path parameter, query parameter and top-level string field of a JSON body gets, one at a
time (every other input valid), SQL, path traversal, CRLF, oversized and invalid UTF-8 values,
sent as an admin of the probe tenant. Every answer is a 4xx -- except where the input is free text
by contract and the probe is just text to it (listed below with the reason) -- and PostgreSQL and
S3 are as they were: no table, schema, role or row appeared or vanished, no object was written
outside what the accepted free-text cases wrote literally.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.cloud import RunningCloud
from tests.support.identity import mint_token, seed_tenant
from tests.support.tenants import connect_as_master

pytestmark = pytest.mark.e2e

TENANT = "inject-t"
PROBES: dict[str, str] = {
    "sql": "x' OR '1'='1'; DROP TABLE records; --",
    "traversal": "../../etc/passwd",
    "crlf": "a\r\nX-Injected: 1",
    "oversized": "A" * 40_000,  # past every limit: 512-byte keys, 32 KiB secrets, 10 KB URLs
    "invalid-utf8": "\udcff",  # a lone surrogate: sent as the raw byte 0xFF
}
# Valid values for every input, so that a probe is the only thing wrong with a request.
VALID_PATH = {
    "tenant_id": TENANT,
    "key": "ok.txt",
    "username": "ok-user",
    "record_id": "00000000-0000-0000-0000-000000000001",
    "name": "ok-name",
    "upload_id": "0" * 32,
    "framework": "gdpr",
    "role": "ok-role",
    "session_id": "ok" + "0" * 30,
    "client_id": "ok_" + "0" * 20,
}
VALID_QUERY = {"period": "2026-Q4", "format": "json", "limit": "5"}
VALID_BODY: dict[str, dict[str, Any]] = {
    "LoginBody": {"tenant_id": TENANT, "username": "ok-user", "password": "not-the-password"},
    "ActivateBody": {"enrollment_token": "t", "code": "123456"},
    "VerifyBody": {"challenge_token": "t", "code": "123456"},
    "PasswordBody": {"current_password": "old-password-1", "new_password": "New-password-12345"},
    "OnboardingRequest": {
        "tenant_id": "inject-new",
        "name": "New",
        "isolation": "schema",
        "admin": {"username": "owner", "email": "o@new.example"},
    },
    "FileRef": {"key": "ok.txt"},
    "NewUpload": {"key": "ok.txt", "size": 10},
    "NewRecord": {"data": {"a": 1}},
    "SecretValue": {"value": "v"},
    "NewUser": {"username": "ok-user", "email": "ok@inject.example", "roles": ["viewer"]},
    "Roles": {"roles": ["viewer"]},
    "RoleDefinition": {"permissions": ["files:Read"]},
    "NewClient": {"name": "ok-client", "roles": ["viewer"]},
    "SecretRotation": {"grace_seconds": 0},
}
# Free text by contract: these probes are plain text to these inputs (accepted or refused, never
# a 5xx, never interpreted).
FREE_TEXT = {
    ("key", "sql"): "quotes and semicolons are legal in file names; the key is an S3 key, never SQL",
    ("prefix", "sql"): "a listing filter matched literally against keys",
    ("prefix", "traversal"): "a listing filter matched literally against keys",
    ("prefix", "crlf"): "a listing filter matched literally against keys",
    ("prefix", "invalid-utf8"): "an undecodable query escape arrives as the literal text '%FF'",
    ("actor", "sql"): "an audit filter compared literally",
    ("actor", "traversal"): "an audit filter compared literally",
    ("value", "sql"): "a secret's value is opaque text, encrypted as it is",
    ("value", "traversal"): "a secret's value is opaque text, encrypted as it is",
    ("value", "crlf"): "a secret's value is opaque text, encrypted as it is",
    ("password", "sql"): "a password is hashed, never interpreted (the login is refused: 401)",
    ("password", "traversal"): "a password is hashed, never interpreted (the login is refused: 401)",
    ("password", "crlf"): "a password is hashed, never interpreted (the login is refused: 401)",
    ("current_password", "sql"): "checked against the hash (refused: 401)",
}


def _inputs(document: dict[str, Any]) -> list[tuple[str, str, str, str, str | None]]:
    """(method, path, where, name, body schema) of every string input."""
    schemas = document["components"]["schemas"]
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body_ref = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref")
            )
            body = body_ref.rsplit("/", 1)[-1] if body_ref else None
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("path", "query"):
                    found.append((method.upper(), path, parameter["in"], parameter["name"], body))
            if body is not None:
                for field, spec in schemas[body].get("properties", {}).items():
                    if spec.get("type") == "string" or "anyOf" in spec:
                        found.append((method.upper(), path, "body", field, body))
    return found


def _send(cloud: RunningCloud, token: str, case: tuple[str, str, str, str, str | None], probe: str) -> Any:
    method, path, where, name, body = case
    values = {**VALID_PATH, **({name: probe} if where == "path" else {})}
    url = path
    for param, value in values.items():
        url = url.replace("{" + param + "}", quote(value, safe="", errors="surrogateescape"))
    query = {**VALID_QUERY, **({name: probe} if where == "query" else {})}
    query_string = "&".join(
        f"{quote(k)}={quote(v, safe='', errors='surrogateescape')}" for k, v in query.items()
    )
    headers = {"Authorization": f"Bearer {token}"}
    data: bytes | None = None
    if body is not None:
        document = {**VALID_BODY[body], **({name: probe} if where == "body" else {})}
        data = json.dumps(document, ensure_ascii=False).encode("utf-8", errors="surrogateescape")
        headers["Content-Type"] = "application/json"
    elif method in ("PUT", "POST"):
        data, headers["Content-Type"] = b"x", "application/octet-stream"
    return cloud.http(method, f"{url}?{query_string}", headers=headers, data=data)


def _state(cloud: RunningCloud) -> dict[str, Any]:
    with connect_as_master(cloud) as conn:
        catalog = {
            "roles": conn.execute("SELECT rolname FROM pg_roles ORDER BY 1").fetchall(),
            "databases": conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall(),
        }
    with connect_as_master(cloud, "tenants_shared") as conn:
        catalog["tables"] = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname LIKE 'tenant_%' ORDER BY 1, 2"
        ).fetchall()
        catalog["records"] = conn.execute(f'SELECT count(*) FROM "tenant_{TENANT}".records').fetchall()  # noqa: S608
    s3 = cloud.client("s3")
    catalog["buckets"] = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    catalog["objects"] = sorted(
        o["Key"]
        for o in s3.list_objects_v2(Bucket=f"dcisionai-10ca1000-tenant-{TENANT}-data").get("Contents", [])
    )
    return catalog


def test_every_string_input_refuses_injection_and_nothing_changes(platform_cloud: RunningCloud) -> None:
    seed_tenant(platform_cloud, TENANT, database="schema")
    platform_cloud.client("s3").create_bucket(Bucket=f"dcisionai-10ca1000-tenant-{TENANT}-data")
    document = platform_cloud.http("GET", "/openapi.json").json()
    cases = [(case, kind) for case in _inputs(document) for kind in PROBES]
    assert len(cases) > 200
    before = _state(platform_cloud)
    token = mint_token(platform_cloud, TENANT, "inj-admin", ["tenant-admin"])

    def run(item: tuple[tuple[str, str, str, str, str | None], str]) -> str | None:
        case, kind = item
        # sessions survive: the revoke route has no string input but the tenant id, which a probe spoils
        reply = _send(platform_cloud, token, case, PROBES[kind])
        method, path, where, name, _ = case
        if reply.status_code >= 500:
            return f"{method} {path} {where}.{name} [{kind}] -> {reply.status_code} {reply.text[:200]}"
        if not 400 <= reply.status_code < 500 and (name, kind) not in FREE_TEXT:
            return f"{method} {path} {where}.{name} [{kind}] accepted: {reply.status_code} {reply.text[:200]}"
        return None

    with ThreadPoolExecutor(max_workers=6) as pool:
        wrong = [w for w in pool.map(run, cases) if w]
    assert not wrong, f"{len(wrong)} of {len(cases)} probes:\n" + "\n".join(wrong[:50])
    after = _state(platform_cloud)
    written = set(after.pop("objects")) - set(before.pop("objects"))
    assert after == before
    assert written <= {PROBES["sql"]}, written  # only the file key that is free text, written literally
