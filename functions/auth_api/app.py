"""Sign-in routes (no authorizer); sign-out and the caller's own sessions (behind it)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tenant_security import services
from tenant_security.api_reference import ApiTag, idempotent_reply, oauth_reply, reply
from tenant_security.authz.decision import bearer_token
from tenant_security.authz.routes import behind_the_authorizer
from tenant_security.context import current_caller, current_tenant
from tenant_security.headers import header
from tenant_security.http import make_resolver
from tenant_security.idempotency import IdempotencyKey, creation_id
from tenant_security.identity.client_credentials import (
    TOKEN_PATH,
    TOKEN_REPLY_HEADERS,
    api_base_url,
    server_metadata,
)
from tenant_security.models.admin_requests import NewClient, SecretRotation
from tenant_security.models.replies import (
    AccessToken,
    ApiClientList,
    AuthorizationServerMetadata,
    ClientToken,
    JsonWebKeySet,
    MfaEnrollment,
    NewApiClient,
    OAuthErrorReply,
    RotatedSecret,
    SessionList,
    SignInStep,
)
from tenant_security.observability import bind_request, logger, metrics, tracer
from tenant_security.tenancy import TenantId, Username

settings = services.settings()
# The token endpoint's body is a form (RFC 6749 §4.4.2): it reads it itself.
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes, raw_body_prefixes=(TOKEN_PATH,))
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


@app.get(
    "/.well-known/audit-keys.json",
    summary="Audit checkpoint public keys",
    description="The JSON Web Key Set (ES256, P-256) that verifies the audit trail's signed checkpoints, "
    "old keys included; cacheable for 5 minutes.",
    tags=[ApiTag.AUDIT],
    responses=reply(JsonWebKeySet),
)
def audit_keys() -> Response[Any]:
    return Response(
        status_code=200,
        content_type="application/json",
        body=services.audit_public_keys().jwks(),
        headers={"Cache-Control": "public, max-age=300"},
    )


@app.post(
    TOKEN_PATH,
    summary="Get an API client's access token",
    description="OAuth 2.0 client credentials (RFC 6749 §4.4): an application/x-www-form-urlencoded body "
    "with grant_type=client_credentials, the client authenticated by HTTP Basic (client_secret_basic) or "
    "client_id and client_secret in the body (client_secret_post), and optionally scope (some of the "
    "client's roles, space-separated). The token is an ES256 JWT of 15 minutes. Errors as RFC 6749 §5.2. "
    "Throttled per address and per client (429).",
    tags=[ApiTag.MACHINE_ACCESS],
    responses=oauth_reply(ClientToken, OAuthErrorReply),
)
def oauth_token() -> Response[Any]:
    event = app.current_event
    token = services.client_credentials().token(
        event.body,
        header(event.headers, "content-type"),
        header(event.headers, "authorization"),
        _source_ip(),
        base64_encoded=bool(event.is_base64_encoded),
    )
    return Response(status_code=200, content_type="application/json", body=token, headers=TOKEN_REPLY_HEADERS)


@app.get(
    "/.well-known/oauth-authorization-server",
    summary="Authorization server metadata",
    description="RFC 8414: the issuer, the token endpoint, the JWKS and what the token endpoint supports; "
    "an OAuth client library configures itself from it.",
    tags=[ApiTag.MACHINE_ACCESS],
    responses=reply(AuthorizationServerMetadata),
)
def authorization_server_metadata() -> Response[Any]:
    return Response(
        status_code=200,
        content_type="application/json",
        body=server_metadata(settings.token_issuer, api_base_url(app.current_event.raw_event)),
        headers={"Cache-Control": "public, max-age=300"},
    )


@app.post(
    "/tenants/<tenant_id>/clients",
    status_code=201,
    middlewares=[services.idempotency_middleware()],
    summary="Create an API client",
    description="Tenant admins: a machine identity with roles (at most those you may grant), living "
    "expires_in_days (default 90, at most 365), optionally with an allow-list of its own (narrower "
    "than the tenant's). The reply holds its client_secret (tsk_...), shown once: only a verifier under "
    "the tenant's api-keys key is kept. Platform tenant: platform admins only. Send Idempotency-Key to "
    "retry safely.",
    tags=[ApiTag.MACHINE_ACCESS],
    responses=idempotent_reply(NewApiClient, 201, "The client and its secret, shown once"),
)
def create_client(tenant_id: str, body: NewClient, idempotency_key: IdempotencyKey = None) -> Response[Any]:
    created = services.client_admin().create(
        current_caller(app).actor,
        current_tenant(app),
        body.name,
        body.roles,
        body.expires_in_days,
        body.ip_whitelist,
        creation_id(app),
    )
    return Response(status_code=201, content_type="application/json", body=created)


@app.get(
    "/tenants/<tenant_id>/clients",
    summary="List API clients",
    description="The tenant's API clients (expired ones too, until deleted: they count toward the "
    "tenant's 100), with last_used_at to the minute; never a secret.",
    tags=[ApiTag.MACHINE_ACCESS],
    responses=reply(ApiClientList),
)
def list_clients(tenant_id: str) -> dict[str, Any]:
    caller = current_caller(app)
    return {"items": services.client_admin().list_clients(caller.actor, current_tenant(app).tenant_id)}


@app.delete(
    "/tenants/<tenant_id>/clients/<client_id>",
    summary="Delete an API client",
    description="The client is gone: its secret no longer gets tokens, and the tokens it was issued "
    "are refused from the next request on. Another tenant's or an unknown client is 404.",
    tags=[ApiTag.MACHINE_ACCESS],
    responses={204: {"description": "Deleted"}},
)
def delete_client(tenant_id: str, client_id: str) -> Response[str]:
    services.client_admin().delete(current_caller(app).actor, current_tenant(app).tenant_id, client_id)
    return Response(status_code=204, body="")


@app.post(
    "/tenants/<tenant_id>/clients/<client_id>/secret",
    summary="Rotate an API client's secret",
    description="A new secret, shown once. The one it replaces keeps working for grace_seconds (default "
    "0, at most 86400), any older one no longer. Tokens already issued stay valid until they expire "
    "(15 minutes at most); delete the client to end them at once. Two rotations at once: one lands, the "
    "other is 409.",
    tags=[ApiTag.MACHINE_ACCESS],
    responses=reply(RotatedSecret),
)
def rotate_client_secret(
    tenant_id: str, client_id: str, body: SecretRotation | None = None
) -> dict[str, Any]:
    grace = body.grace_seconds if body is not None else 0
    return services.client_admin().rotate(current_caller(app).actor, current_tenant(app), client_id, grace)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point."""
    return app.resolve(event, context)
