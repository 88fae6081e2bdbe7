"""Sign-in routes of API.md (no authorizer) and POST /auth/logout (behind it)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tenant_security import services
from tenant_security.authz.decision import bearer_token
from tenant_security.context import tenant_context
from tenant_security.http import make_resolver
from tenant_security.identity.users import USERNAME_PATTERN
from tenant_security.observability import bind_request, logger, metrics, tracer
from tenant_security.tenancy import TenantId

settings = services.settings()
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes)

Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Code = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
BackupCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 -]{12,20}$")]
Token = Annotated[str, StringConstraints(min_length=10, max_length=4096)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(Body):
    tenant_id: TenantId
    username: Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
    password: Password


class ActivateBody(Body):
    enrollment_token: Token
    code: Code


class VerifyBody(Body):
    challenge_token: Token
    code: Code | None = None
    backup_code: BackupCode | None = None


class PasswordBody(Body):
    current_password: Password
    new_password: Password = Field(description="at least 12 characters, not containing the user name")


def _source_ip() -> str | None:
    return app.current_event.request_context.identity.source_ip


@app.post("/auth/login")
def login(body: LoginBody) -> dict[str, Any]:
    bind_request(body.tenant_id, body.username)
    return services.signin().login(body.tenant_id, body.username, body.password, _source_ip())


@app.post("/auth/mfa/enroll")
def enroll() -> dict[str, Any]:
    enrollment = services.signin().enroll(bearer_token(app.current_event.headers), _source_ip())
    return {
        "secret": enrollment.secret,
        "otpauth_uri": enrollment.otpauth_uri,
        "qr_svg": enrollment.qr_svg,
        "backup_codes": enrollment.backup_codes,
    }


@app.post("/auth/mfa/activate")
def activate(body: ActivateBody) -> dict[str, Any]:
    return services.signin().activate(body.enrollment_token, body.code, _source_ip())


@app.post("/auth/mfa/verify")
def verify(body: VerifyBody) -> dict[str, Any]:
    return services.signin().verify(body.challenge_token, body.code, body.backup_code, _source_ip())


@app.post("/auth/password")
def change_password(body: PasswordBody) -> dict[str, Any]:
    token = bearer_token(app.current_event.headers)
    return services.signin().change_password(token, body.current_password, body.new_password, _source_ip())


@app.post(
    "/auth/logout",
    middlewares=[services.request_middleware()],
    responses={204: {"description": "No content"}},
)
def logout() -> Response[str]:
    caller = tenant_context(app.current_event.raw_event, settings.platform_tenant_id)
    services.signin().logout(caller.tenant_id, caller.session_id, caller.user)
    return Response(status_code=204, body="")


@app.get("/.well-known/jwks.json")
def jwks() -> Response[Any]:
    return Response(
        status_code=200,
        content_type="application/json",
        body=services.public_keys().jwks(),
        headers={"Cache-Control": "public, max-age=300"},
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point."""
    return app.resolve(event, context)
