"""The OAuth 2.0 token endpoint for API clients: the client credentials grant (RFC 6749 §4.4).

POST /oauth2/token takes ``application/x-www-form-urlencoded`` with ``grant_type=client_credentials``
and the client authenticated by ``client_secret_basic`` (RFC 6749 §2.3.1: the id and secret
form-urlencoded, then HTTP Basic) or ``client_secret_post`` (both in the body), never both. An
optional ``scope`` (space-separated roles) narrows the token to a subset of the client's roles.

Errors are RFC 6749 §5.2's: ``{"error", "error_description"}`` (and the platform's ``message``, the
same text), 400 for ``invalid_request``, ``unsupported_grant_type``, ``invalid_scope`` and
``unauthorized_client``, 401 ``invalid_client`` with ``WWW-Authenticate: Basic``. Every way a
client can fail to authenticate -- no such client, deleted, expired, a wrong or rotated-away
secret, its tenant not active, an address outside the tenant's or the client's allow-list -- is
the same ``invalid_client``, after the same work (one HMAC); the trail says which it was.

The step is throttled as every unauthenticated step (identity/throttle.py): per source address
before anything else, then per client id, where an address the client authenticated from in the
last 30 days is not stopped by a stranger filling the client's window. The token is the
platform's ES256 JWT (the same JWKS as a person's), 15 minutes at most, carrying ``client_id``,
the tenant and the roles granted, and no session: the authorizer and the request middleware
check the client itself on every request (:mod:`tenant_security.authz.decision`,
:mod:`tenant_security.context`).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus

from tenant_security.errors import DomainError
from tenant_security.identity.client_secrets import VerifierKeys, matches, well_formed
from tenant_security.identity.clients import ApiClient, ApiClientStore, tenant_of_client
from tenant_security.identity.tokens import ACCESS, MAX_ACCESS_TTL, TokenIssuer
from tenant_security.observability import logger

if TYPE_CHECKING:
    from tenant_security.identity.signin_audit import SignInAudit
    from tenant_security.identity.throttle import SignInThrottle
    from tenant_security.tenants import TenantLookup

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path
# RFC 6749 §5.1: a token reply is never cached (no-store is on every reply already: http.py)
TOKEN_REPLY_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
GRANT_CLIENT_CREDENTIALS = "client_credentials"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
CLIENT_TOKEN_TTL = MAX_ACCESS_TTL
MAX_FORM_BYTES = 4096
TOKEN_ACTION = "oauth2:Token"  # noqa: S105 - an action name
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
REALM = "dcisionai-tenant-security"


class OAuthError(DomainError):
    """An error of the token endpoint, in RFC 6749 §5.2's shape."""

    def body(self) -> dict[str, Any]:
        """``error`` and ``error_description`` (RFC 6749 §5.2), and the platform's ``message``."""
        return {"error": self.code, "error_description": self.message, "message": self.message}


class InvalidRequest(OAuthError):
    status, code = 400, "invalid_request"


class UnsupportedGrantType(OAuthError):
    status, code = 400, "unsupported_grant_type"


class InvalidScope(OAuthError):
    status, code = 400, "invalid_scope"


class UnauthorizedClient(OAuthError):
    status, code = 400, "unauthorized_client"


class InvalidClient(OAuthError):
    """401 with ``WWW-Authenticate: Basic``; ``audit_reason`` tells the trail what the client is
    not told."""

    status, code = 401, "invalid_client"

    def __init__(self, audit_reason: str) -> None:
        super().__init__(
            "client authentication failed",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )
        self.audit_reason = audit_reason


