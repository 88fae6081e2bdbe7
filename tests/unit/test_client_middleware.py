"""The request middleware for API client tokens: the client read on every request instead of a
session, no MFA asked of it, the tenant's api_clients_allowed and the client's own allow-list; and
the policy lock-out guard for a client changing its own tenant's policy."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest

from tenant_security.administration.policies import caller_session
from tenant_security.context import protected_middleware
from tenant_security.http import make_resolver
from tenant_security.identity.clients import ApiClient
from tenant_security.models.policies import parse_security_policies
from tenant_security.policy.lockout import LockoutReason, WouldLockOut, guard
from tenant_security.tenant_directory import POLICY_MAX_AGE, TenantDirectory
from tenant_security.tenants import TenantProfile
from tests.support.clock import ManualClock
from tests.support.identity_fakes import RecordingPublisher, live_session

CLIENT = "acme_0123456789abcdef0123"


class Store:
    def __init__(self) -> None:
        self.profiles = {
            t: TenantProfile(tenant_id=t, name=t, status="ACTIVE")  # type: ignore[arg-type]
            for t in ("acme", "platform", "globex")
        }

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.profiles.get(tenant_id)

    def change(self, tenant_id: str, **access: Any) -> None:
        self.profiles[tenant_id] = replace(
            self.profiles[tenant_id], policies=parse_security_policies({"access_control": access})
        )


class Clients:
    def __init__(self, clock: ManualClock) -> None:
        self.reads = 0
        self.items = {
            ("acme", CLIENT): ApiClient(
                tenant_id="acme",
                client_id=CLIENT,
                name="ci",
                roles=("tenant-admin", "viewer"),
                created_at=int(clock.now) - 60,
                expires_at=int(clock.now) + 86400,
            )
        }

    def get(self, tenant_id: str, client_id: str) -> ApiClient | None:
        self.reads += 1
        return self.items.get((tenant_id, client_id))

    def change(self, **fields: Any) -> None:
        self.items[("acme", CLIENT)] = replace(self.items[("acme", CLIENT)], **fields)


SESSIONS_READ: list[str] = []


def session_of(tenant: str, sid: str) -> Any:
    """A person's live session (a client's request must never ask for one)."""
    SESSIONS_READ.append(sid)
    return live_session(tenant, sid)


@pytest.fixture
def world() -> dict[str, Any]:
    clock, store, publisher = ManualClock(), Store(), RecordingPublisher()
    clients = Clients(clock)
    SESSIONS_READ.clear()
    directory = TenantDirectory(store, clock=clock)  # type: ignore[arg-type]
    app = make_resolver()
    app.use(
        [
            protected_middleware(
                directory.get,
                session_of,
                "platform",
                activity=lambda: publisher,
                clock=clock,
                client_of=clients.get,
            )
        ]
    )

    @app.get("/tenants/<tenant_id>/users")
    def users(tenant_id: str) -> dict[str, Any]:
        return {"items": []}

    return {"app": app, "clock": clock, "store": store, "publisher": publisher, "clients": clients}


def request(
    ip: str = "203.0.113.9", roles: str = "tenant-admin", client_id: str | None = CLIENT
) -> dict[str, Any]:
    authorizer = {"tenant_id": "acme", "user": client_id, "roles": roles, "sid": "", "amr": ""}
    if client_id is not None:
        authorizer["client_id"] = client_id
    else:  # a person, signed in with MFA
        authorizer.update(user="alice", sid="s1", amr="pwd,otp")
    return {
        "resource": "/tenants/{tenant_id}/users",
        "path": "/tenants/acme/users",
        "httpMethod": "GET",
        "headers": {},
        "multiValueHeaders": {},
        "pathParameters": {"tenant_id": "acme"},
        "requestContext": {"requestId": "req-1", "identity": {"sourceIp": ip}, "authorizer": authorizer},
        "body": None,
        "isBase64Encoded": False,
    }


def status(world: dict[str, Any], **kwargs: Any) -> tuple[int, str | None]:
    reply = world["app"].resolve(request(**kwargs), None)
    body = json.loads(reply["body"]) if reply.get("body") else {}
    return reply["statusCode"], body.get("error")


def test_a_client_is_never_asked_for_mfa(world: dict[str, Any]) -> None:
    world["store"].change("acme", mfa_required=True)
    world["clock"].now += POLICY_MAX_AGE
    assert status(world) == (200, None)
    reads = world["clients"].reads
    assert status(world) == (200, None)
    assert world["clients"].reads == reads + 1  # the client read on every request, never cached
    activity = [d for t, d in world["publisher"].events if t == "User Activity"]
    assert activity[-1]["actor"] == {"type": "client", "client_id": CLIENT}


def test_machine_access_turned_off_refuses_a_token_already_issued(world: dict[str, Any]) -> None:
    world["store"].change("acme", api_clients_allowed=False)
    world["clock"].now += POLICY_MAX_AGE
    assert status(world) == (403, "api_clients_not_allowed")
    assert "api_clients_not_allowed" in world["publisher"].alerts()
    world["store"].change("acme", api_clients_allowed=True)
    world["clock"].now += POLICY_MAX_AGE
    assert status(world) == (200, None)


def test_machine_access_off_does_not_touch_a_person(world: dict[str, Any]) -> None:
    """A person's request (no client_id) is judged as before: its session, not a client."""
    store, clock = world["store"], world["clock"]
    assert status(world) == (200, None)
    assert SESSIONS_READ == []  # a client's request reads no session
    store.change("acme", api_clients_allowed=False)
    clock.now += POLICY_MAX_AGE
    reads = world["clients"].reads
    assert status(world, client_id=None) == (200, None)
    assert SESSIONS_READ == ["s1"]
    assert world["clients"].reads == reads  # and a person's reads no client


