"""API clients (machine access) over HTTP through the local cloud, for end-to-end tests: a tenant
as onboarding leaves it with its admin, a client made over the API, a token request by hand."""

from __future__ import annotations

from typing import Any

import requests

from tests.support.cloud import RunningCloud, from_address
from tests.support.identity import Identity, new_signed_in_user, seen


def onboarded_admin(cloud: RunningCloud, platform_admin: Identity, tenant_id: str, username: str) -> Identity:
    """The tenant-admin of a tenant as onboarding leaves it: its keys with the key policies
    onboarding gives them (the api-keys key's lets the auth API alone use it; the local cloud
    enforces it) and its data bucket, which the files routes use. tests/e2e/test_onboarding.py
    checks onboarding makes them."""
    admin = new_signed_in_user(cloud, platform_admin, tenant_id, username, ["tenant-admin"])
    cloud.client("s3").create_bucket(Bucket=f"dcisionai-10ca1000-tenant-{tenant_id}-data")
    return admin


def new_client(
    cloud: RunningCloud, headers: dict[str, str], tenant_id: str, roles: list[str], *, name: str, **extra: Any
) -> dict[str, Any]:
    """POST /tenants/{tenant_id}/clients (``name``, ``roles`` and ``extra``) as the caller of
    ``headers``, asserted made (201): the reply, whose secret (shown once) is recorded as seen."""
    reply = cloud.http(
        "POST",
        f"/tenants/{tenant_id}/clients",
        json={"name": name, "roles": roles, **extra},
        headers=headers,
    )
    assert reply.status_code == 201, reply.text
    created = dict(reply.json())
    seen(created["client_secret"])
    return created


def token_request(
    cloud: RunningCloud, client_id: str, secret: str, *, address: str, **form: str
) -> requests.Response:
    """A token request by hand (client_secret_post) from ``address`` (a test's own, so that it
    counts against no other test's throttle), for the refusals a library would not send."""
    return from_address(address).post(
        cloud.api_url + "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, **form},
        timeout=30,
    )
