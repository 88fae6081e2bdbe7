"""Tenant administration routes behind the authorizer (tenants, quotas, policies, users, roles, sessions)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from tenant_security import services
from tenant_security.administration.policy_requests import policy_change, policy_response
from tenant_security.api_reference import ApiTag, idempotent_reply, policy_reply, reply
from tenant_security.context import AUDIT_CHANGES, AUDIT_TARGET, current_caller, current_tenant
from tenant_security.errors import from_validation_error
from tenant_security.http import make_resolver
from tenant_security.idempotency import IdempotencyKey
from tenant_security.models.admin_requests import Incident, NewUser, RoleDefinition, Roles
from tenant_security.models.onboarding import OnboardingRequest
from tenant_security.models.quotas import ResourceQuotas
from tenant_security.models.replies import (
    NewUserCreated,
    PolicyHistory,
    PolicyView,
    QuotaUsage,
    RoleList,
    RoleView,
    SessionPage,
    SessionsRevoked,
    Suspension,
    Tenant,
    TenantState,
    UserList,
    UserView,
)
from tenant_security.observability import logger, metrics, tracer
from tenant_security.tenancy import require_username

settings = services.settings()
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes)
app.use_before_validation(services.request_middleware())


def _username(username: str) -> str:
    return require_username(username, "path.username")


@app.post(
    "/tenants",
    status_code=202,
    middlewares=[services.idempotency_middleware()],
    summary="Onboard a tenant",
    description="Platform admins: the onboarding request (tenant id, name, admin user, optional security "
    "policies and quotas). 202: the tenant is PROVISIONING while the workflow creates its "
    "keys, bucket, database and first admin; GET /tenants/{tenant_id} follows it to ACTIVE "
    "(or FAILED). The same request again is a no-op; another request for an existing id is "
    "409. Send Idempotency-Key to retry safely.",
    tags=[ApiTag.TENANTS],
    responses=idempotent_reply(TenantState, 202, "Onboarding accepted"),
)
def create_tenant(body: OnboardingRequest, idempotency_key: IdempotencyKey = None) -> Response[Any]:
    accepted = services.tenant_admin().request_onboarding(
        app.current_event.body, body.model_dump(mode="json")
    )
    return Response(status_code=202, content_type="application/json", body=accepted)


@app.get(
    "/tenants/<tenant_id>",
    summary="Read a tenant",
    description="The tenant's name, status (PROVISIONING, ACTIVE, SUSPENDED, FAILED, OFFBOARDING, "
    "OFFBOARDED), isolation and times, read from the store now.",
    tags=[ApiTag.TENANTS],
    responses=reply(Tenant),
)
def get_tenant(tenant_id: str) -> dict[str, Any]:
    return services.tenant_admin().describe(current_tenant(app).tenant_id)


@app.delete(
    "/tenants/<tenant_id>",
    status_code=202,
    summary="Offboard a tenant",
    description="Platform admins: records the decision (OFFBOARDING) and starts offboarding: sessions "
    "end, the database is dropped, the tenant keys are scheduled for deletion "
    "(crypto-shredding), the data bucket is deleted; the audit trail is kept. The platform "
    "tenant is 409.",
    tags=[ApiTag.TENANTS],
    responses=reply(TenantState, 202, "Offboarding accepted"),
)
def delete_tenant(tenant_id: str) -> Response[Any]:
    accepted = services.tenant_admin().request_offboarding(
        current_tenant(app).tenant_id, current_caller(app).actor
    )
    return Response(status_code=202, content_type="application/json", body=accepted)


@app.get(
    "/tenants/<tenant_id>/quotas",
    summary="Read the tenant's quotas",
    description="The tenant's resource quotas document (storage, compute, API rate, cost).",
    tags=[ApiTag.TENANTS],
    responses=reply(ResourceQuotas),
)
def get_quotas(tenant_id: str) -> dict[str, Any]:
    return current_tenant(app).quotas.model_dump(mode="json")


@app.put(
    "/tenants/<tenant_id>/quotas",
    summary="Replace the tenant's quotas",
    description="Platform admins: the whole resource quotas document (omitted fields take the defaults). "
    "It governs every request that starts 5 seconds after the reply.",
    tags=[ApiTag.TENANTS],
    responses=reply(ResourceQuotas),
)
def put_quotas(tenant_id: str) -> dict[str, Any]:
    return services.tenant_admin().set_quotas(current_tenant(app).tenant_id, app.current_event.json_body)


@app.get(
    "/tenants/<tenant_id>/quotas/usage",
    summary="Read quota usage",
    description="What the tenant uses now of its request rate, concurrency, storage and compute quotas.",
    tags=[ApiTag.TENANTS],
    responses=reply(QuotaUsage),
)
def quota_usage(tenant_id: str) -> dict[str, Any]:
    return services.tenant_admin().quota_usage(current_tenant(app))


@app.get(
    "/tenants/<tenant_id>/policies",
    summary="Read the security policy",
    description="The tenant's security policy document, read from the store now, with its revision "
    "(also the ETag header, for If-Match) and how the rollout of its AWS fields stands.",
    tags=[ApiTag.POLICIES],
    responses=policy_reply(PolicyView),
)
def get_policies(tenant_id: str) -> Response[Any]:
    return policy_response(app, services.policy_admin().show(current_tenant(app).tenant_id))


@app.put(
    "/tenants/<tenant_id>/policies",
    summary="Replace the security policy",
    description="The whole document (omitted fields take the defaults; revision and rollout are "
    "read-only and ignored). If-Match: the revision it was made from (412 when stale). A change "
    "that would refuse your own next request is 409 would_lock_out unless ?force=true. It governs "
    "every request that starts 5 seconds after the reply; key rotation, key replicas and audit "
    "retention are rolled out by a workflow (rollout.status).",
    tags=[ApiTag.POLICIES],
    responses=policy_reply(PolicyView),
)
def put_policies(tenant_id: str) -> Response[Any]:
    return policy_response(app, services.policy_admin().change(policy_change(app, merge=False)))


@app.patch(
    "/tenants/<tenant_id>/policies",
    summary="Change fields of the security policy",
    description="A JSON merge patch (RFC 7396, application/merge-patch+json) over the stored document: "
    "null removes a field (it takes its default). Same rules as PUT.",
    tags=[ApiTag.POLICIES],
    responses=policy_reply(PolicyView),
)
def patch_policies(tenant_id: str) -> Response[Any]:
    return policy_response(app, services.policy_admin().change(policy_change(app, merge=True)))


@app.get(
    "/tenants/<tenant_id>/policies/history",
    summary="Read the policy's history",
    description="Each revision, newest first: when, who, and each field changed with its old and new "
    "value. ?limit (1-100, default 20) and ?next (from the previous page).",
    tags=[ApiTag.POLICIES],
    responses=reply(PolicyHistory),
)
def policy_history(tenant_id: str) -> dict[str, Any]:
    query = app.current_event.query_string_parameters or {}
    return services.policy_admin().history(
        current_tenant(app).tenant_id, query.get("limit"), query.get("next")
    )


@app.post(
    "/tenants/<tenant_id>/users",
    status_code=201,
    middlewares=[services.idempotency_middleware()],
    summary="Create a user",
    description="Tenant admins: a user with roles and a one-time password, returned once. At first "
    "sign-in the user enrols MFA and sets a password. A user of that name already is 409. "
    "Send Idempotency-Key to retry safely: a repeat returns the same reply. The username is the "
    "user's key: a retry after a failure that lost the first reply finds the user created (409).",
    tags=[ApiTag.USERS],
    responses=idempotent_reply(NewUserCreated, 201, "The user and their one-time password"),
)
def create_user(tenant_id: str, body: NewUser, idempotency_key: IdempotencyKey = None) -> Response[Any]:
    app.context[AUDIT_TARGET] = {"user": body.username, "email": body.email}
    created = services.user_admin().create(
        current_caller(app).actor, current_tenant(app), body.username, body.email, body.roles
    )
    return Response(status_code=201, content_type="application/json", body=created)


@app.get(
    "/tenants/<tenant_id>/users",
    summary="List users",
    description="The tenant's users by name, with roles, status and MFA state (never hashes or secrets).",
    tags=[ApiTag.USERS],
    responses=reply(UserList),
)
def list_users(tenant_id: str) -> dict[str, Any]:
    return {"items": services.user_admin().list_users(current_tenant(app).tenant_id)}


@app.delete(
    "/tenants/<tenant_id>/users/<username>",
    summary="Delete a user",
    description="Removes the user and ends their sessions. Yourself, or the tenant's last active "
    "tenant-admin, is 409.",
    tags=[ApiTag.USERS],
    responses={204: {"description": "Deleted"}},
)
def delete_user(tenant_id: str, username: str) -> Response[str]:
    services.user_admin().delete(
        current_caller(app).actor, current_tenant(app).tenant_id, _username(username)
    )
    return Response(status_code=204, body="")


@app.put(
    "/tenants/<tenant_id>/users/<username>/roles",
    summary="Replace a user's roles",
    description="The user's roles, all at once; their sessions end so the new roles apply at the next "
    "sign-in. The last active tenant-admin keeps the role (409).",
    tags=[ApiTag.USERS],
    responses=reply(UserView),
)
def set_roles(tenant_id: str, username: str, body: Roles) -> dict[str, Any]:
    return services.user_admin().set_roles(
        current_caller(app).actor, current_tenant(app), _username(username), body.roles
    )


@app.get(
    "/tenants/<tenant_id>/roles",
    summary="List roles",
    description="Tenant admins: the built-in roles, then the tenant's custom roles, each with its "
    "permission patterns and the concrete actions they grant. Read from the store now.",
    tags=[ApiTag.USERS],
    responses=reply(RoleList),
)
def list_roles(tenant_id: str) -> dict[str, Any]:
    return services.role_admin().list_roles(current_tenant(app).tenant_id)


@app.put(
    "/tenants/<tenant_id>/roles/<role>",
    summary="Define a custom role",
    description="Tenant admins: the role's {permissions: [action patterns]}, stored as the concrete "
    "tenant-scoped actions they grant (a later action is not added to it). A role never grants "
    "what you do not hold (403), a pattern that grants no tenant action is 400, a built-in "
    "name is 409 builtin_role. The same definition again changes nothing. In force within 5 s.",
    tags=[ApiTag.USERS],
    responses=reply(RoleView),
)
def put_role(tenant_id: str, role: str, body: RoleDefinition) -> dict[str, Any]:
    change = services.role_admin().put(
        current_caller(app), current_tenant(app).tenant_id, role, body.permissions
    )
    app.context[AUDIT_CHANGES] = change.audit_changes()
    return change.view or {}


@app.delete(
    "/tenants/<tenant_id>/roles/<role>",
    summary="Delete a custom role",
    description="Tenant admins: 409 role_in_use while a user holds the role (the reply names them) or "
    "the policy's segregation_of_duties names it; 404 when there is no such custom role.",
    tags=[ApiTag.USERS],
    responses={204: {"description": "Deleted"}},
)
def delete_role(tenant_id: str, role: str) -> Response[str]:
    change = services.role_admin().delete(current_caller(app), current_tenant(app).tenant_id, role)
    app.context[AUDIT_CHANGES] = change.audit_changes()
    return Response(status_code=204, body="")


@app.delete(
    "/tenants/<tenant_id>/sessions",
    summary="End every session of the tenant",
    description="Incident response: every user of the tenant must sign in again; a security alert records "
    "who did it.",
    tags=[ApiTag.TENANTS],
    responses=reply(SessionsRevoked),
)
def revoke_sessions(tenant_id: str) -> dict[str, Any]:
    caller = current_caller(app)
    revoked = services.incidents().revoke_sessions(
        current_tenant(app).tenant_id, (caller.tenant_id, caller.user)
    )
    return {"revoked": revoked}


@app.get(
    "/tenants/<tenant_id>/sessions",
    summary="List the tenant's sessions",
    description="Security admins: every live session of the tenant in pages of limit (the next with "
    "?next=): whose, when it started and ends, the address and User-Agent its sign-in came from.",
    tags=[ApiTag.TENANTS],
    responses=reply(SessionPage),
)
def list_sessions(
    tenant_id: str,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str | None, Query(alias="next", max_length=200)] = None,
) -> dict[str, Any]:
    caller = current_caller(app)
    return services.session_admin().tenant_sessions(
        current_tenant(app).tenant_id, caller.actor, caller.session_id, limit, after
    )


@app.delete(
    "/tenants/<tenant_id>/users/<username>/sessions",
    summary="End every session of a user",
    description="Security admins: the user's sessions end at once (their tokens are refused from the next "
    "request); the user signs in again. A user the tenant does not have is 404.",
    tags=[ApiTag.USERS],
    responses={204: {"description": "The user's sessions ended"}},
)
def revoke_user_sessions(tenant_id: str, username: str) -> Response[str]:
    target = _username(username)
    app.context[AUDIT_TARGET] = {"user": target}
    services.session_admin().end_user_sessions(current_tenant(app).tenant_id, target)
    return Response(status_code=204, body="")


def _incident() -> Incident:
    """The optional ``{reason}`` body of suspend and reinstate."""
    body = app.current_event.body
    if not body:
        return Incident()
    try:
        return Incident.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


@app.post(
    "/tenants/<tenant_id>/suspend",
    summary="Suspend a tenant",
    description="Platform admins, incident response: the tenant becomes SUSPENDED and every session ends; "
    "an optional {reason} goes to the alert. Suspending a suspended tenant changes nothing.",
    tags=[ApiTag.TENANTS],
    responses=reply(Suspension),
)
def suspend_tenant(tenant_id: str) -> dict[str, Any]:
    caller = current_caller(app)
    return services.incidents().suspend(
        current_tenant(app).tenant_id, (caller.tenant_id, caller.user), _incident().reason
    )


@app.post(
    "/tenants/<tenant_id>/reinstate",
    summary="Reinstate a tenant",
    description="Platform admins: a SUSPENDED tenant is ACTIVE again (an optional {reason} goes to the "
    "alert); its users sign in anew.",
    tags=[ApiTag.TENANTS],
    responses=reply(TenantState),
)
def reinstate_tenant(tenant_id: str) -> dict[str, Any]:
    caller = current_caller(app)
    return services.incidents().reinstate(
        current_tenant(app).tenant_id, (caller.tenant_id, caller.user), _incident().reason
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point."""
    return app.resolve(event, context)