def test_the_clients_own_allow_list_narrows_the_tenants(world: dict[str, Any]) -> None:
    world["clients"].change(ip_whitelist=("10.0.0.0/8",))
    assert status(world) == (403, "source_ip_not_allowed")
    assert status(world, ip="10.2.3.4") == (200, None)
    # both must admit: the tenant's list refuses what the client's admits
    world["store"].change("acme", ip_whitelist=["192.0.2.0/24"])
    world["clock"].now += POLICY_MAX_AGE
    assert status(world, ip="10.2.3.4") == (403, "source_ip_not_allowed")


def test_a_deleted_or_expired_client_is_401_from_the_next_request(world: dict[str, Any]) -> None:
    assert status(world) == (200, None)
    world["clients"].change(expires_at=int(world["clock"].now) - 1)
    assert status(world) == (401, "unauthorized")
    world["clients"].items.clear()
    assert status(world) == (401, "unauthorized")


def test_token_roles_beyond_the_clients_are_401(world: dict[str, Any]) -> None:
    assert status(world, roles="tenant-admin,viewer") == (200, None)
    world["clients"].change(roles=("viewer",))  # tenant-admin taken away after the token was issued
    assert status(world, roles="tenant-admin") == (401, "unauthorized")
    assert status(world, roles="tenant-admin,viewer") == (401, "unauthorized")
    assert status(world, roles="viewer") == (403, "forbidden")  # a viewer does not read users


def test_a_middleware_without_a_client_store_refuses_client_tokens() -> None:
    clock, store = ManualClock(), Store()
    app = make_resolver()
    app.use(
        [protected_middleware(TenantDirectory(store, clock=clock).get, session_of, "platform", clock=clock)]
    )  # type: ignore[arg-type]

    @app.get("/tenants/<tenant_id>/users")
    def users(tenant_id: str) -> dict[str, Any]:
        return {"items": []}

    assert app.resolve(request(), None)["statusCode"] == 401


# ------------------------------------------------------------------ the lock-out guard
def policies(**access: Any) -> Any:
    return parse_security_policies({"access_control": access})


def test_a_client_turning_machine_access_off_for_its_own_tenant_would_lock_itself_out() -> None:
    me = caller_session("203.0.113.9", (), None, machine=True)
    with pytest.raises(WouldLockOut) as refused:
        guard(policies(api_clients_allowed=False), me, force=False)
    assert refused.value.status == 409
    assert refused.value.code == "would_lock_out"
    assert refused.value.fields == [
        {
            "field": "access_control.api_clients_allowed",
            "message": "api_clients_not_allowed",
            "type": "api_clients_not_allowed",
        }
    ]
    assert guard(policies(api_clients_allowed=False), me, force=True) == [LockoutReason.MACHINE_ACCESS]


def test_mfa_required_does_not_lock_a_client_out_but_does_a_person_without_mfa() -> None:
    client = caller_session("203.0.113.9", (), None, machine=True)
    assert guard(policies(mfa_required=True), client, force=False) == []
    person = caller_session("203.0.113.9", ("pwd",), time.time() - 60)
    with pytest.raises(WouldLockOut):
        guard(policies(mfa_required=True), person, force=False)
    # a person turning machine access off is not locked out by it
    with_mfa = caller_session("203.0.113.9", ("pwd", "otp"), time.time() - 60)
    assert guard(policies(api_clients_allowed=False), with_mfa, force=False) == []


def test_a_client_is_still_held_to_the_allow_list_it_changes() -> None:
    client = caller_session("203.0.113.9", (), None, machine=True)
    with pytest.raises(WouldLockOut) as refused:
        guard(policies(ip_whitelist=["10.0.0.0/8"]), client, force=False)
    assert [f["field"] for f in refused.value.fields or []] == ["access_control.ip_whitelist"]
