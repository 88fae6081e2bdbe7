"""The authorizer's decision for API client tokens (machine access), with fake stores and local keys:
the client is checked instead of a session, and a machine never gets rbac.NOT_FOR_MACHINES."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from tenant_security.authz.decision import RequestAuthorizer
from tenant_security.authz.rbac import NOT_FOR_MACHINES
from tenant_security.authz.routes import ROUTES
from tenant_security.errors import Unauthorized
from tenant_security.identity.clients import ApiClient
from tenant_security.identity.tokens import ACCESS, TokenIssuer, TokenVerifier
from tenant_security.tenants import TenantProfile
from tests.support.identity_fakes import LocalKeys, LocalSigner, RecordingPublisher
from tests.unit.test_authorizer_decision import API, allows, concrete

ISSUER, AUDIENCE = "iss", "aud"
CLIENT = "acme_0123456789abcdef0123"
GLOBEX_CLIENT = "globex_0123456789abcdef0123"


class Tenants:
    def __init__(self) -> None:
        self.records = {
            t: TenantProfile(tenant_id=t, name=t, status="ACTIVE")  # type: ignore[arg-type]
            for t in ("platform", "acme", "globex")
        }

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.records.get(tenant_id)


class NoSessions:
    """A client token never reaches for a session."""

    def get(self, tenant_id: str, session_id: str) -> Any:
        raise AssertionError("a client token's session was looked up")


class Clients:
    def __init__(self) -> None:
        now = int(time.time())
        self.items: dict[tuple[str, str], ApiClient] = {}
        for tenant, client_id in (("acme", CLIENT), ("globex", GLOBEX_CLIENT)):
            self.items[(tenant, client_id)] = ApiClient(
                tenant_id=tenant,
                client_id=client_id,
                name="ci",
                roles=("tenant-admin", "viewer"),
                created_at=now - 60,
                expires_at=now + 86400,
            )

    def get(self, tenant_id: str, client_id: str) -> ApiClient | None:
        return self.items.get((tenant_id, client_id))


@pytest.fixture
def world() -> dict[str, Any]:
    signer = LocalSigner("k1")
    tenants, clients, publisher = Tenants(), Clients(), RecordingPublisher()
    verifier = TokenVerifier(LocalKeys(signer), ISSUER, AUDIENCE)  # type: ignore[arg-type]
    authorizer = RequestAuthorizer(
        verifier,
        tenants,  # type: ignore[arg-type]
        NoSessions(),
        publisher,  # type: ignore[arg-type]
        "platform",
        clients=clients,
    )
    return {
        "authorizer": authorizer,
        "issuer": TokenIssuer(signer, ISSUER, AUDIENCE),  # type: ignore[arg-type]
        "tenants": tenants,
        "clients": clients,
        "publisher": publisher,
    }


def client_token(
    world: dict[str, Any],
    client_id: str = CLIENT,
    tenant: str = "acme",
    roles: tuple[str, ...] = ("tenant-admin",),
    subject: str | None = None,
    **extra: Any,
) -> str:
    """A token as the token endpoint issues it (client_id == sub, no sid), or a forged variation."""
    claims: dict[str, Any] = {"client_id": client_id, "roles": list(roles), "scope": " ".join(roles)}
    claims.update(extra)
    value, _ = world["issuer"].issue(
        subject=subject or client_id, tenant_id=tenant, token_use=ACCESS, ttl=900, **claims
    )
    return str(value)


def event(
    tok: str, method: str = "GET", path: str = "/tenants/acme/users", path_tenant: str = "acme"
) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": f"{API}/{method}{path}",
        "resource": "/tenants/{tenant_id}/users",
        "path": path,
        "httpMethod": method,
        "headers": {"Authorization": f"Bearer {tok}"},
        "pathParameters": {"tenant_id": path_tenant},
        "requestContext": {"identity": {"sourceIp": "203.0.113.9"}},
    }


def test_a_client_token_gets_its_routes_but_never_what_no_machine_does(world: dict[str, Any]) -> None:
    decision = world["authorizer"].authorize(event(client_token(world)))
    assert decision["context"]["client_id"] == CLIENT
    assert decision["context"]["user"] == CLIENT
    assert decision["context"]["sid"] == ""
    machine_refused = []
    for rule in ROUTES:
        if not rule.tenant_scoped and not set(rule.actions) & NOT_FOR_MACHINES:
            continue
        own = allows(decision, rule.method, concrete(rule.resource, "acme"))
        assert not allows(decision, rule.method, concrete(rule.resource, "globex")), rule
        if set(rule.actions) & NOT_FOR_MACHINES:
            assert not own, f"{rule.method} {rule.resource} allowed to a machine"
            machine_refused.append(rule.action)
    # a machine never manages machine credentials (nor lists them: their ids and roles are the
    # map of what to take over), nor makes a user (a one-time password is a credential too)
    assert {
        "clients:Create",
        "clients:Rotate",
        "clients:Delete",
        "clients:List",
        "users:Create",
        "auth:Logout",
    } <= set(machine_refused)
    assert not allows(decision, "GET", "/tenants/acme/clients")
    assert not allows(decision, "DELETE", f"/tenants/acme/clients/{CLIENT}")
    assert not allows(decision, "POST", "/tenants/acme/users")
    # what else a tenant-admin machine may do, it may: read users
    assert allows(decision, "GET", "/tenants/acme/users")


@pytest.mark.parametrize(
    "forged",
    [
        {"sid": "s1"},  # a client token with a session
        {"subject": "alice"},  # client_id that is not its sub
        {"client_id": GLOBEX_CLIENT, "subject": GLOBEX_CLIENT},  # a client id of another tenant
        {"client_id": "acme-no-client-id", "subject": "acme-no-client-id"},
        {"client_id": 7, "subject": CLIENT},
        {"tenant": "globex"},  # the tenant claim is not the client id's
    ],
    ids=["sid", "sub", "other-tenant-id", "not-a-client-id", "not-a-string", "tenant-claim"],
)
def test_a_malformed_client_token_is_401(world: dict[str, Any], forged: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized, match="malformed client token"):
        world["authorizer"].authorize(event(client_token(world, **forged)))


def test_a_deleted_client_is_401_from_the_next_request(world: dict[str, Any]) -> None:
    tok = client_token(world)
    assert "deny_reason" not in world["authorizer"].authorize(event(tok))["context"]
    del world["clients"].items[("acme", CLIENT)]
    with pytest.raises(Unauthorized, match="client ended"):
        world["authorizer"].authorize(event(tok))
    assert world["publisher"].alerts() == ["client_ended"]


def test_an_expired_client_is_401(world: dict[str, Any]) -> None:
    tok = client_token(world)
    clients = world["clients"].items
    clients[("acme", CLIENT)] = replace(clients[("acme", CLIENT)], expires_at=int(time.time()) - 1)
    with pytest.raises(Unauthorized):
        world["authorizer"].authorize(event(tok))


def test_an_authorizer_without_the_clients_store_refuses_every_client_token(world: dict[str, Any]) -> None:
    world["authorizer"].clients = None
    with pytest.raises(Unauthorized):
        world["authorizer"].authorize(event(client_token(world)))


def test_roles_the_client_no_longer_holds_are_dropped(world: dict[str, Any]) -> None:
    tok = client_token(world, roles=("tenant-admin", "viewer"))
    clients = world["clients"].items
    clients[("acme", CLIENT)] = replace(clients[("acme", CLIENT)], roles=("viewer",))
    decision = world["authorizer"].authorize(event(tok))
    assert not allows(decision, "GET", "/tenants/acme/users")  # tenant-admin's, no longer held
    assert allows(decision, "GET", "/tenants/acme/files/a.txt")  # viewer's
    clients[("acme", CLIENT)] = replace(clients[("acme", CLIENT)], roles=("developer",))
    decision = world["authorizer"].authorize(event(tok))
    # the token names no role the client holds now: nothing (developer was never in the token)
    assert decision["context"]["deny_reason"] == "no_permission"
    assert not allows(decision, "GET", "/tenants/acme/files/a.txt")


def test_a_client_of_a_suspended_tenant_is_denied(world: dict[str, Any]) -> None:
    records = world["tenants"].records
    records["acme"] = replace(records["acme"], status="SUSPENDED")
    decision = world["authorizer"].authorize(event(client_token(world)))
    assert decision["context"]["deny_reason"] == "tenant_not_active"


def test_a_platform_admin_role_in_a_tenant_client_token_reaches_no_other_tenant(
    world: dict[str, Any],
) -> None:
    clients = world["clients"].items
    clients[("acme", CLIENT)] = replace(clients[("acme", CLIENT)], roles=("platform-admin", "viewer"))
    decision = world["authorizer"].authorize(
        event(
            client_token(world, roles=("platform-admin", "viewer")),
            path="/tenants/globex/users",
            path_tenant="globex",
        )
    )
    assert not allows(decision, "GET", "/tenants/globex/users")
    assert not allows(decision, "POST", "/tenants")
    assert "cross_tenant_access" in world["publisher"].alerts()