def token_form(body: str | None, content_type: str | None) -> dict[str, str]:
    """The token request's parameters; ``invalid_request`` for another media type, an oversized or
    malformed body, or a parameter sent twice (RFC 6749 §3.2)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != FORM_MEDIA_TYPE:
        raise InvalidRequest(f"send the request as {FORM_MEDIA_TYPE}")
    text = body or ""
    if len(text) > MAX_FORM_BYTES:
        raise InvalidRequest(f"the request is larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("the request body is not a valid form") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(f"{name} is sent more than once")
        form[name] = value
    return form


def form_text(body: str | None, base64_encoded: bool) -> str | None:
    """The form as text: a body API Gateway base64-encoded (a binary media type) decoded, as
    UTF-8; ``invalid_request`` for one that is not."""
    if not base64_encoded or body is None:
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("the request body is not a valid form") from None


def _basic(authorization: str) -> tuple[str, str]:
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("unsupported_authorization_scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient("malformed_basic_credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("malformed_basic_credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def client_credentials(form: Mapping[str, str], authorization: str | None) -> tuple[str, str]:
    """The client id and secret, from exactly one of the two methods."""
    in_body = "client_secret" in form
    if authorization and authorization.strip():
        if in_body:
            raise InvalidRequest("use one client authentication method, not two")
        client_id, secret = _basic(authorization)
        if form.get("client_id") not in (None, client_id):
            raise InvalidRequest("client_id in the body is not the authenticated client")
        return client_id, secret
    if not in_body or not form.get("client_id"):
        raise InvalidClient("no_client_authentication")
    return form["client_id"], form["client_secret"]


def requested_roles(scope: str | None, held: tuple[str, ...]) -> list[str]:
    """The roles a token gets: ``scope``'s (a subset of ``held``), else all of ``held``."""
    if scope is None or not scope.strip():
        return list(held)
    wanted = scope.split(" ")
    if any(not _SCOPE_TOKEN.fullmatch(token) for token in wanted):
        raise InvalidScope("scope is a space-separated list of role names")
    beyond = sorted(set(wanted) - set(held))
    if beyond:
        raise InvalidScope(f"the client does not hold: {' '.join(beyond)}")
    return [role for role in held if role in wanted]


