"""The builders of sign-in, tokens, MFA, user and session administration, incident response, the
authorizer's decision and the request middleware."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from tenant_security import aws
from tenant_security.services.base import (
    api_clients,
    faults,
    outbox,
    publisher,
    quota_guard,
    refusals,
    sessions,
    settings,
    tenant_store,
    tenants,
    users,
)

if TYPE_CHECKING:
    from tenant_security.administration.clients import ClientAdmin
    from tenant_security.administration.sessions import SessionAdmin
    from tenant_security.administration.users import UserAdmin
    from tenant_security.authz.decision import RequestAuthorizer
    from tenant_security.identity.client_credentials import ClientCredentialsGrant
    from tenant_security.identity.client_secrets import VerifierKeys
    from tenant_security.identity.mfa import MfaService
    from tenant_security.identity.signin import SignInService
    from tenant_security.identity.throttle import SignInThrottle
    from tenant_security.identity.tokens import PublicKeys, TokenIssuer, TokenVerifier
    from tenant_security.incidents import IncidentResponse
    from tenant_security.tenant_secrets import InitialPasswords


@cache
def public_keys() -> PublicKeys:
    from tenant_security.identity.tokens import PublicKeys

    return PublicKeys(aws.kms(), settings().signing_key_ids)


@cache
def audit_public_keys() -> PublicKeys:
    """The audit checkpoint keys' public halves (GET /.well-known/audit-keys.json)."""
    from tenant_security.identity.tokens import PublicKeys

    return PublicKeys(aws.kms(), settings().audit_checkpoint_key_ids)


@cache
def verifier() -> TokenVerifier:
    from tenant_security.identity.tokens import TokenVerifier

    return TokenVerifier(public_keys(), settings().token_issuer, settings().token_audience)


@cache
def issuer() -> TokenIssuer:
    from tenant_security.identity.tokens import KmsSigner, TokenIssuer

    return TokenIssuer(
        KmsSigner(aws.kms(), settings().signing_key_ids[0]),
        settings().token_issuer,
        settings().token_audience,
    )


@cache
def mfa() -> MfaService:
    from tenant_security.identity.mfa import KmsSecretCipher, MfaService

    return MfaService(
        users(), KmsSecretCipher(settings()), publisher(), lockout_seconds=settings().lockout_seconds
    )


@cache
def initial_passwords() -> InitialPasswords:
    from tenant_security.tenant_secrets import InitialPasswords

    return InitialPasswords(settings(), aws.secretsmanager())


@cache
def signin() -> SignInService:
    from tenant_security.identity.signin import SignInService

    return SignInService(
        users(),
        tenants(),
        sessions(),
        mfa(),
        issuer(),
        verifier(),
        on_first_sign_in=initial_passwords().forget,
        publisher=publisher(),
        platform_tenant=settings().platform_tenant_id,
        throttle=sign_in_throttle(),
        tenant_of_record=tenant_store(),
        refusals=refusals(),
        failure_floor=settings().sign_in_failure_floor_ms / 1000,
    )


@cache
def sign_in_throttle() -> SignInThrottle:
    from tenant_security.identity.throttle import SignInThrottle

    config = settings()
    return SignInThrottle(
        aws.dynamodb(),
        config.counters_table,
        per_address=config.sign_in_attempts_per_address,
        per_account=config.sign_in_attempts_per_account,
    )


@cache
def user_admin() -> UserAdmin:
    from tenant_security.administration.users import UserAdmin
    from tenant_security.services.policies import role_store

    return UserAdmin(users(), sessions(), settings().platform_tenant_id, role_store())


@cache
def session_admin() -> SessionAdmin:
    from tenant_security.administration.sessions import SessionAdmin

    return SessionAdmin(sessions(), users())


@cache
def incidents() -> IncidentResponse:
    from tenant_security.incidents import IncidentResponse

    return IncidentResponse(tenant_store(), tenants(), sessions(), publisher(), settings().platform_tenant_id)


@cache
def request_authorizer() -> RequestAuthorizer:
    from tenant_security.authz.decision import RequestAuthorizer

    return RequestAuthorizer(
        verifier(),
        tenants(),
        sessions(),
        publisher(),
        settings().platform_tenant_id,
        refusals=refusals(),
        clients=api_clients(),
    )


def request_middleware() -> Any:
    """The middleware every API function behind the authorizer runs (see tenant_security.context)."""
    from tenant_security.context import protected_middleware

    injector = faults() if settings().fault_injection == "enabled" else None
    return protected_middleware(
        tenants().get,
        sessions().get,
        settings().platform_tenant_id,
        quota_guard,
        publisher,
        aws_faults=injector.aws_faults if injector is not None else None,
        outbox=outbox,
        client_of=api_clients().get,
    )


@cache
def verifier_keys() -> VerifierKeys:
    from tenant_security.identity.client_secrets import VerifierKeys

    config = settings()
    return VerifierKeys(
        api_clients(),
        lambda tenant_id: config.tenant_key_arn(tenant_id, "api-keys"),
        config.account_id,
        config.partition,
    )


@cache
def client_credentials() -> ClientCredentialsGrant:
    """The OAuth 2.0 token endpoint (client credentials)."""
    from tenant_security.identity.client_credentials import ClientCredentialsGrant
    from tenant_security.identity.signin_audit import SignInAudit

    return ClientCredentialsGrant(
        api_clients(),
        verifier_keys(),
        tenants(),
        issuer(),
        SignInAudit(publisher(), refusals(), settings().platform_tenant_id),
        throttle=sign_in_throttle(),
    )


@cache
def client_admin() -> ClientAdmin:
    from tenant_security.administration.clients import ClientAdmin
    from tenant_security.services.policies import role_store

    return ClientAdmin(api_clients(), verifier_keys(), settings().platform_tenant_id, role_store())
