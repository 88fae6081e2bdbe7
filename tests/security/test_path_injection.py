"""Injection strings in every path parameter of the admin routes, sent by a platform-admin (whose
policy admits any tenant path): a 400 (or a 404 for a path no route matches) with a JSON error
each time, never a 5xx, nothing created."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.support.cloud import RunningCloud
from tests.support.identity import Identity, mint_token

pytestmark = pytest.mark.e2e

PROBES = [
    "acme'; DROP TABLE users; --",
    "..%2F..%2Fetc%2Fpasswd",
    "ACME",
    "a" * 300,
    "%00",
    "acme\r\nX-Injected: 1",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "\u202eemca",
]
ROUTES = [
    ("GET", "/tenants/{t}"),
    ("GET", "/tenants/{t}/users"),
    ("POST", "/tenants/{t}/users"),
    ("DELETE", "/tenants/{t}/users/{u}"),
    ("PUT", "/tenants/{t}/users/{u}/roles"),
    ("DELETE", "/tenants/{t}/sessions"),
    ("GET", "/tenants/{t}/quotas"),
    ("PUT", "/tenants/{t}/quotas"),
    ("GET", "/tenants/{t}/quotas/usage"),
    ("DELETE", "/tenants/{t}"),
]


@pytest.fixture(scope="module")
def operator(platform_cloud: RunningCloud) -> str:
    return mint_token(platform_cloud, "platform", "ops", ["platform-admin"])


@pytest.mark.parametrize("probe", PROBES)
@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_injection_in_path_parameters(
    platform_cloud: RunningCloud, operator: str, probe: str, method: str, route: str
) -> None:
    for tenant, user in ((probe, "alice"), ("platform", probe)):
        if "{u}" not in route and tenant != probe:
            continue
        path = route.replace("{t}", quote(tenant, safe="%")).replace("{u}", quote(user, safe="%"))
        reply = platform_cloud.http(
            method,
            path,
            headers={"Authorization": f"Bearer {operator}"},
            json={"roles": ["viewer"], "username": "x1", "email": "x@y.io"},
        )
        # 400 from the id rules; 404 when the probe cannot even match a route (a decoded "/", a
        # control character): either way refused before any store is read
        assert reply.status_code in (400, 404), (method, path, reply.status_code, reply.text)
        assert reply.json()["error"] in ("validation_error", "not_found")
    names = [b["Name"] for b in platform_cloud.client("s3").list_buckets()["Buckets"]]
    assert not any("drop" in n or "etc" in n for n in names)


def test_the_platform_admin_itself_is_untouched(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    users = platform_cloud.http("GET", "/tenants/platform/users", headers=platform_admin.headers).json()[
        "items"
    ]
    assert [u["username"] for u in users if u["username"] == "admin"] == ["admin"]


@pytest.mark.parametrize("tenant", ["ACME", "acme'--", "a" * 40, "1abc", "ab"])
def test_a_tenant_id_breaking_the_rule_is_400_at_the_entry_point(
    platform_cloud: RunningCloud, operator: str, tenant: str
) -> None:
    reply = platform_cloud.http(
        "GET", f"/tenants/{quote(tenant)}/users", headers={"Authorization": f"Bearer {operator}"}
    )
    assert reply.status_code == 400
    assert reply.json()["fields"][0]["field"] == "path.tenant_id"
