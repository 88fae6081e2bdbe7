"""Red team (issue 18): who is calling is decided before what they sent.

GuardedResolver.use_before_validation runs the request middleware before Powertools parses the
body, so a caller the tenant policy refuses gets its 403 whatever its body. But
GuardedResolver.resolve answers a body that is not JSON (json_error), too large (body_error) or
of another content type *before* any middleware runs: a caller outside the allow-list (or with
an ended session) gets 400/413/415 -- and learns the body rules -- and the refusal is never
recorded as the policy refusal it is. The attack matrix saw exactly this over HTTP
("outside-allow-list ... expected 403, got 400 malformed_json").
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from pydantic import BaseModel

from tenant_security.context import protected_middleware
from tenant_security.http import make_resolver
from tenant_security.models.policies import parse_security_policies
from tenant_security.tenant_directory import TenantDirectory
from tenant_security.tenants import TenantProfile
from tests.support.clock import ManualClock
from tests.support.identity_fakes import RecordingPublisher, live_session

FENCED = parse_security_policies({"access_control": {"ip_whitelist": ["10.0.0.0/8"]}})


class Store:
    def __init__(self) -> None:
        self.profiles = {
            "acme": replace(TenantProfile(tenant_id="acme", name="acme", status="ACTIVE"), policies=FENCED)
        }

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.profiles.get(tenant_id)


class NewUser(BaseModel):
    username: str


@pytest.fixture
def app() -> Any:
    publisher = RecordingPublisher()
    directory = TenantDirectory(Store(), clock=ManualClock())  # type: ignore[arg-type]
    resolver = make_resolver(max_json_body_bytes=1024)
    resolver.use_before_validation(
        protected_middleware(
            directory.get,
            live_session,
            "platform",
            activity=lambda: publisher,
        )
    )

    @resolver.post("/tenants/<tenant_id>/users")
    def create(tenant_id: str, body: NewUser) -> dict[str, Any]:
        return {"username": body.username}

    resolver.publisher = publisher  # type: ignore[attr-defined]
    return resolver


def _event(body: str, content_type: str = "application/json") -> dict[str, Any]:
    return {
        "resource": "/tenants/{tenant_id}/users",
        "path": "/tenants/acme/users",
        "httpMethod": "POST",
        "headers": {"Content-Type": content_type},
        "multiValueHeaders": {},
        "pathParameters": {"tenant_id": "acme"},
        "queryStringParameters": None,
        "requestContext": {
            "requestId": "req-1",
            "identity": {"sourceIp": "203.0.113.9"},  # outside the allow-list
            "authorizer": {
                "tenant_id": "acme",
                "user": "alice",
                "roles": "tenant-admin",
                "sid": "s1",
                "amr": "pwd,otp",
            },
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _status(app: Any, event: dict[str, Any]) -> tuple[int, str]:
    reply = app.resolve(event, None)
    return reply["statusCode"], json.loads(reply["body"]).get("error")


def test_a_valid_body_from_outside_the_allow_list_is_403(app: Any) -> None:
    # the control: the check itself works
    assert _status(app, _event('{"username": "bob"}')) == (403, "source_ip_not_allowed")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),  # json_error in GuardedResolver.resolve
        ('{"a": ' * 70 + "1" + "}" * 70, "application/json"),  # nested too deep
        ('{"username": "' + "x" * 2000 + '"}', "application/json"),  # over max_json_body_bytes
        ('{"username": "bob"}', "text/plain"),  # another content type
    ],
    ids=["malformed", "too-deep", "too-large", "content-type"],
)
def test_a_refused_caller_gets_its_403_whatever_its_body(app: Any, body: str, content_type: str) -> None:
    assert _status(app, _event(body, content_type)) == (403, "source_ip_not_allowed")
    alerts = [d["alert"] for t, d in app.publisher.events if t == "Security Alert"]
    assert alerts == ["source_ip_not_allowed"]


def test_a_route_without_validation_still_runs_the_request_middleware(app: Any) -> None:
    """Latent: use_before_validation hangs the middleware on Powertools' validation middleware,
    which Powertools leaves out of a route registered with enable_validation=False -- such a
    route would run with no session, policy, permission, quota or audit check at all."""

    @app.get("/tenants/<tenant_id>/quotas", enable_validation=False)
    def quotas(tenant_id: str) -> dict[str, Any]:
        return {"tenant": tenant_id}

    event = _event("")
    event.update(
        resource="/tenants/{tenant_id}/quotas", path="/tenants/acme/quotas", httpMethod="GET", body=None
    )
    assert _status(app, event)[0] == 403  # the caller is outside the allow-list


def test_a_route_level_request_middleware_also_judges_the_caller_first() -> None:
    """functions/auth_api hung the request middleware on its routes (``middlewares=[...]``): a
    body that is not JSON from a caller outside the allow-list was a 400 there (the attack
    matrix: "POST /auth/logout [outside-allow-list:auditor] expected 403, got 400"). It now runs
    it before validation for the routes of the route table only, as auth_api does; sign-in's
    own routes, which have no caller yet, refuse the body at once."""
    from tenant_security.authz.routes import behind_the_authorizer

    directory = TenantDirectory(Store(), clock=ManualClock())  # type: ignore[arg-type]
    publisher = RecordingPublisher()
    resolver = make_resolver()
    middleware = protected_middleware(directory.get, live_session, "platform", activity=lambda: publisher)
    resolver.use_before_validation(middleware, when=behind_the_authorizer)

    @resolver.post("/auth/logout")
    def logout() -> dict[str, Any]:
        return {}

    @resolver.post("/auth/login")
    def login() -> dict[str, Any]:
        return {}

    event = _event("{not json")
    event.update(resource="/auth/logout", path="/auth/logout", pathParameters=None)
    assert _status(resolver, event) == (403, "source_ip_not_allowed")
    unauthenticated = _event("{not json")
    unauthenticated.update(resource="/auth/login", path="/auth/login", pathParameters=None)
    unauthenticated["requestContext"].pop("authorizer", None)
    assert _status(resolver, unauthenticated) == (400, "malformed_json")
