"""Red team (issue 18): "Every change is an audited `User Activity` naming the fields changed."

The request's record goes through EventPublisher.activity, which drops a successful request of
the ``admin`` category when the tenant policy says ``audit_logging.log_admin_actions: false``.
A policy change, a custom role's definition or deletion and a role grant are all ``admin``: once
a security-admin turns the flag off (that one change is still recorded: the flag is read from the
policy as it was before), every later change of the policy -- the allow-list opened, MFA
dropped, the flag itself turned on again -- and every role definition leaves no trace in the
tamper-evident trail. (The policy history table keeps the policy's, but not the roles'.)
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

import pytest

from tenant_security.activity import EventPublisher
from tenant_security.context import AUDIT_CHANGES, protected_middleware
from tenant_security.http import make_resolver
from tenant_security.models.policies import parse_security_policies
from tenant_security.tenant_directory import TenantDirectory
from tenant_security.tenants import TenantProfile
from tests.support.clock import ManualClock
from tests.support.identity_fakes import live_session


class Bus:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        with self.lock:
            self.entries.extend(Entries)
        return {"FailedEntryCount": 0}


class Store:
    def __init__(self) -> None:
        policy = parse_security_policies({"audit_logging": {"log_admin_actions": False}})
        self.profile = replace(TenantProfile(tenant_id="acme", name="acme", status="ACTIVE"), policies=policy)

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.profile if tenant_id == "acme" else None


@pytest.fixture
def world() -> dict[str, Any]:
    bus = Bus()
    publisher = EventPublisher(bus, "bus", "dcisionai.tenant-security")  # type: ignore[arg-type]
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

    @app.patch("/tenants/<tenant_id>/policies")
    def patch(tenant_id: str) -> dict[str, Any]:
        # what policy_response does with a change's fields
        app.context[AUDIT_CHANGES] = [{"field": "access_control.mfa_required", "old": True, "new": False}]
        return {"access_control": {"mfa_required": False}}

    @app.put("/tenants/<tenant_id>/roles/<role>")
    def put_role(tenant_id: str, role: str) -> dict[str, Any]:
        app.context[AUDIT_CHANGES] = [{"field": f"roles.{role}", "old": None, "new": ["secrets:Read"]}]
        return {"name": role}

    return {"app": app, "bus": bus}


def _event(method: str, resource: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "pathParameters": params,
        "requestContext": {
            "requestId": "req-1",
            "identity": {"sourceIp": "203.0.113.9"},
            "authorizer": {
                "tenant_id": "acme",
                "user": "sec",
                "roles": "tenant-admin",
                "sid": "s1",
                "amr": "pwd,otp",
            },
        },
        "body": '{"access_control": {"mfa_required": false}}',
        "isBase64Encoded": False,
    }


@pytest.mark.parametrize(
    ("method", "resource", "path", "params", "action"),
    [
        (
            "PATCH",
            "/tenants/{tenant_id}/policies",
            "/tenants/acme/policies",
            {"tenant_id": "acme"},
            "policies:Write",
        ),
        (
            "PUT",
            "/tenants/{tenant_id}/roles/{role}",
            "/tenants/acme/roles/ops",
            {"tenant_id": "acme", "role": "ops"},
            "roles:Write",
        ),
    ],
    ids=["policy-change", "role-definition"],
)
def test_a_security_change_is_recorded_whatever_log_admin_actions_says(
    world: dict[str, Any], method: str, resource: str, path: str, params: dict[str, str], action: str
) -> None:
    reply = world["app"].resolve(_event(method, resource, path, params), None)
    assert reply["statusCode"] == 200
    recorded = [json.loads(e["Detail"]) for e in world["bus"].entries if e["DetailType"] == "User Activity"]
    assert [r["action"] for r in recorded] == [action], "the change left no User Activity in the trail"
    assert recorded[0]["changes"]
