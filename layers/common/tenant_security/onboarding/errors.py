"""The errors of the onboarding and offboarding workflows that their state machines tell apart."""

from __future__ import annotations

from tenant_security.errors import Conflict, ServiceUnavailable


class TransientError(ServiceUnavailable):
    """A failure worth retrying (the state machines retry it with back-off)."""

    code = "transient_error"


class OffboardingNotRequested(Conflict):
    """An offboarding event for a tenant the API has not set to OFFBOARDING: refused."""

    code = "offboarding_not_requested"
