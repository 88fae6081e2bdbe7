"""Tenant application secrets over HTTP: stored encrypted under the tenant secrets key, readable
only by that tenant's security-admin; bad names, types and sizes refused with nothing written."""

from __future__ import annotations

import json
from typing import Any

from tests.support.cloud import RunningCloud
from tests.support.identity import mint_token, seed_tenant


def _call(cloud: RunningCloud, method: str, path: str, token: str, **kwargs: Any) -> Any:
    return cloud.http(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def test_a_secret_round_trips_encrypted_under_the_tenant_key(platform_cloud: RunningCloud) -> None:
    for tenant in ("sec-a", "sec-b"):
        seed_tenant(platform_cloud, tenant)
    officer = mint_token(platform_cloud, "sec-a", "sam", ["security-admin"])
    path = "/tenants/sec-a/secrets/stripe-key"
    put = _call(platform_cloud, "PUT", path, officer, json={"value": "sk_live_abc123"})
    assert put.status_code == 200, put.text
    assert put.json()["name"] == "stripe-key"
    got = _call(platform_cloud, "GET", path, officer).json()
    assert (got["value"], got["version"]) == ("sk_live_abc123", put.json()["version"])
    again = _call(platform_cloud, "PUT", path, officer, json={"value": "sk_live_rotated"})
    assert again.json()["version"] != put.json()["version"]
    assert _call(platform_cloud, "GET", path, officer).json()["value"] == "sk_live_rotated"

    stored = platform_cloud.client("secretsmanager")
    described = stored.describe_secret(SecretId="dcisionai/tenants/sec-a/app/stripe-key")
    assert described["KmsKeyId"].endswith("alias/dcisionai-tenant-sec-a-secrets")
    assert {"Key": "TenantId", "Value": "sec-a"} in described["Tags"]
    raw = stored.get_secret_value(SecretId="dcisionai/tenants/sec-a/app/stripe-key")["SecretBinary"]
    assert b"sk_live_rotated" not in raw  # Encryption SDK ciphertext, bound to tenant, purpose and name

    other = mint_token(platform_cloud, "sec-b", "sid", ["security-admin"])
    assert _call(platform_cloud, "GET", path, other).status_code == 403
    for role in ("developer", "viewer", "auditor"):
        token = mint_token(platform_cloud, "sec-a", f"r-{role}", [role])
        assert _call(platform_cloud, "GET", path, token).status_code == 403, role
    assert _call(platform_cloud, "GET", "/tenants/sec-a/secrets/never-set", officer).status_code == 404


def test_bad_secret_requests_are_4xx_and_write_nothing(platform_cloud: RunningCloud) -> None:
    seed_tenant(platform_cloud, "sec-bad")
    officer = mint_token(platform_cloud, "sec-bad", "sam", ["security-admin"])
    base = "/tenants/sec-bad/secrets"
    cases = [
        ("%2E%2E", {"value": "x"}),
        (".hidden", {"value": "x"}),
        ("a" * 65, {"value": "x"}),
        ("ok", {"value": 5}),
        ("ok", {"value": ""}),
        ("ok", {"value": "x", "extra": 1}),
        ("ok", {"value": "x" * (33 * 1024)}),
        ("ok", {}),
    ]
    for name, body in cases:
        reply = platform_cloud.http(
            "PUT",
            f"{base}/{name}",
            data=json.dumps(body),
            headers={"Authorization": f"Bearer {officer}", "Content-Type": "application/json"},
        )
        assert reply.status_code == 400, (name, body, reply.text)
    malformed = platform_cloud.http(
        "PUT",
        f"{base}/ok",
        data="{nope",
        headers={"Authorization": f"Bearer {officer}", "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    names = [s["Name"] for s in platform_cloud.client("secretsmanager").list_secrets()["SecretList"]]
    assert not [n for n in names if n.startswith("dcisionai/tenants/sec-bad/")]
