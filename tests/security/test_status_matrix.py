"""Every protected route against a tenant in every status but ACTIVE, as a platform-admin (who
alone passes the authorizer for such a tenant): what the status forbids is a 409
``tenant_not_active``, what it allows answers without a 5xx -- never a 500 because the tenant's
keys, buckets or users are gone (a platform-admin could create users in an OFFBOARDED tenant,
whose MFA enrolment then failed with a 500)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tenant_security.authz.routes import rule_for
from tenant_security.context import ALLOWED_WHEN_NOT_ACTIVE
from tests.security.test_attack_matrix import _path, _protected_routes
from tests.support.cloud import RunningCloud, warm_api_workers
from tests.support.identity import mint_token, seed_tenant

pytestmark = pytest.mark.e2e
STATUSES = ("PROVISIONING", "FAILED", "SUSPENDED", "OFFBOARDING", "OFFBOARDED")
# Routes whose admitted call would end the very status under test (run last, or not at all).
CHANGES_STATUS = {("POST", "/tenants/{tenant_id}/reinstate"), ("DELETE", "/tenants/{tenant_id}")}


def _tenant(status: str) -> str:
    return f"st-{status.lower()}"


@pytest.fixture(scope="module")
def tenants_in_every_status(platform_cloud: RunningCloud) -> None:
    kms = platform_cloud.client("kms")
    for status in STATUSES:
        tenant = _tenant(status)
        seed_tenant(platform_cloud, tenant, status=status)
        if status == "OFFBOARDED":  # as offboarding leaves it: keys shredded, the trail kept
            for purpose in ("data", "secrets"):
                key = kms.describe_key(KeyId=f"alias/dcisionai-tenant-{tenant}-{purpose}")["KeyMetadata"][
                    "KeyId"
                ]
                kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)


def _call(
    cloud: RunningCloud, token: str, method: str, resource: str, status: str
) -> tuple[str, str, int, str]:
    headers: dict[str, str] = {"Authorization": f"Bearer {token}"}
    kwargs: dict[str, Any] = {"params": {"period": "2026-Q4"}}
    if method in ("POST", "PUT"):
        is_file = "{key+}" in resource
        headers["Content-Type"] = "application/octet-stream" if is_file else "application/json"
        kwargs["data"] = (
            b"x" if is_file else b'{"username": "st-user", "email": "u@x.io", "roles": ["viewer"]}'
        )
    reply = cloud.http(method, _path(resource, _tenant(status)), headers=headers, **kwargs)
    return method, resource, reply.status_code, reply.text[:200]


def test_every_route_in_every_status_is_refused_or_answered_never_a_500(
    platform_cloud: RunningCloud, tenants_in_every_status: None
) -> None:
    operator = mint_token(platform_cloud, "platform", "st-operator", ["platform-admin"])
    cells = [
        (method, resource, status)
        for method, resource in _protected_routes()
        if "{tenant_id}" in resource and (method, resource) not in CHANGES_STATUS
        for status in STATUSES
    ]
    warm_api_workers(platform_cloud, operator, _tenant("SUSPENDED"), 6)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda c: (*_call(platform_cloud, operator, *c), c[2]), cells))
    wrong = []
    for method, resource, code, text, status in results:
        rule = rule_for(method, resource)
        assert rule is not None
        allowed = rule.action in ALLOWED_WHEN_NOT_ACTIVE[status]
        # (a body that does not fit the route is refused before anything: 400 validation_error)
        refused = (code == 409 and '"tenant_not_active"' in text) or (
            code == 400 and '"validation_error"' in text
        )
        if code >= 500 or (not allowed and not refused):
            wrong.append(
                f"{status} {method} {resource} ({'allowed' if allowed else 'refused'}): {code} {text}"
            )
    assert not wrong, f"{len(wrong)} of {len(results)}:\n" + "\n".join(wrong[:40])


def test_no_user_is_created_in_a_tenant_that_is_not_active(
    platform_cloud: RunningCloud, tenants_in_every_status: None
) -> None:
    operator = mint_token(platform_cloud, "platform", "st-operator", ["platform-admin"])
    for status in STATUSES:
        reply = platform_cloud.http(
            "POST",
            f"/tenants/{_tenant(status)}/users",
            headers={"Authorization": f"Bearer {operator}"},
            json={"username": "late", "email": "late@x.io", "roles": ["viewer"]},
        )
        assert (reply.status_code, reply.json()["error"]) == (409, "tenant_not_active"), (status, reply.text)
