"""Sign-in routes (no authorizer); sign-out and the caller's own sessions (behind it)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tenant_security import services
from tenant_security.api_reference import ApiTag, reply
from tenant_security.authz.decision import bearer_token
from tenant_security.authz.routes import behind_the_authorizer
from tenant_security.context import current_caller
from tenant_security.headers import header
from tenant_security.http import make_resolver
from tenant_security.models.replies import (
    AccessToken,
    JsonWebKeySet,
    MfaEnrollment,
    SessionList,
    SignInStep,
)
from tenant_security.observability import bind_request, logger, metrics, tracer
from tenant_security.tenancy import TenantId, Username

settings = services.settings()
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes)
# The routes behind the authorizer (those of the route table) get the request middleware, before
# their body is looked at; sign-in's own routes have no caller yet.
app.use_before_validation(services.request_middleware(), when=behind_the_authorizer)

Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Code = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
BackupCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 -]{12,20}$")]
Token = Annotated[str, StringConstraints(min_length=10, max_length=4096)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(Body):
    tenant_id: TenantId
    username: Username
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


def _user_agent() -> str | None:
    """The client's User-Agent, which a session started by the request keeps (never logged)."""
    return header(app.current_event.headers, "user-agent")


@app.post(
    "/auth/login",
    summary="Sign in with a password",
    description="The first step of sign-in: tenant, user name and password. The reply names the second "
    "step: a TOTP code (challenge_token for POST /auth/mfa/verify) or, at first sign-in, MFA "
    "enrolment (enrollment_token). Throttled per address and per account (429); a wrong "
    "tenant, user or password is the same 401.",
    tags=[ApiTag.SIGN_IN],
    responses=reply(SignInStep),
)
def login(body: LoginBody) -> dict[str, Any]:
    bind_request(body.tenant_id, body.username)
    return services.signin().login(body.tenant_id, body.username, body.password, _source_ip())


@app.post(
    "/auth/mfa/enroll",
    summary="Start MFA enrolment",
    description="With Authorization: Bearer <enrollment_token>: a new TOTP secret (as otpauth URI and QR "
    "code) and 10 backup codes, shown once. POST /auth/mfa/activate with the first code "
    "completes it.",
    tags=[ApiTag.SIGN_IN],
    responses=reply(MfaEnrollment),
)
def enroll() -> dict[str, Any]:
    enrollment = services.signin().enroll(bearer_token(app.current_event.headers), _source_ip())
    return {
        "secret": enrollment.secret,
        "otpauth_uri": enrollment.otpauth_uri,
        "qr_svg": enrollment.qr_svg,
        "backup_codes": enrollment.backup_codes,
    }


@app.post(
    "/auth/mfa/activate",
    summary="Complete MFA enrolment",
    description="The enrolment token and the authenticator's first code: MFA is on and the reply is a "
    "session's access token.",
    tags=[ApiTag.SIGN_IN],
    responses=reply(AccessToken),
)
def activate(body: ActivateBody) -> dict[str, Any]:
    return services.signin().activate(body.enrollment_token, body.code, _source_ip(), _user_agent())


@app.post(
    "/auth/mfa/verify",
    summary="Verify the second factor",
    description="The challenge token with a TOTP code (each time step once) or a backup code (each once): "
    "an access token. Failed attempts lock the user out (423).",
    tags=[ApiTag.SIGN_IN],
    responses=reply(AccessToken),
)
def verify(body: VerifyBody) -> dict[str, Any]:
    return services.signin().verify(
        body.challenge_token, body.code, body.backup_code, _source_ip(), _user_agent()
    )


@app.post(
    "/auth/password",
    summary="Change the password",
    description="With the bearer token: the current and a new password (12 characters or more, not "
    "containing the user name). A one-time password's token is good only for this; the reply "
    "is a token with full rights.",
    tags=[ApiTag.SIGN_IN],
    responses=reply(AccessToken),
)
def change_password(body: PasswordBody) -> dict[str, Any]:
    token = bearer_token(app.current_event.headers)
    return services.signin().change_password(
        token, body.current_password, body.new_password, _source_ip(), _user_agent()
    )


@app.post(
    "/auth/logout",
    summary="Sign out",
    description="Ends the caller's session: its token is refused from now on.",
    tags=[ApiTag.SIGN_IN],
    responses={204: {"description": "Signed out"}},
)
def logout() -> Response[str]:
    caller = current_caller(app)  # as the request middleware established it
    services.signin().logout(caller.tenant_id, caller.session_id, caller.user)
    return Response(status_code=204, body="")


@app.get(
    "/auth/sessions",
    summary="List your sessions",
    description="The caller's live sessions, oldest first: when each started and ends, the address and "
    "User-Agent its sign-in came from, and which one this request's token belongs to (current).",
    tags=[ApiTag.SIGN_IN],
    responses=reply(SessionList),
)
def list_own_sessions() -> dict[str, Any]:
    caller = current_caller(app)
    return services.session_admin().own_sessions(caller.actor, caller.session_id)


@app.delete(
    "/auth/sessions/<session_id>",
    summary="End one of your sessions",
    description="Ends a live session of the caller (the current one too: that signs out); its token is "
    "refused from now on. Any other id -- unknown, ended already, another user's or another tenant's "
    "-- is 404, and nothing is ended.",
    tags=[ApiTag.SIGN_IN],
    responses={204: {"description": "The session ended"}},
)
def end_own_session(session_id: str) -> Response[str]:
    services.session_admin().end_own(current_caller(app).actor, session_id)
    return Response(status_code=204, body="")


@app.get(
    "/.well-known/jwks.json",
    summary="Token-signing public keys",
    description="The JSON Web Key Set (ES256) that verifies the API's access tokens; cacheable for 5 "
    "minutes.",
    tags=[ApiTag.SIGN_IN],
    responses=reply(JsonWebKeySet),
)
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
