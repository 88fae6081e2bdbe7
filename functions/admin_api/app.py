"""Tenant administration routes behind the authorizer (users, roles, sessions)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from tenant_security import services
from tenant_security.api_reference import ApiTag, idempotent_reply, reply
from tenant_security.context import AUDIT_TARGET, current_caller, current_tenant
from tenant_security.errors import from_validation_error
from tenant_security.http import make_resolver
from tenant_security.idempotency import IdempotencyKey
from tenant_security.models.onboarding import OnboardingRequest
from tenant_security.models.quotas import ResourceQuotas
from tenant_security.models.replies import (
    NewUserCreated,
    QuotaUsage,
    SessionsRevoked,
    Suspension,
    Tenant,
    TenantState,
    UserList,
    UserView,
)
from tenant_security.observability import logger, metrics, tracer
from tenant_security.tenancy import Email, Username, require_username

settings = services.settings()
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes)
app.use([services.request_middleware()])

Role = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,47}$")]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Username
    email: Email
    roles: list[Role] = Field(min_length=1, max_length=20)


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class Roles(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: list[Role] = Field(min_length=1, max_length=20)


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
