"""Evidence for compliance report tests: users, a tenant policy, platform state and audit records
shaped as the trail holds them."""

from __future__ import annotations

from typing import Any

from tenant_security.compliance.evidence import Evidence
from tenant_security.identity.users import User
from tenant_security.models import parse_security_policies
from tenant_security.tenants import TenantProfile

TENANT = "acme"
PERIOD = "2026-Q4"
VALID = {
    "status": "VALID",
    "checked": 3,
    "from": 1,
    "to": 3,
    "head_sequence": 3,
    "checkpoints_checked": 0,
    "problems": [],
}


def user(name: str, roles: list[str], mfa: bool = True) -> User:
    """An active user of the tenant."""
    return User(
        tenant_id=TENANT,
        username=name,
        email=f"{name}@x.example",
        roles=roles,
        password_hash="h",
        mfa_enrolled=mfa,
    )


def tenant(**policy: Any) -> TenantProfile:
    """The tenant with an IP allow-list and the policy sections given (``compliance={...}``)."""
    document: dict[str, Any] = {"access_control": {"ip_whitelist": ["10.0.0.0/8"]}}
    for section, values in policy.items():
        document.setdefault(section, {}).update(values)
    return TenantProfile(
        tenant_id=TENANT,
        name="Acme",
        status="ACTIVE",
        isolation="database",
        policies=parse_security_policies(document),
    )


def platform(rotation: bool = True, replicas: tuple[str, ...] = ("us-west-2",)) -> dict[str, Any]:
    """Keys and buckets as :meth:`TenantControls.collect` reports them, every control in place."""
    key = {
        "arn": "arn:aws:kms:us-east-1:1:key/mrk-1",
        "state": "Enabled",
        "rotation_enabled": rotation,
        "multi_region": True,
        "replica_regions": list(replicas),
    }
    return {
        "region": "us-east-1",
        "keys": {"data": key, "secrets": {**key, "arn": "k2"}, "api-keys": {**key, "arn": "k3"}},
        "data_bucket": "d",
        "data_bucket_encryption": {"algorithm": "aws:kms", "key": key["arn"]},
        "audit_bucket": "a",
        "audit_lock": {"mode": "COMPLIANCE", "days": 2555},
    }


def record(
    sequence: int,
    action: str,
    outcome: str = "success",
    user: str | None = "ada",
    actor_tenant: str | None = TENANT,
    **fields: Any,
) -> dict[str, Any]:
    """An audit record of the tenant's trail as the reader returns it."""
    return {
        "tenant_id": TENANT,
        "sequence": sequence,
        "action": action,
        "outcome": outcome,
        "actor": {"tenant_id": actor_tenant, "user": user},
        "recorded_at": "2026-11-02T10:00:00+00:00",
        **fields,
    }


def records(n: int = 3) -> list[dict[str, Any]]:
    """A user created by ada, then failed sign-ins of ada: nothing an auditor must look at."""
    return [record(1, "users:Create")] + [record(i, "auth:Login", "failure") for i in range(2, n + 1)]


def evidence(
    trail: list[dict[str, Any]] | None = None,
    users: list[User] | None = None,
    integrity: dict[str, Any] | None = None,
    tenant_record: TenantProfile | None = None,
    platform_state: dict[str, Any] | None = None,
) -> Evidence:
    """Evidence on which every check passes, but for what is given."""
    return Evidence(
        TENANT,
        PERIOD,
        [user("ada", ["tenant-admin"])] if users is None else users,
        records() if trail is None else trail,
        False,
        VALID if integrity is None else integrity,
        tenant() if tenant_record is None else tenant_record,
        platform() if platform_state is None else platform_state,
    )
