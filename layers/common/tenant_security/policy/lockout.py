"""The lock-out guard: would a policy change refuse the caller's own next request?

A security-admin who tightens the allow-list from an address outside it, requires MFA while
signed in without it, or shortens the session timeout below the age of their own session would
be refused from their next request on -- and could not undo the change. Such a change answers
409 ``would_lock_out`` naming each reason, unless the caller says ``force=true``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tenant_security.errors import Conflict
from tenant_security.identity.tokens import MFA_METHODS
from tenant_security.models.policies import SecurityPolicies


class LockoutReason(StrEnum):
    """What of the new policy would refuse the caller."""

    SOURCE_ADDRESS = "source_address_not_allowed"
    MFA = "mfa_required_without_mfa"
    SESSION_AGE = "session_older_than_timeout"
    BUDGET = "budget_already_spent"
    MACHINE_ACCESS = "api_clients_not_allowed"


# The field of the document each reason is about (the 409's ``fields``).
FIELD_OF = {
    LockoutReason.SOURCE_ADDRESS: "access_control.ip_whitelist",
    LockoutReason.MFA: "access_control.mfa_required",
    LockoutReason.SESSION_AGE: "access_control.session_timeout_minutes",
    LockoutReason.BUDGET: "rate_limiting.cost_threshold",
    LockoutReason.MACHINE_ACCESS: "access_control.api_clients_allowed",
}


@dataclass(frozen=True)
class CallerSession:
    """What the policy judges of the caller's next request."""

    source_ip: str | None
    amr: tuple[str, ...]
    session_started_at: float | None  # epoch seconds; None when the session is unknown
    now: float
    # US dollars the caller's tenant spent this month (None: not asked, the threshold unchanged)
    month_spend: float | None = None
    # an API client calling: no MFA or session of its own, but machine access must stay on
    machine: bool = False


class WouldLockOut(Conflict):
    """The change would refuse the caller's own next request (409 unless ``force=true``)."""

    code = "would_lock_out"


def lockout_reasons(policies: SecurityPolicies, caller: CallerSession) -> list[LockoutReason]:
    """Each rule of ``policies`` that would refuse ``caller``'s next request."""
    access = policies.access_control
    reasons = []
    if not access.allows(caller.source_ip):
        reasons.append(LockoutReason.SOURCE_ADDRESS)
    if caller.machine and not access.api_clients_allowed:
        reasons.append(LockoutReason.MACHINE_ACCESS)
    if not caller.machine and access.mfa_required and not MFA_METHODS & set(caller.amr):
        reasons.append(LockoutReason.MFA)
    if caller.session_started_at is not None and (
        caller.now - caller.session_started_at >= access.session_timeout_minutes * 60
    ):
        reasons.append(LockoutReason.SESSION_AGE)
    # a month's budget already spent refuses every request (429), the one that would undo it too
    if caller.month_spend is not None and policies.rate_limiting.cost_threshold <= caller.month_spend:
        reasons.append(LockoutReason.BUDGET)
    return reasons


def guard(policies: SecurityPolicies, caller: CallerSession | None, force: bool) -> list[LockoutReason]:
    """:class:`WouldLockOut` when ``policies`` would refuse ``caller`` and the change is not
    forced (``caller`` None: the caller is governed by another tenant's policy); the reasons a
    forced change overrode."""
    if caller is None:
        return []
    reasons = lockout_reasons(policies, caller)
    if reasons and not force:
        raise WouldLockOut(
            "the change would refuse your own next request ("
            + ", ".join(reasons)
            + "); send force=true to make it anyway",
            fields=[{"field": FIELD_OF[r], "message": r.value, "type": r.value} for r in reasons],
        )
    return reasons
