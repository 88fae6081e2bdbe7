"""Tenant profiles (status, policy, quotas, custom roles) in the tenants table.

What a request reads goes through the cache of :mod:`tenant_security.tenant_directory`; this
module is the table itself, read consistently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from tenant_security.dynamo import from_item, is_conditional_failure, to_item
from tenant_security.errors import Conflict, NotFound

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from tenant_security.models import ResourceQuotas, SecurityPolicies


class TenantStatus(StrEnum):
    """Where a tenant is in its life (GET /tenants/{t} shows it)."""

    PROVISIONING = "PROVISIONING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    SUSPENDED = "SUSPENDED"
    OFFBOARDING = "OFFBOARDING"
    OFFBOARDED = "OFFBOARDED"


RETIRED = (TenantStatus.OFFBOARDING, TenantStatus.OFFBOARDED)  # ids that are never onboarded again
STATUSES = tuple(TenantStatus)


class TenantLookup(Protocol):
    """Where a component finds tenant profiles (the store, or the cached directory)."""

    def get(self, tenant_id: str) -> TenantProfile | None: ...


class NotOwner(Conflict):
    """This onboarding execution does not own the tenant's provisioning: it must change nothing.

    Another execution registered the tenant (a repeated or duplicated request), or the tenant is
    already past provisioning. Step Functions ends such an execution without compensation.
    """

    code = "not_owner"


def _default_policies() -> SecurityPolicies:
    # The pydantic models load on first use, not at import (the authorizer's cold start).
    from tenant_security.models import SecurityPolicies

    return SecurityPolicies()


def _default_quotas() -> ResourceQuotas:
    from tenant_security.models import ResourceQuotas

    return ResourceQuotas()


@dataclass(frozen=True)
class TenantProfile:
    """A tenant's configuration, one item of the tenants table: its status, security policy,
    resource quotas and custom roles, and who provisions it. (Its data rows are
    :class:`tenant_security.records.TenantRecords`.)"""

    tenant_id: str
    name: str
    status: TenantStatus
    isolation: str = "schema"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    policies: SecurityPolicies = field(default_factory=_default_policies)
    quotas: ResourceQuotas = field(default_factory=_default_quotas)
    # Tenant-defined roles: name → permission patterns (tenant-scoped actions only).
    custom_roles: dict[str, list[str]] = field(default_factory=dict)
    request_hash: str = ""
    failure_reason: str = ""
    updated_at: str = ""
    # The Step Functions execution that provisions (or provisioned) the tenant: only it may create
    # or undo the tenant's resources (a repeated request must never touch a live tenant).
    owner_execution: str = ""
    # Who asked for offboarding (``tenant/user``), set with status OFFBOARDING by the API.
    offboarding_requested_by: str = ""
    # The security policy's revision (its ETag): every stored change adds one, conditionally.
    policy_revision: int = 0
    # The AWS side of the policy (rotation, replicas, retention): {status, revision, detail} or None
    rollout: dict[str, Any] | None = None
    roles_revision: int = 0  # every change and grant of a custom role adds one (authz/role_store.py)

    @property
    def active(self) -> bool:
        return self.status == TenantStatus.ACTIVE

    def to_item(self) -> dict[str, Any]:
        return to_item(
            {
                "tenant_id": self.tenant_id,
                "name": self.name,
                "status": self.status,
                "isolation": self.isolation,
                "created_at": self.created_at,
                "security_policies": self.policies.model_dump_json(),
                "resource_quotas": self.quotas.model_dump_json(),
                "custom_roles": json.dumps(self.custom_roles),
                "request_hash": self.request_hash or None,
                "failure_reason": self.failure_reason or None,
                "updated_at": self.updated_at or datetime.now(UTC).isoformat(),
                "owner_execution": self.owner_execution or None,
                "offboarding_requested_by": self.offboarding_requested_by or None,
                "policy_revision": self.policy_revision,
                "rollout": json.dumps(self.rollout) if self.rollout is not None else None,
                "roles_revision": self.roles_revision or None,
            }
        )

    def public(self) -> dict[str, Any]:
        """What GET /tenants/{t} shows."""
        out: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "name": self.name,
            "status": self.status,
            "isolation": self.isolation,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.status == TenantStatus.FAILED:
            out["failure_reason"] = self.failure_reason
        return out

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> TenantProfile:
        from tenant_security.models import ResourceQuotas, SecurityPolicies

        values = from_item(item)
        return cls(
            tenant_id=values["tenant_id"],
            name=values.get("name", values["tenant_id"]),
            status=TenantStatus(values["status"]),
            isolation=values.get("isolation", "schema"),
            created_at=values.get("created_at", ""),
            policies=SecurityPolicies.model_validate_json(values.get("security_policies", "{}")),
            quotas=ResourceQuotas.model_validate_json(values.get("resource_quotas", "{}")),
            custom_roles=json.loads(values.get("custom_roles", "{}")),
            request_hash=values.get("request_hash", ""),
            failure_reason=values.get("failure_reason", ""),
            updated_at=values.get("updated_at", ""),
            owner_execution=values.get("owner_execution", ""),
            offboarding_requested_by=values.get("offboarding_requested_by", ""),
            policy_revision=int(values.get("policy_revision", 0)),
            rollout=json.loads(values["rollout"]) if values.get("rollout") else None,
            roles_revision=int(values.get("roles_revision", 0)),
        )


class TenantStore:
    """The tenants table."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, tenant_id: str) -> TenantProfile | None:
        reply = self.client.get_item(
            TableName=self.table, Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True
        )
        item = reply.get("Item")
        return TenantProfile.from_item(item) if item else None

    def still_active(self, tenant_id: str) -> dict[str, Any]:
        """A transaction item that holds only while the tenant's profile says ACTIVE (a session
        is created, say, only if no suspension landed since the tenant was read)."""
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": {"tenant_id": {"S": tenant_id}},
                "ConditionExpression": "#s = :active",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":active": {"S": TenantStatus.ACTIVE}},
            }
        }

    def all(self) -> list[TenantProfile]:
        """Every tenant (a scan: for the scheduled sweeps, never a request)."""
        paginator = self.client.get_paginator("scan")
        return [
            TenantProfile.from_item(item)
            for page in paginator.paginate(TableName=self.table, ConsistentRead=True)
            for item in page.get("Items", [])
        ]

    def create(self, profile: TenantProfile) -> None:
        """Register a new tenant; 409 if the id is taken."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=profile.to_item(),
                ConditionExpression="attribute_not_exists(tenant_id)",
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                raise Conflict(f"tenant {profile.tenant_id!r} exists") from exc
            raise

    def register(
        self, profile: TenantProfile, execution_running: Callable[[str], bool]
    ) -> tuple[TenantProfile, bool]:
        """Claim the id for ``profile`` (status PROVISIONING, owned by ``profile.owner_execution``).

        Returns the stored profile and whether this execution owns the provisioning now. A new id,
        or one whose earlier attempt FAILED, is claimed. The same request again (same
        fingerprint) claims nothing: the tenant is ACTIVE or SUSPENDED already, or another
        execution that is still running provisions it -- unless that execution ended without
        finishing (aborted, timed out, its compensation failed), which this one then takes over.
        Another request for the id, or an offboarded id, is a 409.
        """
        for _attempt in range(3):
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item=profile.to_item(),
                    ConditionExpression="attribute_not_exists(tenant_id) OR #s = :failed",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":failed": {"S": TenantStatus.FAILED}},
                )
            except Exception as exc:
                if not is_conditional_failure(exc):
                    raise
                existing = self.get(profile.tenant_id)
                if existing is None:
                    continue  # removed meanwhile: claim it again
                return self._registered(existing, profile, execution_running, exc)
            return profile, True
        raise Conflict(f"tenant {profile.tenant_id!r} keeps changing; try again")

    def _registered(
        self,
        existing: TenantProfile,
        profile: TenantProfile,
        execution_running: Callable[[str], bool],
        cause: Exception,
    ) -> tuple[TenantProfile, bool]:
        """What a claim that found ``existing`` amounts to (see :meth:`register`)."""
        if existing.status in RETIRED:
            raise Conflict(f"tenant {profile.tenant_id!r} was offboarded; its id is not reused") from cause
        if existing.request_hash != profile.request_hash:
            raise Conflict(f"tenant {profile.tenant_id!r} exists with another request") from cause
        if existing.status != TenantStatus.PROVISIONING:
            return existing, False  # onboarded already: nothing to do
        me = profile.owner_execution
        if existing.owner_execution == me:
            return existing, True  # this execution's own retry of the step
        if existing.owner_execution and execution_running(existing.owner_execution):
            return existing, False  # a duplicate delivery: the first execution is at work
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"tenant_id": {"S": profile.tenant_id}},
                UpdateExpression="SET owner_execution = :me, updated_at = :t",
                ConditionExpression="#s = :provisioning AND "
                "(attribute_not_exists(owner_execution) OR owner_execution = :old)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":me": {"S": me},
                    ":old": {"S": existing.owner_execution or "-"},
                    ":provisioning": {"S": TenantStatus.PROVISIONING},
                    ":t": {"S": datetime.now(UTC).isoformat()},
                },
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return existing, False  # another execution took it over first
            raise
        return replace(existing, owner_execution=me), True

    def owned(self, tenant_id: str, execution: str, status: str = TenantStatus.PROVISIONING) -> TenantProfile:
        """The tenant's profile if ``execution`` owns it in ``status``; :class:`NotOwner` otherwise."""
        profile = self.get(tenant_id)
        if (
            profile is None
            or not execution
            or profile.owner_execution != execution
            or profile.status != status
        ):
            raise NotOwner(f"this execution does not provision tenant {tenant_id!r}")
        return profile

    def replace(self, profile: TenantProfile, expected_status: str) -> None:
        """Write ``profile`` if the stored one still has ``expected_status``, the same request and
        the same owning execution."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=profile.to_item(),
                ConditionExpression="#s = :expected AND request_hash = :hash AND owner_execution = :owner",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":expected": {"S": expected_status},
                    ":hash": {"S": profile.request_hash},
                    ":owner": {"S": profile.owner_execution or "-"},
                },
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                raise NotOwner(f"tenant {profile.tenant_id!r} is no longer {expected_status} here") from exc
            raise

    def fail_provisioning(self, tenant_id: str, execution: str, reason: str) -> None:
        """PROVISIONING → FAILED with ``reason``, only for the execution that owns it."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"tenant_id": {"S": tenant_id}},
                UpdateExpression="SET #s = :failed, failure_reason = :r, updated_at = :t",
                ConditionExpression="#s = :provisioning AND owner_execution = :me",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": TenantStatus.FAILED},
                    ":provisioning": {"S": TenantStatus.PROVISIONING},
                    ":me": {"S": execution or "-"},
                    ":r": {"S": reason[:2000]},
                    ":t": {"S": datetime.now(UTC).isoformat()},
                },
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                raise NotOwner(f"this execution does not provision tenant {tenant_id!r}") from exc
            raise

    def set_quotas(self, tenant_id: str, quotas: ResourceQuotas) -> None:
        """Replace the tenant's quotas (in force within the config cache time)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"tenant_id": {"S": tenant_id}},
                UpdateExpression="SET resource_quotas = :q, updated_at = :t",
                ConditionExpression="attribute_exists(tenant_id)",
                ExpressionAttributeValues={
                    ":q": {"S": quotas.model_dump_json()},
                    ":t": {"S": datetime.now(UTC).isoformat()},
                },
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                raise NotFound(f"no tenant {tenant_id!r}") from exc
            raise

    def set_status(
        self,
        tenant_id: str,
        status: str,
        reason: str = "",
        allowed_from: tuple[str, ...] = (),
        requested_by: str = "",
    ) -> None:
        """Move to ``status`` (from one of ``allowed_from`` when given); 404/409 otherwise.

        ``requested_by`` (``tenant/user``) is kept with an OFFBOARDING status: the decision that
        lets the offboarding workflow run.
        """
        if status not in STATUSES:
            raise ValueError(status)
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":s": {"S": status},
            ":r": {"S": reason[:2000]},
            ":t": {"S": datetime.now(UTC).isoformat()},
        }
        update = "SET #s = :s, failure_reason = :r, updated_at = :t"
        if requested_by:
            values[":by"] = {"S": requested_by[:200]}
            update += ", offboarding_requested_by = :by"
        condition = "attribute_exists(tenant_id)"
        if allowed_from:
            keys = [f":from{i}" for i in range(len(allowed_from))]
            values.update({k: {"S": v} for k, v in zip(keys, allowed_from, strict=True)})
            condition += f" AND #s IN ({', '.join(keys)})"
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"tenant_id": {"S": tenant_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                if self.get(tenant_id) is None:
                    raise NotFound(f"no tenant {tenant_id!r}") from exc
                raise Conflict(f"tenant {tenant_id!r} cannot become {status} now") from exc
            raise
