"""The vocabulary of `Security Alert` events: one enum, used by every producer and every reader.

A producer puts ``{"alert": AlertKind.X, ...}``; the audit writer records it under the action
``security:<kind>`` (:func:`action_of`), which is what the compliance reports and the trail's
filters look for. Writing the kind once here keeps the two sides from drifting apart (a report
once counted ``security:lockout`` while the trail wrote ``security:user_locked_out``).
"""

from __future__ import annotations

from enum import StrEnum

SECURITY_ACTION_PREFIX = "security:"


class AlertKind(StrEnum):
    """Every kind of security alert the platform raises."""

    # the authorizer
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - a kind of alert
    SESSION_ENDED = "session_ended"
    # an API client's token whose client was deleted or expired (or whose roles it no longer holds)
    CLIENT_ENDED = "client_ended"
    # an API client's token while the tenant policy turns machine access off
    API_CLIENTS_NOT_ALLOWED = "api_clients_not_allowed"
    TENANT_NOT_ACTIVE = "tenant_not_active"
    PASSWORD_CHANGE_REQUIRED = "password_change_required"  # noqa: S105 - a kind of alert
    MFA_REQUIRED = "mfa_required"
    SOURCE_IP_NOT_ALLOWED = "source_ip_not_allowed"
    NO_PERMISSION = "no_permission"
    PERMISSION_DENIED = "permission_denied"
    CROSS_TENANT_ACCESS = "cross_tenant_access"
    # unauthenticated refusals of one source address in one minute, as one record with a count
    UNAUTHENTICATED_REFUSALS = "unauthenticated_refusals"
    # sign-in
    USER_LOCKED_OUT = "user_locked_out"
    TOTP_REPLAY = "totp_replay"
    # incident response
    TENANT_SUSPENDED = "tenant_suspended"
    TENANT_REINSTATED = "tenant_reinstated"
    SESSIONS_REVOKED = "sessions_revoked"
    # an event on the bus that claims to be the platform's but is not from its source
    FORGED_EVENT = "forged_event"
    # a stored policy whose AWS side (key rotation, replicas, retention) could not be applied
    POLICY_ROLLOUT_FAILED = "policy_rollout_failed"
    # a policy change made with force=true although it refused the caller's own next request
    POLICY_LOCKOUT_FORCED = "policy_lockout_forced"


# Alerts that mean someone may be attacking the tenant: a compliance report asks for their review.
REVIEW_REQUIRED = frozenset(
    {
        AlertKind.USER_LOCKED_OUT,
        AlertKind.TOTP_REPLAY,
        AlertKind.CROSS_TENANT_ACCESS,
        AlertKind.FORGED_EVENT,
        AlertKind.UNAUTHENTICATED_REFUSALS,
    }
)


def action_of(kind: str) -> str:
    """The audit action of an alert kind (``security:user_locked_out``)."""
    return f"{SECURITY_ACTION_PREFIX}{kind}"
