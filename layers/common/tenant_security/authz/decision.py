"""The REQUEST authorizer's decision.

Order: bearer token (ES256, known kid, issuer, audience, expiry) → tenant ACTIVE → session live
and younger than the policy's session timeout → full-scope token (not a password-change one) →
RBAC over the route table. An API client's token (a ``client_id`` claim equal to its
subject, naming its tenant, and no session) has its client checked instead of a session:
deleted or expired is 401; its roles count only while the client still holds them, and it
never gets what no machine does (rbac.NOT_FOR_MACHINES).

The answer lists every route the caller may use, with the caller's own tenant in the path
(any tenant for a platform-admin), so API Gateway's cached answer is right for every route.
An invalid token or a dead session is 401 (``Unauthorized``); anything else refused is an
explicit Deny (403). The handler turns any unexpected exception into a 401.

What a tenant's policy may loosen again is not decided here: API Gateway keeps an answer for
AuthorizerCacheTtl seconds (per token and source address), and a cached Deny would outlive a
reopened allow-list or a lifted MFA requirement by minutes. The source address against the
allow-list (from requestContext, never X-Forwarded-For) and MFA in ``amr`` when the policy
requires it are checked by the request middleware on every request, against the policy read at
most 5 seconds ago (:mod:`tenant_security.context`); the token's ``amr`` travels in the answer's
context for it. Likewise a caller holding a custom role is allowed here every route a custom
role could grant, and the middleware checks the route exactly against the role as stored now:
a role narrowed or widened governs within 5 seconds, not within the cache's time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    HttpVerb,
)

from tenant_security.activity import EventPublisher
from tenant_security.alerts import AlertKind
from tenant_security.authz.rbac import BUILTIN_ROLES, PLATFORM_ADMIN, TENANT_ACTIONS, may_use, permissions
from tenant_security.authz.routes import ROUTES, TENANT_PARAM, RouteRule, rule_for
from tenant_security.errors import Unauthorized
from tenant_security.headers import header
from tenant_security.identity.clients import tenant_of_client
from tenant_security.identity.tokens import ACCESS, SCOPE_FULL, TokenVerifier
from tenant_security.paths import decode_path_text
from tenant_security.refusals import RefusalCounter, RefusalKind

if TYPE_CHECKING:
    from tenant_security.identity.clients import ApiClient
    from tenant_security.identity.sessions import Session
    from tenant_security.tenants import TenantLookup

_PARAM = re.compile(r"\{[^}]+\}")


class SessionLookup(Protocol):
    def get(self, tenant_id: str, session_id: str) -> Session | None: ...


class ClientLookup(Protocol):
    def get(self, tenant_id: str, client_id: str) -> ApiClient | None: ...


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    user: str
    roles: tuple[str, ...]
    session_id: str
    amr: tuple[str, ...]
    scope: str
    # an API client's token (machine access): the client, checked instead of a session
    client_id: str | None = None


def bearer_token(headers: Mapping[str, Any] | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; 401 without one."""
    scheme, _, token = (header(headers, "authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()


# A policy's ``*`` matches the empty string too, so a files:Read grant (``files/*``) would allow
# ``GET .../files/`` (the listing's path with a trailing slash). A parameter is never empty: every
# answer denies paths that end in ``/`` or hold an empty segment (an explicit Deny wins).
EMPTY_PARAMETER_PATHS = ("*/", "*//*")


def policy_resource(rule: RouteRule, tenant_id: str) -> str:
    """The route's resource in a policy: the tenant filled in, every other parameter ``*``."""
    return _PARAM.sub("*", rule.resource.replace(TENANT_PARAM, tenant_id))


class RequestAuthorizer:
    """Decides one API Gateway REQUEST authorizer event."""

    def __init__(
        self,
        verifier: TokenVerifier,
        tenants: TenantLookup,
        sessions: SessionLookup,
        publisher: EventPublisher,
        platform_tenant: str,
        refusals: RefusalCounter | None = None,
        clock: Callable[[], float] = time.time,
        clients: ClientLookup | None = None,
    ) -> None:
        """``refusals``: where refusals of callers without a valid token are counted (one
        record per source address and minute) instead of one alert each; ``clients``: the API
        clients (without it, every client token is refused)."""
        self.clients = clients
        self.refusals = refusals
        self.clock = clock
        self.verifier = verifier
        self.tenants = tenants
        self.sessions = sessions
        self.publisher = publisher
        self.platform_tenant = platform_tenant

    def caller(self, event: Mapping[str, Any]) -> Caller:
        """Who is calling, from a verified access token; 401 otherwise."""
        claims = self.verifier.verify(bearer_token(event.get("headers")), ACCESS)
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized("token without roles")
        client_id = claims.get("client_id")
        if client_id is not None and (
            not isinstance(client_id, str)
            or client_id != claims["sub"]
            or tenant_of_client(client_id) != claims["tenant_id"]
            or "sid" in claims
        ):
            raise Unauthorized("malformed client token")
        return Caller(
            client_id=client_id,
            tenant_id=str(claims["tenant_id"]),
            user=str(claims["sub"]),
            roles=tuple(roles),
            session_id=str(claims.get("sid", "")),
            amr=tuple(claims.get("amr") or ()),
            scope=str(claims.get("scope", "")),
        )

    def authorize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The authorizer response (policy and context) for ``event``.

        Every refusal is also a `Security Alert` in the trail of the caller's tenant (the
        platform's when the token names none we can trust).
        """
        source_ip = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
        try:
            caller = self.caller(event)
        except Unauthorized as exc:
            if self.refusals is not None:
                sample = f"{event.get('httpMethod')} {event.get('resource')}: {exc.message}"
                self.refusals.count(RefusalKind.INVALID_TOKEN, source_ip, sample=sample)
            else:
                self._alert(
                    self.platform_tenant, AlertKind.INVALID_TOKEN, event, source_ip, reason=exc.message
                )
            raise
        try:
            return self._decide(event, caller, source_ip)
        except Unauthorized as exc:
            self._alert(
                caller.tenant_id,
                AlertKind.CLIENT_ENDED if caller.client_id is not None else AlertKind.SESSION_ENDED,
                event,
                source_ip,
                user=caller.user,
                reason=exc.message,
            )
            raise

    def _alert(
        self, tenant_id: str, alert: AlertKind, event: Mapping[str, Any], source_ip: str | None, **extra: Any
    ) -> None:
        self.publisher.security_alert(
            tenant_id,
            alert,
            source_ip=source_ip,
            method=event.get("httpMethod"),
            resource=event.get("resource"),
            **extra,
        )

    def _decide(self, event: Mapping[str, Any], caller: Caller, source_ip: str | None) -> dict[str, Any]:
        response = APIGatewayAuthorizerResponse.from_route_arn(
            str(event["methodArn"]),
            principal_id=f"{caller.tenant_id}/{caller.user}",
            context={
                "tenant_id": caller.tenant_id,
                "user": caller.user,
                "roles": ",".join(caller.roles),
                "sid": caller.session_id,
                "amr": ",".join(caller.amr),
                # an API client's token only: the middleware checks the client, not a session
                **({"client_id": caller.client_id} if caller.client_id is not None else {}),
            },
        )
        tenant = self.tenants.get(caller.tenant_id)
        if tenant is None or not tenant.active:
            return self._deny(response, AlertKind.TENANT_NOT_ACTIVE, caller, event, source_ip)
        now = self.clock()
        held = caller.roles
        if caller.client_id is not None:
            client = self.clients.get(caller.tenant_id, caller.client_id) if self.clients else None
            if client is None or not client.live(now):
                raise Unauthorized("client ended")
            held = tuple(r for r in caller.roles if r in client.roles)
        else:
            session = self.sessions.get(caller.tenant_id, caller.session_id) if caller.session_id else None
            if session is None or not session.live_within(
                tenant.policies.access_control.session_timeout_minutes, now
            ):
                raise Unauthorized("session ended")
            if caller.scope != SCOPE_FULL:
                return self._deny(response, AlertKind.PASSWORD_CHANGE_REQUIRED, caller, event, source_ip)

        platform_admin = caller.tenant_id == self.platform_tenant and PLATFORM_ADMIN in held
        roles = [r for r in held if r != PLATFORM_ADMIN or platform_admin]
        granted = permissions(roles, tenant.custom_roles)
        if any(role not in BUILTIN_ROLES for role in roles):
            # the middleware holds the caller to the custom role as stored at the request
            granted = [*granted, *sorted(TENANT_ACTIONS)]
        tenant_in_path = "*" if platform_admin else caller.tenant_id
        machine = caller.client_id is not None
        allowed = [rule for rule in ROUTES if may_use(rule, granted, machine=machine)]
        if not allowed:
            return self._deny(response, AlertKind.NO_PERMISSION, caller, event, source_ip)
        for rule in allowed:
            response.allow_route(rule.method, policy_resource(rule, tenant_in_path))
        for empty in EMPTY_PARAMETER_PATHS:
            response.deny_route(HttpVerb.ALL.value, empty)
        path_tenant = (event.get("pathParameters") or {}).get("tenant_id")
        if path_tenant is not None:
            # API Gateway hands path parameters over still percent-encoded: `%61cme` is `acme`,
            # not another tenant (the shared HTTP layer decodes for the handlers the same way).
            path_tenant = decode_path_text(path_tenant)
        if path_tenant not in (None, caller.tenant_id) and not platform_admin:
            self._alert_cross_tenant(caller, path_tenant, event, source_ip)
        else:
            # The policy lets API Gateway refuse this very route (403) without another call here:
            # say so now, or the refusal would leave no trace.
            requested = rule_for(str(event.get("httpMethod")), str(event.get("resource")))
            if requested is not None and requested not in allowed:
                self._alert(
                    caller.tenant_id,
                    AlertKind.PERMISSION_DENIED,
                    event,
                    source_ip,
                    user=caller.user,
                    action=requested.action,
                )
        return response.asdict()

    def _deny(
        self,
        response: APIGatewayAuthorizerResponse,
        reason: AlertKind,
        caller: Caller,
        event: Mapping[str, Any],
        source_ip: str | None,
    ) -> dict[str, Any]:
        self._alert(caller.tenant_id, reason, event, source_ip, user=caller.user)
        response.context = {**(response.context or {}), "deny_reason": reason}
        response.deny_all_routes()
        return response.asdict()

    def _alert_cross_tenant(
        self, caller: Caller, path_tenant: str, event: Mapping[str, Any], source_ip: str | None
    ) -> None:
        self._alert(
            caller.tenant_id,
            AlertKind.CROSS_TENANT_ACCESS,
            event,
            source_ip,
            user=caller.user,
            target_tenant=str(path_tenant)[:64],
        )
