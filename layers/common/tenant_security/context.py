"""The tenant context of a request behind the authorizer, and the checks a cached authorizer
answer cannot make per request.

Every API function behind the authorizer builds its resolver with :func:`protected_middleware`:
it rebuilds who is calling from ``requestContext.authorizer`` (never from the request itself),
refuses a revoked or expired session (401), checks against the caller tenant's policy read at
most 5 seconds ago what API Gateway's cached authorizer answer cannot see (the source address
in the allow-list, MFA when required, the session younger than the session timeout: a policy
change governs every request that starts 5 s after it), refuses an ``X-Data-Region`` outside
the tenant policy's data_locality (403), then runs the request under the caller tenant's quotas (see
:class:`tenant_security.quotas.QuotaGuard`: domain entitlement, one atomic rate/cost write, a
concurrency lease, max_request_duration). Every request that reaches it -- admitted, refused or
failed -- becomes one `User Activity` event (per the tenant policy's audit_logging flags).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from tenant_security.activity import Activity, EventPublisher, actor_of, category_of, outcome_of
from tenant_security.alerts import AlertKind
from tenant_security.authz.rbac import may_use
from tenant_security.authz.route_costs import DEFAULT_COST
from tenant_security.authz.routes import rule_for
from tenant_security.aws import is_transient
from tenant_security.callers import (
    PolicyRefusal,
    TenantContext,
    policy_refusal,
    session_within_timeout,
    tenant_context,
)
from tenant_security.errors import DomainError, Forbidden, NotFound, ServiceUnavailable, Unauthorized
from tenant_security.http import request_refusal
from tenant_security.locality import check_data_region
from tenant_security.observability import logger
from tenant_security.outbox import Held, Outbox
from tenant_security.tenancy import require_tenant_id
from tenant_security.tenant_directory import READ_STATUS_MAX_AGE, WRITE_STATUS_MAX_AGE
from tenant_security.tenants import TenantProfile, TenantStatus

if TYPE_CHECKING:
    from tenant_security.identity.clients import ApiClient
    from tenant_security.identity.sessions import Session


AUDIT_TARGET = "audit_target"
# A policy change's field-level changes ([{field, old, new}]), named in the request's record.
AUDIT_CHANGES = "audit_changes"
# Scalar facts of what the request did ({name: int or str}, no personal data): an export's range.
AUDIT_DETAILS = "audit_details"
# Set (True) by the idempotency middleware when the reply is a kept one: the request's record says
# so (``replay``), and nothing was done again.
REPLAYED = "idempotent_replay"
# Where the middleware leaves what it resolved, in ``app.context`` (read through the helpers below).
CALLER, TENANT = "tenant", "tenant_record"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def current_caller(app: APIGatewayRestResolver) -> TenantContext:
    """Who is calling, as :func:`protected_middleware` established it for this request."""
    caller: TenantContext = app.context[CALLER]
    return caller


def current_tenant(app: APIGatewayRestResolver) -> TenantProfile:
    """The tenant the request is about (the path's, else the caller's), as the middleware read it:
    its id already checked against the id rule, the caller allowed in it and the tenant found."""
    record: TenantProfile = app.context[TENANT]
    return record


# A route's shape: its path with every parameter (``{name}``, ``{key+}``, Powertools' ``<name>``
# and a greedy ``.+``) as ``*``, so the route Powertools matched compares with API Gateway's.
_PARAMETER = re.compile(r"\{[^}]+\}|<[^>]+>|\.\+")


def _shape(path: str) -> str:
    return _PARAMETER.sub("*", path)


class TenantNotActive(DomainError):
    """A platform-admin's request that the tenant's status does not allow (409)."""

    status, code = 409, "tenant_not_active"


# What a platform-admin may still do with a tenant that is not ACTIVE: read its status and, while
# its trail and data exist, investigate it; end it. Everything else is a 409.
ALLOWED_WHEN_NOT_ACTIVE: dict[str, frozenset[str]] = {
    TenantStatus.PROVISIONING: frozenset({"tenants:Read"}),
    TenantStatus.FAILED: frozenset({"tenants:Read", "tenants:Delete"}),
    TenantStatus.SUSPENDED: frozenset(
        {
            "tenants:Read",
            "tenants:Delete",
            "tenants:Suspend",
            "tenants:Reinstate",
            "users:List",
            "sessions:List",
            "sessions:Revoke",
            # an incident's first steps too: see and delete the tenant's machine credentials
            "clients:List",
            "clients:Delete",
            "quotas:Read",
            "audit:Read",
            "audit:Verify",
            "audit:Export",
            "reports:Read",
            "gdpr:Export",
            # an incident's first steps: read and tighten the policy of the tenant it suspended
            "policies:Read",
            "policies:Write",
            "policies:History",
        }
    ),
    TenantStatus.OFFBOARDING: frozenset(
        {"tenants:Read", "tenants:Delete", "audit:Read", "audit:Verify", "audit:Export"}
    ),
    TenantStatus.OFFBOARDED: frozenset({"tenants:Read", "audit:Read", "audit:Verify", "audit:Export"}),
}


def activity_of(
    event: Mapping[str, Any],
    caller: TenantContext,
    tenant_id: str,
    status: int,
    reason: str | None,
    target: Mapping[str, str] | None = None,
    replay: bool = False,
    changes: list[dict[str, Any]] | None = None,
    extra: Mapping[str, int | str] | None = None,
) -> Activity:
    """The `User Activity` of one API request (the route's action, never its raw path or body).

    ``target``: the user the request was about, when a handler names one that the path does not
    (``app.context["audit_target"] = {"user", "email"}``). ``replay``: the reply was an
    Idempotency-Key's kept one (the action was not done again). ``changes``: a policy change's
    fields, old and new values (``app.context["audit_changes"]``). ``extra``: scalar facts of what
    it did (``app.context["audit_details"]``), kept in the record's ``details``.
    """
    method, resource = str(event.get("httpMethod")), str(event.get("resource"))
    rule = rule_for(method, resource)
    action = rule.action if rule else f"{method} {resource}"[:128]
    return Activity(
        tenant_id=tenant_id,
        action=action,
        outcome=outcome_of(status),
        category=category_of(action, method),
        actor_tenant=caller.tenant_id,
        user=caller.user,
        resource=f"{method} {resource}",
        source_ip=caller.source_ip,
        request_id=caller.request_id,
        status=status,
        reason=reason,
        target_user=(target or {}).get("user") or (event.get("pathParameters") or {}).get("username"),
        target_email=(target or {}).get("email"),
        replay=True if replay else None,
        changes=list(changes) if changes else None,
        actor=actor_of(caller.user, caller.client_id),
        extra=dict(extra) if extra else None,
    )


def protected_middleware(  # noqa: PLR0915 - one closure per step of the request, kept together
    tenants: Callable[[str, float], TenantProfile | None],
    session_of: Callable[[str, str], Session | None],
    platform_tenant: str,
    quotas: Callable[[], Any] | None = None,
    activity: Callable[[], EventPublisher] | None = None,
    aws_faults: Callable[[str], AbstractContextManager[None]] | None = None,
    outbox: Callable[[], Outbox] | None = None,
    clock: Callable[[], float] = time.time,
    client_of: Callable[[str, str], ApiClient | None] | None = None,
) -> Callable[[APIGatewayRestResolver, NextMiddleware], Response[Any]]:
    """Middleware that sets the request's caller and tenant (:func:`current_caller`,
    :func:`current_tenant`), enforces per-request policy and records it.

    API Gateway may answer from a cached authorizer decision for minutes; the session check here
    makes logout and revocation take effect on the very next request, and the caller tenant's
    policy (read at most 5 s ago) is checked again: allow-list, MFA, session timeout.
    ``session_of(tenant, sid)``: the session, read consistently. ``tenants(id, max_age)``:
    the tenant's record read at most ``max_age`` seconds ago (now, for a write). ``aws_faults``: the fault
    injector's per-tenant AWS failures (resilience tests only). ``outbox``: where a write's record
    is held before the write runs (no write without its record: :mod:`tenant_security.outbox`).
    ``client_of(tenant, client_id)``: an API client, read consistently (a client token is checked
    against it instead of a session; without it every client token is refused).
    """

    def middleware(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        event = app.current_event.raw_event
        context = tenant_context(event, platform_tenant)
        audited: dict[str, Any] = {"tenant": context.tenant_id, "record": None}
        status = 500
        reason: str | None = "internal_error"
        try:
            response = _admit(app, next_middleware, event, context, audited)
            status, reason = response.status_code, None
            return response
        except DomainError as exc:
            status, reason = exc.status, exc.code
            raise
        except Exception as exc:
            refusal = request_refusal(exc)  # the body the handler could not take: its 4xx
            if refusal is not None:
                status, reason = refusal.status, refusal.code
            elif is_transient(exc):  # answered 503 by the resolver (tenant_security.http)
                status, reason = 503, "service_unavailable"
            raise
        finally:
            if activity is not None:
                _record(
                    event,
                    context,
                    audited,
                    status,
                    reason,
                    app.context.get(AUDIT_TARGET),
                    bool(app.context.get(REPLAYED)),
                    app.context.get(AUDIT_CHANGES),
                    app.context.get(AUDIT_DETAILS),
                )

    def _record(
        event: Mapping[str, Any],
        context: TenantContext,
        audited: dict[str, Any],
        status: int,
        reason: str | None,
        target: Mapping[str, str] | None,
        replay: bool = False,
        changes: list[dict[str, Any]] | None = None,
        extra: Mapping[str, int | str] | None = None,
    ) -> None:
        """Put the request's `User Activity`; a held write's record leaves the outbox once put.

        Never raises: the request's own answer stands (a write that happened is not a 5xx for
        want of its record). What could not be put stays in the outbox, finished.
        """
        assert activity is not None
        record: TenantProfile | None = audited["record"]
        held: Held | None = audited.get("held")
        put = False
        try:
            done = activity_of(
                event, context, audited["tenant"], status, reason, target, replay, changes, extra
            )
            if held is not None:
                done = replace(done, event_id=held.event_id)
            put = activity().activity(done, record.policies if record is not None else None)
            if held is None or outbox is None:
                return
            if put:
                outbox().release(held)
            else:
                outbox().settle(held, _finished(held, done))
        except Exception as exc:  # the item stays: the audit writer drains it (same event id)
            logger.warning("activity not recorded", extra={"error_type": type(exc).__name__, "put": put})

    def _finished(held: Held, done: Activity) -> dict[str, Any]:
        """The held record, finished: sealed anew, or (sealing failing too) the held one with how
        the request ended -- its outcome without the handler's extra target, which is not sealed."""
        assert activity is not None
        try:
            return activity().wire(done.detail())
        except Exception as exc:
            logger.warning("finished record not sealed", extra={"error_type": type(exc).__name__})
            finished = {k: v for k, v in held.detail.items() if k != "reason"}
            finished.update(status=done.status, outcome=done.outcome)
            if done.reason is not None:
                finished["reason"] = done.reason
            return finished

    def _alert(event: Mapping[str, Any], context: TenantContext, refused: AlertKind) -> None:
        """The refusal as a `Security Alert` too, as the authorizer raises its own (never raises)."""
        assert activity is not None
        try:
            activity().security_alert(
                context.tenant_id,
                refused,
                source_ip=context.source_ip,
                method=event.get("httpMethod"),
                resource=event.get("resource"),
                user=context.user,
            )
        except Exception as exc:
            logger.warning("alert not put", extra={"error_type": type(exc).__name__})

    def _hold(event: Mapping[str, Any], context: TenantContext, audited: dict[str, Any]) -> None:
        """Before a write runs: its record in the outbox, or a 503 and nothing done."""
        if outbox is None or activity is None or str(event.get("httpMethod")) not in WRITE_METHODS:
            return
        draft = activity_of(event, context, audited["tenant"], 0, None, None)
        try:
            audited["held"] = outbox().hold(activity().wire(draft.detail()))
        except Exception as exc:
            logger.warning("outbox unavailable", extra={"error_type": type(exc).__name__})
            raise ServiceUnavailable("the request cannot be recorded now; nothing was done") from exc

    def _admit(
        app: APIGatewayRestResolver,
        next_middleware: NextMiddleware,
        event: Mapping[str, Any],
        context: TenantContext,
        audited: dict[str, Any],
    ) -> Response[Any]:
        # The route that runs must be the one the authorizer judged: Powertools dispatches on the
        # decoded path, the checks read ``resource`` (a `%2F` inside a parameter, behind a front
        # door that matches the encoded path, would otherwise run a neighbouring route).
        matched = app.context.get("_route")
        resource = str(event.get("resource"))
        if matched is not None and _shape(str(getattr(matched, "path", resource))) != _shape(resource):
            raise NotFound("no such route")
        session, client = None, None
        if context.machine:
            # an API client's token: the client as stored now (deleted, expired, or no longer
            # holding a role the token names: refused from this request on)
            client = client_of(context.tenant_id, str(context.client_id)) if client_of else None
            if client is None or not client.live(clock()) or not set(context.roles) <= set(client.roles):
                raise Unauthorized("client ended")
        else:
            session = session_of(context.tenant_id, context.session_id) if context.session_id else None
            if session is None or not session.live(clock()):
                raise Unauthorized("session ended")
        # The tenant whose data is touched: the path's (checked against the id rule first), else
        # the caller's.
        path_tenant = (event.get("pathParameters") or {}).get("tenant_id")
        target = (
            require_tenant_id(path_tenant, "path.tenant_id") if path_tenant is not None else context.tenant_id
        )
        context.require_tenant(target)
        writes = str(event.get("httpMethod")) in WRITE_METHODS
        record = tenants(target, WRITE_STATUS_MAX_AGE if writes else READ_STATUS_MAX_AGE)
        if record is None:
            raise NotFound(f"no tenant {target!r}")
        audited.update(tenant=target, record=record)
        own = record if target == context.tenant_id else tenants(context.tenant_id, READ_STATUS_MAX_AGE)
        if own is None or (
            session is not None and not session_within_timeout(session, own.policies, clock())
        ):
            raise Unauthorized("session ended")
        if session is not None:
            context = replace(context, session_started_at=float(session.created_at))
        refused = policy_refusal(own.policies, context)
        if refused is None and client is not None and not client.allows(context.source_ip):
            refused = AlertKind.SOURCE_IP_NOT_ALLOWED  # the client's own, narrower allow-list
        if refused is not None:
            if activity is not None:
                _alert(event, context, refused)
            raise PolicyRefusal(f"refused by the tenant policy: {refused}", code=str(refused))
        # The authorizer's policy matches by wildcard; the route that runs is checked exactly.
        rule = rule_for(str(event.get("httpMethod")), str(event.get("resource")))
        if rule is not None and not may_use(rule, context.permissions(record), machine=context.machine):
            raise Forbidden(f"not allowed: {', '.join(rule.actions)}")
        if aws_faults is not None:
            with aws_faults(target):
                return _govern(app, next_middleware, event, context, record, own, target, audited)
        return _govern(app, next_middleware, event, context, record, own, target, audited)

    def _govern(
        app: APIGatewayRestResolver,
        next_middleware: NextMiddleware,
        event: Mapping[str, Any],
        context: TenantContext,
        record: TenantProfile,
        own: TenantProfile,
        target: str,
        audited: dict[str, Any],
    ) -> Response[Any]:
        """The tenant's status, data region and quotas (the caller tenant's: ``own``); then the
        handler."""
        if not record.active:
            if not context.platform_admin:
                raise Forbidden("the tenant is not active")
            rule = rule_for(str(event.get("httpMethod")), str(event.get("resource")))
            if rule is None or rule.action not in ALLOWED_WHEN_NOT_ACTIVE.get(record.status, ()):
                # (what is gone -- keys, buckets, users -- is not asked for: a 409, never a 500)
                raise TenantNotActive(
                    f"the tenant is {record.status}: {rule.action if rule else 'this'} is not possible"
                )
        check_data_region(event.get("headers"), record)
        app.context.update({CALLER: context, TENANT: record})

        def handler() -> Response[Any]:
            _hold(event, context, audited)  # a write that was admitted: its record first
            return next_middleware(app)

        if quotas is None:
            return handler()
        caller = own
        rule = rule_for(str(event.get("httpMethod")), str(event.get("resource")))
        response: Response[Any]
        lambda_context = app.lambda_context
        # the deadline stays inside the function's own Timeout (tenant_security.quotas)
        time_left = (
            lambda_context.get_remaining_time_in_millis() / 1000
            if hasattr(lambda_context, "get_remaining_time_in_millis")
            else None
        )
        cost = (rule.cost if rule else DEFAULT_COST).nanodollars  # authz/route_costs.py, in USD
        response, headers = quotas().run(caller, record, cost, event, handler, time_left=time_left)
        response.headers.update(headers)
        return response

    return middleware