class ClientCredentialsGrant:
    """The token endpoint: authenticates an API client and issues its access token."""

    def __init__(
        self,
        clients: ApiClientStore,
        keys: VerifierKeys,
        tenants: TenantLookup,
        issuer: TokenIssuer,
        audit: SignInAudit,
        throttle: SignInThrottle | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.keys = keys
        self.tenants = tenants
        self.issuer = issuer
        self.audit = audit
        self.throttle = throttle
        self.clock = clock

    def token(
        self,
        body: str | None,
        content_type: str | None,
        authorization: str | None,
        source_ip: str | None,
        *,
        base64_encoded: bool = False,
    ) -> dict[str, Any]:
        """The token reply (RFC 6749 §5.1) for a valid client credentials request: ``body`` and
        ``content_type`` as sent (``base64_encoded``: as API Gateway hands over a body of a binary
        media type), ``authorization`` the Authorization header."""
        who: dict[str, str | None] = {}
        with self.audit.step(TOKEN_ACTION, source_ip, who):
            if self.throttle is not None:
                self.throttle.admit_address(source_ip)  # before any other work
            form = token_form(form_text(body, base64_encoded), content_type)
            grant = form.get("grant_type")
            if not grant:
                raise InvalidRequest("grant_type is required")
            if grant != GRANT_CLIENT_CREDENTIALS:
                raise UnsupportedGrantType("only client_credentials is supported")
            client_id, secret = client_credentials(form, authorization)
            return self._issue(client_id, secret, form.get("scope"), source_ip, who)

    def _issue(
        self,
        client_id: str,
        secret: str,
        scope: str | None,
        source_ip: str | None,
        who: dict[str, str | None],
    ) -> dict[str, Any]:
        tenant_id = tenant_of_client(client_id)
        if tenant_id is None or not well_formed(secret):
            matches(None, client_id, secret, [])  # the same work as a known client's check
            raise InvalidClient("unknown_client" if tenant_id is None else "malformed_secret")
        who["tenant_id"] = tenant_id
        now = self.clock()
        client = self.clients.get(tenant_id, client_id)
        tenant = self.tenants.get(tenant_id)
        if self.throttle is not None:
            # attempts from where the tenant or the client refuses the address (or for no such
            # client) fill a window of their own: a stranger never keeps the client out
            admitted = tenant is not None and tenant.policies.access_control.allows(source_ip)
            admitted = admitted and client is not None and client.allows(source_ip)
            self.throttle.admit_account(tenant_id, client_id, source_ip, outside=not admitted)
        usable = client is not None and client.live(now) and tenant is not None and tenant.active
        key = self.keys.of(tenant_id, client.verifier_key) if usable and client is not None else None
        valid = matches(
            key.material if key is not None else None,
            client_id,
            secret,
            client.valid_verifiers(now) if client else [],
        )
        if client is None:
            raise InvalidClient("unknown_client")
        who.update(user=client_id, client_id=client_id)
        if not client.live(now):
            raise InvalidClient("client_expired")
        if tenant is None or not tenant.active:
            raise InvalidClient("tenant_not_active")
        access = tenant.policies.access_control
        if not access.allows(source_ip) or not client.allows(source_ip):
            raise InvalidClient("source_ip_not_allowed")
        if not valid:
            raise InvalidClient("invalid_secret")
        if not access.api_clients_allowed:
            raise UnauthorizedClient("machine access is turned off for this tenant")
        roles = requested_roles(scope, client.roles)
        token, _claims = self.issuer.issue(
            subject=client_id,
            tenant_id=tenant_id,
            token_use=ACCESS,
            ttl=CLIENT_TOKEN_TTL,
            client_id=client_id,
            roles=roles,
            scope=" ".join(roles),
        )
        logger.info(
            "client token issued", extra={"tenant_id": tenant_id, "client_id": client_id, "roles": roles}
        )
        self._note_use(client, source_ip, now)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": CLIENT_TOKEN_TTL,
            "scope": " ".join(roles),
        }

    def _note_use(self, client: ApiClient, source_ip: str | None, now: float) -> None:
        """The address the client authenticated from (each one: a fleet behind several addresses
        is not stopped by a stranger filling the client's window), and ``last_used_at`` (at most
        once a minute): bookkeeping, which a DynamoDB error must not turn into a lost token (the
        token is already signed)."""
        try:
            self.clients.touch(client, now)
            if self.throttle is not None:
                self.throttle.remember_address(client.tenant_id, client.client_id, source_ip)
        except Exception as exc:
            logger.warning("client use not noted", extra={"error_type": type(exc).__name__})


def server_metadata(issuer: str, base_url: str) -> dict[str, Any]:
    """The authorization server's metadata (RFC 8414 §2) for the API at ``base_url``."""
    return {
        "issuer": issuer,
        "token_endpoint": f"{base_url}{TOKEN_PATH}",
        "jwks_uri": f"{base_url}/.well-known/jwks.json",
        "grant_types_supported": [GRANT_CLIENT_CREDENTIALS],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        # no authorization endpoint: no response type (RFC 8414 §2 asks for the member)
        "response_types_supported": [],
        "service_documentation": f"{base_url}/docs",
    }


def api_base_url(event: Mapping[str, Any]) -> str:
    """The API's base URL as the caller reached it: ``https://<id>.execute-api.<region>.amazonaws.com
    /<stage>`` behind API Gateway's own endpoint, the host alone behind a custom domain or the
    local cloud (http for a loopback host)."""
    request = event.get("requestContext") or {}
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    host = str(request.get("domainName") or headers.get("host") or "localhost")
    if ".execute-api." in host:
        return f"https://{host}/{request.get('stage', '')}".rstrip("/")
    # (no X-Forwarded-Proto: a header the caller sets must not choose the URLs a cache may keep)
    loopback = host.split(":", maxsplit=1)[0] in ("127.0.0.1", "localhost", "[::1]")
    return f"{'http' if loopback else 'https'}://{host}"
