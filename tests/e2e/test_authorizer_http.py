"""The authorizer through API Gateway (local cloud, template.yaml): bad tokens are 401; other
tenants, missing roles, foreign source addresses, suspended tenants and foreign data regions are
403; a cached decision answers each route right."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tenant_security.identity.tokens import TokenIssuer
from tests.support.cloud import RunningCloud
from tests.support.identity import (
    AUDIENCE,
    ISSUER,
    assert_no_secrets_logged,
    mint_token,
    seed_tenant,
    seen,
    signing_key_id,
)
from tests.support.identity_fakes import LocalSigner
from tests.unit.test_rbac_and_routes import template_routes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tenants(platform_cloud: RunningCloud) -> dict[str, str]:
    seed_tenant(platform_cloud, "authz-a")
    seed_tenant(platform_cloud, "authz-b")
    seed_tenant(platform_cloud, "authz-net", access_control={"ip_whitelist": ["10.0.0.0/8"]})
    seed_tenant(platform_cloud, "authz-frozen", status="SUSPENDED")
    seed_tenant(
        platform_cloud,
        "authz-eu",
        data_protection={"data_locality": ["eu-west-1"], "cross_region_encryption": False},
    )
    return {"a": mint_token(platform_cloud, "authz-a", "ann", ["tenant-admin"])}


def get(cloud: RunningCloud, path: str, token: str, **headers: str) -> Any:
    return cloud.http("GET", path, headers={"Authorization": f"Bearer {token}", **headers})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(kid: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "ann",
        "tenant_id": "authz-a",
        "iat": now,
        "exp": now + 300,
        "jti": "j",
        "token_use": "access",
        "roles": ["platform-admin"],
        "amr": ["pwd", "otp"],
        "sid": "s",
        "scope": "full",
        **extra,
    }
    return {"alg": "ES256", "typ": "JWT", "kid": kid}, body


def bad_tokens(cloud: RunningCloud) -> dict[str, str]:
    kid = signing_key_id(cloud)
    expired = mint_token(cloud, "authz-a", "ann", ["tenant-admin"], clock=time.time() - 7200)
    wrong_issuer = mint_token(cloud, "authz-a", "ann", ["tenant-admin"], issuer="https://evil.example")
    forged, _ = TokenIssuer(LocalSigner(kid), ISSUER, AUDIENCE).issue(  # type: ignore[arg-type]
        subject="ann", tenant_id="authz-a", token_use="access", ttl=300, roles=["platform-admin"], sid="s"
    )
    header, body = claims(kid)
    alg_none = f"{b64({**header, 'alg': 'none'})}.{b64(body)}."
    jwk = cloud.http("GET", "/.well-known/jwks.json").json()["keys"][0]
    from jwt.algorithms import ECAlgorithm

    pem = ECAlgorithm.from_jwk(json.dumps(jwk)).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    hs_head = b64({**header, "alg": "HS256"})
    signature = hmac.new(pem, f"{hs_head}.{b64(body)}".encode(), hashlib.sha256).digest()
    hs256 = f"{hs_head}.{b64(body)}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    out = {
        "expired": expired,
        "wrong-issuer": wrong_issuer,
        "forged": forged,
        "alg-none": alg_none,
        "hs256-public-key": hs256,
        "garbage": "not.a.token",
    }
    seen(*out.values())
    return out


@pytest.mark.parametrize(
    "kind", ["expired", "wrong-issuer", "forged", "alg-none", "hs256-public-key", "garbage"]
)
def test_bad_tokens_are_401(platform_cloud: RunningCloud, tenants: dict[str, str], kind: str) -> None:
    token = bad_tokens(platform_cloud)[kind]
    reply = get(platform_cloud, "/tenants/authz-a/users", token)
    assert reply.status_code == 401, (kind, reply.text)
    assert reply.json()["error"] == "unauthorized"


def test_a_token_of_tenant_a_opens_no_route_of_tenant_b(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    scoped = [(m, p) for m, p, protected in template_routes() if protected and "{tenant_id}" in p]
    assert len(scoped) >= 5
    for method, resource in scoped:
        path = re.sub(r"\{[^}]+\}", "x1", resource.replace("{tenant_id}", "authz-b"))
        reply = platform_cloud.http(
            method,
            path,
            headers={"Authorization": f"Bearer {tenants['a']}"},
            json={"username": "x1", "email": "x@y.io", "roles": ["viewer"]},
        )
        assert reply.status_code == 403, (method, path, reply.text)
    assert platform_cloud.http(
        "POST", "/tenants", headers={"Authorization": f"Bearer {tenants['a']}"}
    ).status_code in (403, 404)


def test_a_cached_decision_answers_each_route_right(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    token = tenants["a"]
    for _ in range(2):  # the second round is served from API Gateway's authorizer cache
        assert get(platform_cloud, "/tenants/authz-a/users", token).status_code == 200
        assert get(platform_cloud, "/tenants/authz-b/users", token).status_code == 403


def test_a_role_without_the_permission_is_403(platform_cloud: RunningCloud, tenants: dict[str, str]) -> None:
    viewer = mint_token(platform_cloud, "authz-a", "val", ["viewer"])
    assert get(platform_cloud, "/tenants/authz-a/users", viewer).status_code == 403
    developer = mint_token(platform_cloud, "authz-a", "dev", ["developer"])
    reply = platform_cloud.http(
        "DELETE", "/tenants/authz-a/sessions", headers={"Authorization": f"Bearer {developer}"}
    )
    assert reply.status_code == 403


def test_a_source_address_outside_the_allow_list_is_403(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    token = mint_token(platform_cloud, "authz-net", "nat", ["tenant-admin"])
    reply = get(platform_cloud, "/tenants/authz-net/users", token, **{"X-Forwarded-For": "10.0.0.5"})
    assert reply.status_code == 403  # 127.0.0.1 is not in 10.0.0.0/8, whatever X-Forwarded-For says


def test_a_suspended_tenant_is_403(platform_cloud: RunningCloud, tenants: dict[str, str]) -> None:
    token = mint_token(platform_cloud, "authz-frozen", "fay", ["tenant-admin"])
    assert get(platform_cloud, "/tenants/authz-frozen/users", token).status_code == 403


def test_mfa_is_required_by_the_policy(platform_cloud: RunningCloud, tenants: dict[str, str]) -> None:
    token = mint_token(platform_cloud, "authz-a", "pat", ["tenant-admin"], amr=("pwd",))
    assert get(platform_cloud, "/tenants/authz-a/users", token).status_code == 403


@pytest.mark.parametrize(
    ("region", "status"), [("us-east-1", 200), ("auto", 200), ("ap-south-1", 403), ("x" * 500, 403)]
)
def test_the_data_region_must_be_inside_data_locality(
    platform_cloud: RunningCloud, tenants: dict[str, str], region: str, status: int
) -> None:
    reply = get(platform_cloud, "/tenants/authz-a/users", tenants["a"], **{"X-Data-Region": region})
    assert reply.status_code == status, reply.text
    if status == 403:
        assert reply.json()["error"] == "data_locality"


def test_a_platform_admin_may_act_in_any_tenant(
    platform_cloud: RunningCloud, tenants: dict[str, str]
) -> None:
    admin = mint_token(platform_cloud, "platform", "ops", ["platform-admin"])
    assert get(platform_cloud, "/tenants/authz-b/users", admin).status_code == 200
    eu = get(platform_cloud, "/tenants/authz-eu/users", admin, **{"X-Data-Region": "us-east-1"})
    assert eu.status_code == 403  # the target tenant's data locality applies


def test_no_secret_reached_the_logs(platform_cloud: RunningCloud, platform_admin: Any) -> None:
    assert_no_secrets_logged(platform_cloud)
