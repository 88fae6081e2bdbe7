"""Red team (issue 18), defence in depth: the route that runs is not checked against the route
that was authorised.

The authorizer and the middleware's exact check (context.py: ``rule_for(httpMethod, resource)``)
judge the event's ``resource``; GuardedResolver.resolve percent-decodes ``path`` and Powertools
dispatches on the decoded path. An event whose resource is ``/tenants/{tenant_id}/users/{username}``
(users:Delete) and whose path is ``/tenants/acme/users/bob%2Fsessions`` runs the handler of
``DELETE /tenants/{tenant_id}/users/{username}/sessions`` (sessions:Revoke): a custom role holding
users:Delete only would end any user's sessions, and the trail would record users:Delete of user
``bob/sessions``.

NOT reachable through API Gateway as the local cloud models it (REST matches routes on the decoded
path, so ``%2F`` never stays inside ``{username}``; tests/e2e/test_redteam18_http.py holds over
HTTP). It becomes reachable with any front door that matches on the encoded path (an HTTP API
migration, a greedy ``{proxy+}``, an ALB). A one-line cross-check in the resolver (the matched
route's template == ``resource``) closes it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from tenant_security.context import protected_middleware
from tenant_security.http import make_resolver
from tenant_security.tenant_directory import TenantDirectory
from tenant_security.tenants import TenantProfile
from tests.support.clock import ManualClock
from tests.support.identity_fakes import RecordingPublisher, live_session


class Store:
    def __init__(self) -> None:
        profile = TenantProfile(tenant_id="acme", name="acme", status="ACTIVE")
        self.profile = replace(profile, custom_roles={"offboarder": ["users:Delete", "users:List"]})

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.profile if tenant_id == "acme" else None


@pytest.fixture
def world() -> dict[str, Any]:
    publisher = RecordingPublisher()
    ran: list[str] = []
    directory = TenantDirectory(Store(), clock=ManualClock())  # type: ignore[arg-type]
    app = make_resolver()
    app.use_before_validation(
        protected_middleware(
            directory.get,
            live_session,
            "platform",
            activity=lambda: publisher,
        )
    )

    @app.delete("/tenants/<tenant_id>/users/<username>")
    def delete_user(tenant_id: str, username: str) -> dict[str, Any]:
        ran.append(f"users:Delete {username}")
        return {}

    @app.delete("/tenants/<tenant_id>/users/<username>/sessions")
    def revoke_user_sessions(tenant_id: str, username: str) -> dict[str, Any]:
        ran.append(f"sessions:Revoke {username}")
        return {}

    return {"app": app, "ran": ran, "publisher": publisher}


def _event(raw_username: str, resource: str) -> dict[str, Any]:
    # as API Gateway (REST) hands it over: path and pathParameters still percent-encoded
    return {
        "resource": resource,
        "path": f"/tenants/acme/users/{raw_username}",
        "httpMethod": "DELETE",
        "headers": {},
        "multiValueHeaders": {},
        "pathParameters": {"tenant_id": "acme", "username": raw_username},
        "requestContext": {
            "requestId": "req-1",
            "identity": {"sourceIp": "203.0.113.9"},
            "authorizer": {
                "tenant_id": "acme",
                "user": "op",
                "roles": "offboarder",
                "sid": "s1",
                "amr": "pwd,otp",
            },
        },
        "body": None,
        "isBase64Encoded": False,
    }


def test_the_control_sessions_revoke_is_refused_to_the_role(world: dict[str, Any]) -> None:
    event = _event("bob", "/tenants/{tenant_id}/users/{username}/sessions")
    event["path"] += "/sessions"  # the route's own path, as API Gateway hands it over
    reply = world["app"].resolve(event, None)
    assert reply["statusCode"] == 403
    assert world["ran"] == []


def test_an_encoded_slash_does_not_run_another_route_than_the_one_authorised(world: dict[str, Any]) -> None:
    reply = world["app"].resolve(_event("bob%2Fsessions", "/tenants/{tenant_id}/users/{username}"), None)
    assert not any(r.startswith("sessions:Revoke") for r in world["ran"]), (
        f"{world['ran']} ran for a request authorised as users:Delete (status {reply['statusCode']}, "
        f"{json.loads(reply['body']) if reply.get('body') else ''})"
    )


def test_a_greedy_route_is_its_own_resource(world: dict[str, Any]) -> None:
    """The cross-check compares shapes: Powertools' ``.+`` is API Gateway's ``{key+}``."""
    app = world["app"]
    ran = world["ran"]

    @app.delete("/tenants/<tenant_id>/files/.+")
    def delete_file(tenant_id: str) -> dict[str, Any]:
        ran.append("files:Delete")
        return {}

    event = _event("bob", "/tenants/{tenant_id}/files/{key+}")
    event["path"] = "/tenants/acme/files/a/b.txt"
    event["pathParameters"] = {"tenant_id": "acme", "key": "a/b.txt"}
    reply = app.resolve(event, None)
    assert reply["statusCode"] != 404, reply
    assert reply["statusCode"] == 403  # judged: the custom role holds no files:Delete
