"""The steps of onboarding and offboarding a tenant, one method per Step Functions task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tenant_security.config import Settings
from tenant_security.database import TenantDatabases
from tenant_security.identity.clients import ApiClientStore
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.users import UserStore
from tenant_security.models.onboarding import OnboardingRequest
from tenant_security.observability import logger
from tenant_security.onboarding.buckets import TenantBuckets
from tenant_security.onboarding.credentials import OnboardingSecrets, create_first_admin
from tenant_security.onboarding.errors import OffboardingNotRequested
from tenant_security.onboarding.keys import TenantKeys
from tenant_security.onboarding.teardown import Teardown
from tenant_security.onboarding.tenant_database import TenantDatabase
from tenant_security.onboarding.validation import validate_request
from tenant_security.tenants import RETIRED, NotOwner, TenantProfile, TenantStatus, TenantStore

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient


class TenantProvisioner:
    """The steps of onboarding and offboarding a tenant."""

    def __init__(
        self,
        settings: Settings,
        kms: KMSClient,
        s3: S3Client,
        secrets: SecretsManagerClient,
        tenants: TenantStore,
        users: UserStore,
        sessions: SessionStore,
        databases: Callable[[], TenantDatabases | None],
        kms_in: Callable[[str], KMSClient] | None = None,
        execution_running: Callable[[str], bool] = lambda _arn: True,
        clients: ApiClientStore | None = None,
    ) -> None:
        """``kms``, ``s3``, ``secrets``: the AWS clients; ``kms_in(region)``: KMS of another
        region (shredding a multi-Region key shreds its replicas there too);
        ``execution_running(arn)``: whether an onboarding execution is still at work (a
        registration held by an ended one may be taken over; when unsure, say True)."""
        self.settings = settings
        self.tenants = tenants
        self.users = users
        self.execution_running = execution_running
        self.keys = TenantKeys(settings, kms, kms_in)
        self.buckets = TenantBuckets(settings, s3)
        self.secrets = OnboardingSecrets(settings, secrets)
        self.database = TenantDatabase(databases, self.secrets)
        self.teardown = Teardown(
            settings, sessions, users, self.secrets, self.database, self.buckets, self.keys, clients
        )

    # ------------------------------------------------------------------ 1. validate
    def validate(self, data: Any) -> OnboardingRequest:
        """The request, checked (400 with fields when it is not valid)."""
        return validate_request(self.settings, data)

    @staticmethod
    def validate_with(settings: Settings, data: Any, *, check_database: bool = True) -> OnboardingRequest:
        """:meth:`validate` for callers that have only the settings (the API, the CLI); see
        :func:`~tenant_security.onboarding.validation.validate_request`."""
        return validate_request(settings, data, check_database=check_database)

    # ------------------------------------------------------------------ 2. register
    def register(self, request: OnboardingRequest, execution: str) -> dict[str, Any]:
        """Claim the tenant id for ``execution``: ``{status, proceed}``.

        ``proceed`` is true only when this execution owns the provisioning; otherwise the request
        is a no-op (the tenant is onboarded already, or another execution is at work).
        """
        record = TenantProfile(
            tenant_id=request.tenant_id,
            name=request.name,
            status=TenantStatus.PROVISIONING,
            isolation=request.database_isolation,
            policies=request.security_policies,
            quotas=request.resource_quotas,
            request_hash=request.fingerprint(),
            owner_execution=execution,
        )
        stored, mine = self.tenants.register(record, self.execution_running)
        return {"status": str(stored.status), "proceed": mine}

    def _own(self, tenant_id: str, execution: str) -> TenantProfile:
        """The tenant, if ``execution`` provisions it; :class:`NotOwner` (no change) otherwise."""
        return self.tenants.owned(tenant_id, execution)

    # ------------------------------------------------------------------ 3.-6. resources
    def create_keys(self, request: OnboardingRequest, execution: str) -> dict[str, str]:
        """The tenant's data, secrets and api-keys keys (ARNs by purpose)."""
        self._own(request.tenant_id, execution)
        return self.keys.create(request)

    def create_buckets(
        self, request: OnboardingRequest, keys: dict[str, str], execution: str
    ) -> dict[str, str]:
        """The tenant's data bucket and its object-locked audit bucket."""
        self._own(request.tenant_id, execution)
        return self.buckets.create(request, keys)

    def create_database(self, request: OnboardingRequest, execution: str) -> dict[str, str]:
        """The tenant's database or schema and role, credentials in Secrets Manager (nothing for
        a request without isolation)."""
        self._own(request.tenant_id, execution)
        return self.database.create(request)

    def create_admin(self, request: OnboardingRequest, execution: str) -> dict[str, str]:
        """The tenant's first tenant-admin, with a one-time password kept for the operator."""
        self._own(request.tenant_id, execution)
        return create_first_admin(request, self.users, self.secrets)

    # ------------------------------------------------------------------ 7. activate
    def activate(self, request: OnboardingRequest, execution: str) -> dict[str, str]:
        """Store the tenant's configuration, status ACTIVE: the last step."""
        record = self.tenants.get(request.tenant_id)
        if (
            record is not None
            and record.status == TenantStatus.ACTIVE
            and record.owner_execution == execution
            and record.request_hash == request.fingerprint()
        ):
            return {"status": TenantStatus.ACTIVE}  # this execution's retry of the step
        record = self._own(request.tenant_id, execution)
        active = replace(
            record,
            status=TenantStatus.ACTIVE,
            policies=request.security_policies,
            quotas=request.resource_quotas,
            name=request.name,
            isolation=request.database_isolation,
            failure_reason="",
            updated_at=datetime.now(UTC).isoformat(),
        )
        self.tenants.replace(active, expected_status=TenantStatus.PROVISIONING)
        return {"status": TenantStatus.ACTIVE}

    def seconds_since_registered(self, tenant_id: str) -> float | None:
        """How long ago the tenant was registered (its onboarding's duration so far), if it is."""
        record = self.tenants.get(tenant_id)
        try:
            started = datetime.fromisoformat(record.created_at) if record else None
        except ValueError:
            return None
        return max(0.0, (datetime.now(UTC) - started).total_seconds()) if started else None

    # ------------------------------------------------------------------ undo
    def compensate(self, tenant_id: str, execution: str, reason: str) -> dict[str, Any]:
        """Undo every step of this execution's failed onboarding; status FAILED with ``reason``.

        Only the execution that owns a PROVISIONING tenant compensates: for any other (a
        repeated request that failed because the tenant is onboarded, or another execution's
        tenant) nothing is touched and ``compensated`` is false.
        """
        try:
            self._own(tenant_id, execution)
        except NotOwner:
            logger.info("nothing to compensate: not this execution's tenant", extra={"tenant_id": tenant_id})
            return {"tenant_id": tenant_id, "compensated": False}
        removed = self.teardown.remove(tenant_id, keep_audit_trail=False)
        self.tenants.fail_provisioning(tenant_id, execution, reason)
        logger.warning("onboarding rolled back", extra={"tenant_id": tenant_id, "reason": reason[:500]})
        return {
            "tenant_id": tenant_id,
            "compensated": True,
            "users": removed.users,
            "buckets": removed.buckets,
            "keys": removed.keys,
        }

    # ------------------------------------------------------------------ offboarding
    def begin_offboarding(self, tenant_id: str) -> dict[str, str]:
        """Check the decision: the API set the tenant OFFBOARDING (409 for any other status).

        The event that starts offboarding carries only a tenant id; whoever can put events must
        not be able to offboard a tenant the platform-admin's DELETE did not mark.
        """
        record = self.tenants.get(tenant_id)
        if record is None or record.status not in RETIRED:
            status = record.status if record is not None else "absent"
            raise OffboardingNotRequested(
                f"tenant {tenant_id!r} is {status}: offboarding starts with DELETE /tenants/{{t}}"
            )
        return {"status": str(record.status), "requested_by": record.offboarding_requested_by}

    def offboard(self, tenant_id: str) -> dict[str, Any]:
        """Revoke sessions, drop the database, delete the data bucket, shred the keys; keep the trail."""
        self.begin_offboarding(tenant_id)  # checked again: this step can be invoked on its own
        removed = self.teardown.remove(tenant_id, keep_audit_trail=True)
        self.tenants.set_status(tenant_id, TenantStatus.OFFBOARDED, allowed_from=RETIRED)
        return {
            "tenant_id": tenant_id,
            "sessions_revoked": removed.sessions,
            "users_deleted": removed.users,
            "secrets_deleted": removed.secrets,
            "api_clients_deleted": removed.clients,
            "data_bucket_deleted": self.settings.data_bucket(tenant_id) in removed.buckets,
            "keys_pending_deletion": removed.keys,
        }
