"""The authorizer's decision, with fake stores and local keys; policies evaluated as API Gateway does."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from localcloud.apigateway import evaluate_policy
from tenant_security.authz.decision import RequestAuthorizer, policy_resource
from tenant_security.authz.routes import ROUTES
from tenant_security.errors import Unauthorized
from tenant_security.identity.sessions import Session
from tenant_security.identity.tokens import (
    ACCESS,
    SCOPE_FULL,
    SCOPE_PASSWORD_CHANGE,
    TokenIssuer,
    TokenVerifier,
)
from tenant_security.models import SecurityPolicies
from tenant_security.tenants import TenantProfile
from tests.support.identity_fakes import LocalKeys, LocalSigner, RecordingPublisher

API = "arn:aws:execute-api:us-east-1:123456789012:api123/dev"
ISSUER, AUDIENCE = "iss", "aud"


def policy(**access: Any) -> SecurityPolicies:
    base = SecurityPolicies()
    return base.model_copy(update={"access_control": base.access_control.model_copy(update=access)})


class Tenants:
    def __init__(self) -> None:
        open_policy = policy(ip_whitelist=[])
        self.records = {
            t: TenantProfile(tenant_id=t, name=t, status="ACTIVE", policies=open_policy)
            for t in ("platform", "acme", "globex")
        }

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.records.get(tenant_id)


class Sessions:
    def __init__(self) -> None:
        self.dead: set[str] = set()
        self.started_at = time.time() - 60

    def get(self, tenant_id: str, session_id: str) -> Session | None:
        return Session(
            tenant_id=tenant_id,
            session_id=session_id,
            username="alice",
            amr=["pwd", "otp"],
            scope=SCOPE_FULL,
            created_at=int(self.started_at),
            expires_at=int(time.time() + 3600),
            revoked=session_id in self.dead,
        )


@pytest.fixture
def world() -> dict[str, Any]:
    signer = LocalSigner("k1")
    tenants, sessions, publisher = Tenants(), Sessions(), RecordingPublisher()
    verifier = TokenVerifier(LocalKeys(signer), ISSUER, AUDIENCE)  # type: ignore[arg-type]
    authorizer = RequestAuthorizer(verifier, tenants, sessions, publisher, "platform")  # type: ignore[arg-type]
    issuer = TokenIssuer(signer, ISSUER, AUDIENCE)  # type: ignore[arg-type]
    return {
        "authorizer": authorizer,
        "issuer": issuer,
        "tenants": tenants,
        "sessions": sessions,
        "publisher": publisher,
    }


def token(
    world: dict[str, Any],
    tenant: str = "acme",
    roles: tuple[str, ...] = ("tenant-admin",),
    amr: tuple[str, ...] = ("pwd", "otp"),
    scope: str = SCOPE_FULL,
    sid: str = "s1",
) -> str:
    value, _ = world["issuer"].issue(
        subject="alice",
        tenant_id=tenant,
        token_use=ACCESS,
        ttl=300,
        roles=list(roles),
        amr=list(amr),
        sid=sid,
        scope=scope,
    )
    return str(value)


def event(
    tok: str,
    method: str = "GET",
    path: str = "/tenants/acme/users",
    ip: str = "203.0.113.9",
    path_tenant: str | None = "acme",
) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": f"{API}/{method}{path}",
        "resource": "/tenants/{tenant_id}/users",
        "path": path,
        "httpMethod": method,
        "headers": {"Authorization": f"Bearer {tok}", "X-Forwarded-For": "10.1.1.1"},
        "pathParameters": {"tenant_id": path_tenant} if path_tenant else None,
        "requestContext": {"identity": {"sourceIp": ip}},
    }


def concrete(resource: str, tenant: str) -> str:
    return policy_resource(type("R", (), {"resource": resource})(), tenant).replace("*", "x")  # type: ignore[arg-type]


def allows(decision: dict[str, Any], method: str, path: str) -> bool:
    return evaluate_policy(decision["policyDocument"], f"{API}/{method}{path}")


def test_a_tenant_admin_may_use_its_own_tenant_routes_only(world: dict[str, Any]) -> None:
    decision = world["authorizer"].authorize(event(token(world)))
    assert decision["context"] == {
        "tenant_id": "acme",
        "user": "alice",
        "roles": "tenant-admin",
        "sid": "s1",
        "amr": "pwd,otp",
    }
    for rule in ROUTES:
        if not rule.tenant_scoped:
            continue
        own = allows(decision, rule.method, concrete(rule.resource, "acme"))
        other = allows(decision, rule.method, concrete(rule.resource, "globex"))
        assert not other, f"{rule.method} {rule.resource} of another tenant allowed"
        platform_only = rule.action in (
            "tenants:Delete",
            "tenants:Suspend",
            "tenants:Reinstate",
            "quotas:Write",
        )
        assert own is not platform_only, rule


def test_a_parameter_is_never_empty(world: dict[str, Any]) -> None:
    decision = world["authorizer"].authorize(event(token(world)))
    assert allows(decision, "GET", "/tenants/acme/files/report.csv")
    assert allows(decision, "GET", "/tenants/acme/files")  # the listing
    # the listing's path with a trailing slash would match the files:Read grant (files/*)
    assert not allows(decision, "GET", "/tenants/acme/files/")
    assert not allows(decision, "PUT", "/tenants/acme/users//roles")
    assert not allows(decision, "DELETE", "/tenants/acme/users/")


def test_a_platform_admin_reaches_every_tenant(world: dict[str, Any]) -> None:
    decision = world["authorizer"].authorize(
        event(
            token(world, tenant="platform", roles=("platform-admin",)),
            path="/tenants/globex/users",
            path_tenant="globex",
        )
    )
    for rule in ROUTES:
        assert allows(decision, rule.method, concrete(rule.resource, "globex"))


def test_platform_admin_role_outside_the_platform_tenant_grants_nothing_extra(world: dict[str, Any]) -> None:
    decision = world["authorizer"].authorize(event(token(world, roles=("platform-admin", "viewer"))))
    assert not allows(decision, "POST", "/tenants")
    assert not allows(decision, "GET", "/tenants/globex/files")
    assert allows(decision, "GET", "/tenants/acme/files")


def test_a_role_without_the_permission_is_denied(world: dict[str, Any]) -> None:
    decision = world["authorizer"].authorize(event(token(world, roles=("viewer",))))
    assert not allows(decision, "GET", "/tenants/acme/users")
    assert allows(decision, "GET", "/tenants/acme/files/report.pdf")


def test_cross_tenant_attempts_raise_a_security_alert(world: dict[str, Any]) -> None:
    decision = world["authorizer"].authorize(
        event(token(world), path="/tenants/globex/users", path_tenant="globex")
    )
    assert not allows(decision, "GET", "/tenants/globex/users")
    assert world["publisher"].alerts() == ["cross_tenant_access"]


def test_an_encoded_own_tenant_is_no_cross_tenant_alert(world: dict[str, Any]) -> None:
    """API Gateway passes path parameters still percent-encoded: ``%61cme`` is the caller's own
    ``acme``, not an attempt on another tenant."""
    decision = world["authorizer"].authorize(
        event(token(world), path="/tenants/%61cme/users", path_tenant="%61cme")
    )
    assert allows(decision, "GET", "/tenants/acme/users")
    assert world["publisher"].alerts() == []


def test_a_tenant_that_is_not_active_is_denied_every_route(world: dict[str, Any]) -> None:
    record = world["tenants"].records["acme"]
    world["tenants"].records["acme"] = replace(record, status="SUSPENDED")
    decision = world["authorizer"].authorize(event(token(world)))
    assert decision["context"]["deny_reason"] == "tenant_not_active"
    assert not any(allows(decision, r.method, concrete(r.resource, "acme")) for r in ROUTES)


@pytest.mark.parametrize(
    "change",
    [policy(ip_whitelist=["10.0.0.0/8"]), policy(ip_whitelist=[], mfa_required=True)],
    ids=["allow-list", "mfa"],
)
def test_what_a_policy_may_loosen_is_left_to_the_middleware(world: dict[str, Any], change: Any) -> None:
    """A cached Deny would outlive a reopened allow-list or a lifted MFA requirement by the
    cache's time: the answer allows the caller's routes and carries ``amr``; the request
    middleware refuses against the policy as it is now (tests/unit/test_policy_middleware.py)."""
    record = world["tenants"].records["acme"]
    world["tenants"].records["acme"] = replace(record, policies=change)
    decision = world["authorizer"].authorize(event(token(world, amr=("pwd",)), ip="203.0.113.9"))
    assert "deny_reason" not in decision["context"]
    assert decision["context"]["amr"] == "pwd"
    assert allows(decision, "GET", "/tenants/acme/users")


def test_a_session_older_than_the_policy_timeout_is_unauthorized(world: dict[str, Any]) -> None:
    record = world["tenants"].records["acme"]
    world["tenants"].records["acme"] = replace(record, policies=policy(session_timeout_minutes=5))
    world["sessions"].started_at = time.time() - 5 * 60 - 1
    with pytest.raises(Unauthorized):
        world["authorizer"].authorize(event(token(world)))
    world["sessions"].started_at = time.time() - 4 * 60
    assert "deny_reason" not in world["authorizer"].authorize(event(token(world)))["context"]


def test_a_custom_role_is_allowed_every_route_a_custom_role_could_grant(world: dict[str, Any]) -> None:
    """The middleware holds the caller to the role as stored at each request, so a role widened
    since the answer was cached governs within seconds."""
    record = world["tenants"].records["acme"]
    world["tenants"].records["acme"] = replace(record, custom_roles={"reader": ["files:Read"]})
    decision = world["authorizer"].authorize(event(token(world, roles=("reader",))))
    assert allows(decision, "GET", "/tenants/acme/files/a.txt")
    assert allows(decision, "GET", "/tenants/acme/users")
    assert not allows(decision, "POST", "/tenants")  # never a platform action
    assert not allows(decision, "GET", "/tenants/globex/users")  # never another tenant


def test_a_password_change_token_reaches_nothing(world: dict[str, Any]) -> None:
    decision = world["authorizer"].authorize(event(token(world, scope=SCOPE_PASSWORD_CHANGE)))
    assert decision["context"]["deny_reason"] == "password_change_required"


def test_a_revoked_session_is_unauthorized(world: dict[str, Any]) -> None:
    world["sessions"].dead.add("s1")
    with pytest.raises(Unauthorized):
        world["authorizer"].authorize(event(token(world)))


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer    "])
def test_missing_or_malformed_authorization(world: dict[str, Any], header: str | None) -> None:
    ev = event("x")
    ev["headers"] = {"Authorization": header} if header is not None else {}
    with pytest.raises(Unauthorized):
        world["authorizer"].authorize(ev)


def test_an_unknown_tenant_is_denied(world: dict[str, Any]) -> None:
    decision = world["authorizer"].authorize(event(token(world, tenant="ghost")))
    assert decision["context"]["deny_reason"] == "tenant_not_active"
