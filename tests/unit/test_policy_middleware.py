"""What a cached authorizer answer cannot see, checked by the request middleware against the
caller tenant's policy as the directory holds it (never older than 5 seconds): the allow-list,
MFA and the session timeout, tightened and loosened again."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tenant_security.context import protected_middleware
from tenant_security.http import make_resolver
from tenant_security.models.policies import parse_security_policies
from tenant_security.tenant_directory import POLICY_MAX_AGE, TenantDirectory
from tenant_security.tenants import TenantProfile
from tests.support.clock import ManualClock
from tests.support.identity_fakes import RecordingPublisher, live_session


class Store:
    def __init__(self) -> None:
        self.profiles = {
            t: TenantProfile(tenant_id=t, name=t, status="ACTIVE") for t in ("acme", "platform", "globex")
        }
        self.reads = 0

    def get(self, tenant_id: str) -> TenantProfile | None:
        self.reads += 1
        return self.profiles.get(tenant_id)

    def change(self, tenant_id: str, **access: Any) -> None:
        self.profiles[tenant_id] = replace(
            self.profiles[tenant_id], policies=parse_security_policies({"access_control": access})
        )


@pytest.fixture
def world() -> dict[str, Any]:
    clock, store, publisher = ManualClock(), Store(), RecordingPublisher()
    directory = TenantDirectory(store, clock=clock)  # type: ignore[arg-type]
    sessions: dict[str, Any] = {"age": 60.0}
    app = make_resolver()
    app.use(
        [
            protected_middleware(
                directory.get,
                lambda tenant, sid: live_session(tenant, sid, age_seconds=sessions["age"]),
                "platform",
                activity=lambda: publisher,
                clock=clock,
            )
        ]
    )

    @app.get("/tenants/<tenant_id>/users")
    def users(tenant_id: str) -> dict[str, Any]:
        return {"items": []}

    return {"app": app, "clock": clock, "store": store, "publisher": publisher, "sessions": sessions}


def request(
    ip: str = "203.0.113.9",
    amr: str = "pwd,otp",
    tenant: str = "acme",
    path_tenant: str = "acme",
    roles: str = "tenant-admin",
) -> dict[str, Any]:
    return {
        "resource": "/tenants/{tenant_id}/users",
        "path": f"/tenants/{path_tenant}/users",
        "httpMethod": "GET",
        "headers": {"X-Forwarded-For": "10.1.1.1"},
        "multiValueHeaders": {},
        "pathParameters": {"tenant_id": path_tenant},
        "requestContext": {
            "requestId": "req-1",
            "identity": {"sourceIp": ip},
            "authorizer": {"tenant_id": tenant, "user": "alice", "roles": roles, "sid": "s1", "amr": amr},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def status(world: dict[str, Any], **kwargs: Any) -> tuple[int, str | None]:
    import json

    reply = world["app"].resolve(request(**kwargs), None)
    body = json.loads(reply["body"]) if reply.get("body") else {}
    return reply["statusCode"], body.get("error")


def test_an_allow_list_tightened_then_reopened_governs_within_5_seconds(world: dict[str, Any]) -> None:
    clock, store = world["clock"], world["store"]
    assert status(world) == (200, None)
    store.change("acme", ip_whitelist=["10.0.0.0/8"])
    clock.now += POLICY_MAX_AGE
    assert status(world) == (403, "source_ip_not_allowed")  # X-Forwarded-For says 10.1.1.1: ignored
    assert status(world, ip="10.2.3.4") == (200, None)
    alerts = [d for t, d in world["publisher"].events if t == "Security Alert"]
    assert [(a["alert"], a["user"], a["source_ip"]) for a in alerts] == [
        ("source_ip_not_allowed", "alice", "203.0.113.9")
    ]
    activity = [d for t, d in world["publisher"].events if t == "User Activity"]
    assert [(a["outcome"], a["status"]) for a in activity[-2:]] == [("denied", 403), ("success", 200)]
    store.change("acme", ip_whitelist=[])
    clock.now += POLICY_MAX_AGE
    assert status(world) == (200, None)


def test_no_cache_of_a_profile_outlives_5_seconds(world: dict[str, Any]) -> None:
    clock, store = world["clock"], world["store"]
    assert status(world) == (200, None)
    reads = store.reads
    store.change("acme", ip_whitelist=["10.0.0.0/8"])
    clock.now += POLICY_MAX_AGE - 0.01
    assert status(world) == (200, None)  # within the bound a warm worker may still use its copy ...
    assert store.reads == reads  # ... and then costs no read at all
    clock.now += 0.01
    assert status(world) == (403, "source_ip_not_allowed")
    assert store.reads == reads + 1  # one read per tenant per 5 s, never one per request


def test_mfa_required_after_sign_in_refuses_a_token_without_it_and_lifting_it_admits(
    world: dict[str, Any],
) -> None:
    clock, store = world["clock"], world["store"]
    store.change("acme", mfa_required=False)
    clock.now += POLICY_MAX_AGE
    assert status(world, amr="pwd") == (200, None)
    store.change("acme", mfa_required=True)
    clock.now += POLICY_MAX_AGE
    assert status(world, amr="pwd") == (403, "mfa_required")
    assert status(world, amr="pwd,otp") == (200, None)


def test_a_shortened_session_timeout_ends_the_sessions_already_older(world: dict[str, Any]) -> None:
    clock, store, sessions = world["clock"], world["store"], world["sessions"]
    sessions["age"] = 10 * 60
    assert status(world) == (200, None)
    store.change("acme", session_timeout_minutes=5)
    clock.now += POLICY_MAX_AGE
    assert status(world) == (401, "unauthorized")
    sessions["age"] = 4 * 60
    assert status(world) == (200, None)


def test_a_platform_admin_is_judged_by_its_own_tenants_policy(world: dict[str, Any]) -> None:
    clock, store = world["clock"], world["store"]
    store.change("acme", ip_whitelist=["10.0.0.0/8"])  # the tenant's policy binds its own callers ...
    clock.now += POLICY_MAX_AGE
    admin = {"tenant": "platform", "roles": "platform-admin"}
    assert status(world, **admin) == (200, None)
    store.change("platform", ip_whitelist=["10.0.0.0/8"])  # ... the platform's binds its admins
    clock.now += POLICY_MAX_AGE
    assert status(world, **admin) == (403, "source_ip_not_allowed")
