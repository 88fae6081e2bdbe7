"""The vocabulary of the sign-in flow (:mod:`tenant_security.identity.signin`): its steps, the
refusal of an address the tenant's allow-list does not admit, and the tenants table it reads."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from tenant_security.alerts import AlertKind
from tenant_security.errors import Unauthorized
from tenant_security.tenants import TenantLookup

INVALID_CREDENTIALS = "invalid credentials"


class SignInStep(StrEnum):
    """What a correct password leads to: the next step of the sign-in (the reply's ``status``)."""

    MFA_REQUIRED = "MFA_REQUIRED"  # a TOTP or backup code answers the challenge
    MFA_ENROLLMENT_REQUIRED = "MFA_ENROLLMENT_REQUIRED"  # the user enrols a TOTP device first


class TenantOfRecord(TenantLookup, Protocol):
    """The tenants table itself (not a cache): the status now, and a check that it still holds."""

    def still_active(self, tenant_id: str) -> dict[str, Any]: ...


class AddressRefused(Unauthorized):
    """The tenant's allow-list refuses the caller's address. Answered exactly as bad credentials
    (401, the same body), so a stranger cannot tell which tenants exist; the refusal is still
    recorded with its reason (``audit_reason``) for the tenant's trail."""

    audit_reason = AlertKind.SOURCE_IP_NOT_ALLOWED

    def __init__(self) -> None:
        super().__init__(INVALID_CREDENTIALS)
