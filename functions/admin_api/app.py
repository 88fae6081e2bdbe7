"""Tenant administration routes behind the authorizer (users, roles, sessions)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from tenant_security import services
from tenant_security.context import AUDIT_TARGET, TenantContext
from tenant_security.errors import Conflict, NotFound, ValidationFailed, from_validation_error
from tenant_security.http import make_resolver
from tenant_security.identity.users import USERNAME_PATTERN, is_valid_username
from tenant_security.models.onboarding import OnboardingRequest
from tenant_security.observability import logger, metrics, tracer
from tenant_security.tenancy import require_tenant_id
from tenant_security.tenants import TenantRecord

settings = services.settings()
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes)
app.use([services.request_middleware()])

Role = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,47}$")]
Email = Annotated[
    str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$", max_length=254)
]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
    email: Email
    roles: list[Role] = Field(min_length=1, max_length=20)


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class Roles(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: list[Role] = Field(min_length=1, max_length=20)


def _caller() -> TenantContext:
    caller: TenantContext = app.context["tenant"]
    return caller


def _username(username: str) -> str:
    if not is_valid_username(username):
        raise ValidationFailed(
            "invalid user name", fields=[{"field": "path.username", "message": "not a user name"}]
        )
    return username


def _tenant(tenant_id: str) -> TenantRecord:
    require_tenant_id(tenant_id, "path.tenant_id")
    record: TenantRecord = app.context["tenant_record"]
    return record


@app.post("/tenants", status_code=202)
def create_tenant(body: OnboardingRequest) -> Response[Any]:
    from tenant_security.onboarding import TenantProvisioner, check_onboarding_size, request_onboarding

    check_onboarding_size(app.current_event.body)  # it must fit in an event and an execution's state
    request = TenantProvisioner.validate_with(settings, body.model_dump(mode="json"))
    accepted = request_onboarding(request, services.tenant_store(), services.publisher())
    return Response(status_code=202, content_type="application/json", body=accepted)


@app.get("/tenants/<tenant_id>")
def get_tenant(tenant_id: str) -> dict[str, Any]:
    record = services.tenant_store().get(_tenant(tenant_id).tenant_id)
    if record is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return record.public()


@app.delete("/tenants/<tenant_id>", status_code=202)
def delete_tenant(tenant_id: str) -> Response[Any]:
    from tenant_security.onboarding import request_offboarding

    if tenant_id == settings.platform_tenant_id:
        raise Conflict("the platform tenant cannot be offboarded")
    caller = _caller()
    accepted = request_offboarding(
        _tenant(tenant_id).tenant_id,
        services.tenant_store(),
        services.publisher(),
        requested_by=f"{caller.tenant_id}/{caller.user}",
    )
    services.tenants().forget(tenant_id)  # this worker denies the tenant at once
    return Response(status_code=202, content_type="application/json", body=accepted)


@app.get("/tenants/<tenant_id>/quotas")
def get_quotas(tenant_id: str) -> dict[str, Any]:
    return _tenant(tenant_id).quotas.model_dump(mode="json")


@app.put("/tenants/<tenant_id>/quotas")
def put_quotas(tenant_id: str) -> dict[str, Any]:
    from tenant_security.models import parse_resource_quotas

    record = _tenant(tenant_id)
    quotas = parse_resource_quotas(app.current_event.json_body).model_copy(
        update={"tenant_id": record.tenant_id}
    )
    services.tenant_store().set_quotas(record.tenant_id, quotas)
    services.tenants().forget(record.tenant_id)  # this worker at once; others within the cache time
    return quotas.model_dump(mode="json")


@app.get("/tenants/<tenant_id>/quotas/usage")
def quota_usage(tenant_id: str) -> dict[str, Any]:
    from tenant_security.quotas import RateLimits

    record = _tenant(tenant_id)
    return {
        "tenant_id": record.tenant_id,
        "requests": services.rate_limiter().usage(
            record.tenant_id, RateLimits.of(record.policies, record.quotas)
        ),
        "concurrent_requests": {
            "active": services.leases().active(record.tenant_id),
            "limit": record.quotas.compute.max_concurrent_requests,
        },
        "storage": {
            **services.storage_quota().usage(record.tenant_id),
            "max_data_size": record.quotas.storage.max_data_size,
            "max_file_count": record.quotas.storage.max_file_count,
        },
        "compute": record.quotas.compute.model_dump(mode="json"),
    }


@app.post("/tenants/<tenant_id>/users", status_code=201)
def create_user(tenant_id: str, body: NewUser) -> Response[Any]:
    app.context[AUDIT_TARGET] = {"user": body.username, "email": body.email}
    created = services.user_admin().create(
        _caller(), _tenant(tenant_id), body.username, body.email, body.roles
    )
    return Response(status_code=201, content_type="application/json", body=created)


@app.get("/tenants/<tenant_id>/users")
def list_users(tenant_id: str) -> dict[str, Any]:
    return {"items": services.user_admin().list_users(_tenant(tenant_id).tenant_id)}


@app.delete("/tenants/<tenant_id>/users/<username>", responses={204: {"description": "No content"}})
def delete_user(tenant_id: str, username: str) -> Response[str]:
    services.user_admin().delete(_caller(), _tenant(tenant_id).tenant_id, _username(username))
    return Response(status_code=204, body="")


@app.put("/tenants/<tenant_id>/users/<username>/roles")
def set_roles(tenant_id: str, username: str, body: Roles) -> dict[str, Any]:
    return services.user_admin().set_roles(_caller(), _tenant(tenant_id), _username(username), body.roles)


@app.delete("/tenants/<tenant_id>/sessions")
def revoke_sessions(tenant_id: str) -> dict[str, Any]:
    caller = _caller()
    revoked = services.incidents().revoke_sessions(
        _tenant(tenant_id).tenant_id, (caller.tenant_id, caller.user)
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


@app.post("/tenants/<tenant_id>/suspend")
def suspend_tenant(tenant_id: str) -> dict[str, Any]:
    caller = _caller()
    return services.incidents().suspend(
        _tenant(tenant_id).tenant_id, (caller.tenant_id, caller.user), _incident().reason
    )


@app.post("/tenants/<tenant_id>/reinstate")
def reinstate_tenant(tenant_id: str) -> dict[str, Any]:
    caller = _caller()
    return services.incidents().reinstate(
        _tenant(tenant_id).tenant_id, (caller.tenant_id, caller.user), _incident().reason
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point."""
    return app.resolve(event, context)
