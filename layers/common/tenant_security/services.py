"""Builds the domain services from the settings and the shared AWS clients.

Handlers call these; each service is made once per execution environment, and imports what it
needs only when first built (so the authorizer's cold start loads no sign-in, MFA or pydantic
code it never uses). Domain code itself never calls this module: it receives its stores.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from tenant_security import aws

if TYPE_CHECKING:
    from tenant_security.activity import EventPublisher
    from tenant_security.audit.checkpoints import Checkpoints
    from tenant_security.audit.cipher import RecordCipher
    from tenant_security.audit.pii import PiiProtector, SubjectKeys
    from tenant_security.audit.reader import AuditReader
    from tenant_security.audit.store import ChainHeads, LockedObjects
    from tenant_security.audit.verify import ChainVerifier
    from tenant_security.audit.writer import AuditWriter
    from tenant_security.authz.decision import RequestAuthorizer
    from tenant_security.compliance import TenantControls
    from tenant_security.config import Settings
    from tenant_security.database import TenantDatabases
    from tenant_security.event_pii import PiiSealer
    from tenant_security.faults import FaultInjector
    from tenant_security.gdpr import SubjectRights
    from tenant_security.identity.admin import UserAdmin
    from tenant_security.identity.mfa import MfaService
    from tenant_security.identity.sessions import SessionStore
    from tenant_security.identity.signin import SignInService
    from tenant_security.identity.throttle import SignInThrottle
    from tenant_security.identity.tokens import PublicKeys, TokenIssuer, TokenVerifier
    from tenant_security.identity.users import UserStore
    from tenant_security.incidents import IncidentResponse
    from tenant_security.onboarding import TenantProvisioner
    from tenant_security.outbox import Outbox
    from tenant_security.quotas import Leases, QuotaGuard, RateLimiter, StorageQuota
    from tenant_security.records import TenantRecords
    from tenant_security.refusals import RefusalCounter
    from tenant_security.storage import TenantFiles
    from tenant_security.tenant_secrets import TenantSecrets
    from tenant_security.tenants import TenantDirectory, TenantStore


class KmsSecretCipher:
    """MFA secrets under the tenant secrets key (the platform master key for the platform tenant),
    with tenant, user and purpose in the encryption context."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _context(self, tenant_id: str, username: str) -> dict[str, str]:
        from tenant_security import crypto

        return crypto.encryption_context(tenant_id, crypto.PURPOSE_MFA_SECRET, username=username)

    def encrypt(self, tenant_id: str, username: str, secret: bytes) -> bytes:
        from tenant_security import crypto

        return crypto.encrypt(
            secret, self.settings.secrets_key_arn(tenant_id), self._context(tenant_id, username)
        )

    def decrypt(self, tenant_id: str, username: str, ciphertext: bytes) -> bytes:
        from tenant_security import crypto

        return crypto.decrypt(
            ciphertext, self._context(tenant_id, username), self.settings.account_id, self.settings.partition
        )


@cache
def settings() -> Settings:
    from tenant_security.config import get_settings

    return get_settings()


@cache
def users() -> UserStore:
    from tenant_security.identity.users import UserStore

    return UserStore(aws.dynamodb(), settings().users_table)


@cache
def tenant_store() -> TenantStore:
    from tenant_security.tenants import TenantStore

    return TenantStore(aws.dynamodb(), settings().tenants_table)


@cache
def tenants() -> TenantDirectory:
    from tenant_security.tenants import TenantDirectory

    return TenantDirectory(tenant_store())


@cache
def sessions() -> SessionStore:
    from tenant_security.identity.sessions import SessionStore

    return SessionStore(aws.dynamodb(), settings().sessions_table, settings().counters_table)


@cache
def publisher() -> EventPublisher:
    from tenant_security.activity import EventPublisher

    return EventPublisher(
        aws.events(), settings().event_bus_name, settings().event_source, sealer=pii_sealer()
    )


@cache
def pii_sealer() -> PiiSealer:
    from tenant_security.event_pii import PiiSealer

    config = settings()
    return PiiSealer(config.audit_key_arn, config.account_id, config.partition, config.platform_tenant_id)


@cache
def public_keys() -> PublicKeys:
    from tenant_security.identity.tokens import PublicKeys

    return PublicKeys(aws.kms(), settings().signing_key_ids)


@cache
def verifier() -> TokenVerifier:
    from tenant_security.identity.tokens import TokenVerifier

    return TokenVerifier(public_keys(), settings().token_issuer, settings().token_audience)


@cache
def issuer() -> TokenIssuer:
    from tenant_security.identity.tokens import KmsSigner, TokenIssuer

    return TokenIssuer(
        KmsSigner(aws.kms(), settings().signing_key_ids[0]),
        settings().token_issuer,
        settings().token_audience,
    )


@cache
def mfa() -> MfaService:
    from tenant_security.identity.mfa import MfaService

    return MfaService(
        users(), KmsSecretCipher(settings()), publisher(), lockout_seconds=settings().lockout_seconds
    )


def forget_initial_password(tenant_id: str, username: str) -> None:
    """At a first sign-in, delete the operator's copy of that user's one-time password (if any)."""
    name = settings().tenant_secret_name(tenant_id, "admin-initial-password")
    client = aws.secretsmanager()
    try:
        tags = {t["Key"]: t["Value"] for t in client.describe_secret(SecretId=name).get("Tags", [])}
    except client.exceptions.ResourceNotFoundException:
        return
    if tags.get("Username") == username:
        client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


@cache
def signin() -> SignInService:
    from tenant_security.identity.signin import SignInService

    return SignInService(
        users(),
        tenants(),
        sessions(),
        mfa(),
        issuer(),
        verifier(),
        on_first_sign_in=forget_initial_password,
        publisher=publisher(),
        platform_tenant=settings().platform_tenant_id,
        throttle=sign_in_throttle(),
        tenant_of_record=tenant_store(),
        refusals=refusals(),
        failure_floor=settings().sign_in_failure_floor_ms / 1000,
    )


@cache
def refusals() -> RefusalCounter:
    from tenant_security.refusals import RefusalCounter

    return RefusalCounter(aws.dynamodb(), settings().counters_table)


@cache
def sign_in_throttle() -> SignInThrottle:
    from tenant_security.identity.throttle import SignInThrottle

    config = settings()
    return SignInThrottle(
        aws.dynamodb(),
        config.counters_table,
        per_address=config.sign_in_attempts_per_address,
        per_account=config.sign_in_attempts_per_account,
    )


@cache
def user_admin() -> UserAdmin:
    from tenant_security.identity.admin import UserAdmin

    return UserAdmin(users(), sessions(), settings().platform_tenant_id)


@cache
def incidents() -> IncidentResponse:
    from tenant_security.incidents import IncidentResponse

    return IncidentResponse(tenant_store(), tenants(), sessions(), publisher(), settings().platform_tenant_id)


@cache
def request_authorizer() -> RequestAuthorizer:
    from tenant_security.authz.decision import RequestAuthorizer

    return RequestAuthorizer(
        verifier(), tenants(), sessions(), publisher(), settings().platform_tenant_id, refusals=refusals()
    )


@cache
def tenant_databases() -> TenantDatabases | None:
    """The master's access to tenant databases; None where the deployment has no platform
    database (DatabaseSecretArn empty). The login is kept per execution environment and read
    again from the secret when a connection is refused (RDS rotates it)."""
    import json

    from tenant_security.database import DatabaseLogin, TenantDatabases

    config = settings()
    if not config.database_secret_arn:
        return None

    def master() -> DatabaseLogin:
        secret = aws.secretsmanager().get_secret_value(SecretId=config.database_secret_arn)["SecretString"]
        return DatabaseLogin.from_secret(json.loads(secret), **config.database_location)

    return TenantDatabases(master(), reload=master)


@cache
def provisioner() -> TenantProvisioner:
    from tenant_security.onboarding import TenantProvisioner, execution_checker

    return TenantProvisioner(
        settings(),
        aws.kms(),
        aws.s3(),
        aws.secretsmanager(),
        tenant_store(),
        users(),
        sessions(),
        tenant_databases,
        kms_in=aws.kms,
        execution_running=execution_checker(aws.stepfunctions(), settings().onboarding_step_timeout),
    )


@cache
def faults() -> FaultInjector:
    from tenant_security.faults import FaultInjector, install_aws_faults

    enabled = settings().fault_injection == "enabled"
    if enabled:
        install_aws_faults(aws.before_every_call)
    return FaultInjector(aws.dynamodb(), settings().counters_table, enabled)


def _threshold_reached(tenant_id: str, month: str, cost: float, budget: float) -> None:
    publisher().put(
        "Quota Threshold Reached",
        {"tenant_id": tenant_id, "period": month, "cost": cost, "monthly_budget": budget},
    )


@cache
def rate_limiter() -> RateLimiter:
    from tenant_security.quotas import RateLimiter

    return RateLimiter(aws.dynamodb(), settings().counters_table, on_threshold=_threshold_reached)


@cache
def leases() -> Leases:
    from tenant_security.quotas import Leases

    return Leases(aws.dynamodb(), settings().counters_table)


@cache
def storage_quota() -> StorageQuota:
    from tenant_security.quotas import StorageQuota

    return StorageQuota(aws.dynamodb(), settings().counters_table)


def request_middleware() -> Any:
    """The middleware every API function behind the authorizer runs (see tenant_security.context)."""
    from tenant_security.context import protected_middleware

    injector = faults() if settings().fault_injection == "enabled" else None
    return protected_middleware(
        tenants().get,
        sessions().is_live,
        settings().platform_tenant_id,
        quota_guard,
        publisher,
        aws_faults=injector.aws_faults if injector is not None else None,
        outbox=outbox,
    )


@cache
def outbox() -> Outbox:
    from tenant_security.outbox import Outbox

    return Outbox(aws.dynamodb(), settings().counters_table)


@cache
def quota_guard() -> QuotaGuard:
    from tenant_security.quotas import QuotaGuard

    return QuotaGuard(rate_limiter(), leases())


# ---------------------------------------------------------------------- audit trail
@cache
def chain_heads() -> ChainHeads:
    from tenant_security.audit.store import ChainHeads

    return ChainHeads(aws.dynamodb(), settings().audit_heads_table)


@cache
def audit_objects() -> LockedObjects:
    from tenant_security.audit.store import LockedObjects

    return LockedObjects(aws.s3(), settings().audit_key_arn)


@cache
def record_cipher() -> RecordCipher:
    from tenant_security.audit.cipher import RecordCipher

    return RecordCipher(settings().audit_key_arn, settings().account_id, settings().partition)


@cache
def checkpoints() -> Checkpoints:
    from tenant_security.audit.checkpoints import Checkpoints

    return Checkpoints(aws.kms(), settings().audit_checkpoint_key_id, audit_objects())


def _subject_key_context(tenant_id: str, key_id: str) -> dict[str, str]:
    from tenant_security import crypto
    from tenant_security.audit.pii import PURPOSE_SUBJECT_KEY

    return crypto.encryption_context(tenant_id, PURPOSE_SUBJECT_KEY, key_id=key_id)


def _wrap_subject_key(tenant_id: str, key_id: str, key: bytes) -> bytes:
    from tenant_security import crypto

    return crypto.encrypt(key, settings().data_key_arn(tenant_id), _subject_key_context(tenant_id, key_id))


def _unwrap_subject_key(tenant_id: str, key_id: str, wrapped: bytes) -> bytes:
    from tenant_security import crypto

    return crypto.decrypt(
        wrapped, _subject_key_context(tenant_id, key_id), settings().account_id, settings().partition
    )


@cache
def subject_keys() -> SubjectKeys:
    from tenant_security.audit.pii import SubjectKeys

    return SubjectKeys(
        aws.dynamodb(), settings().audit_subject_keys_table, _wrap_subject_key, _unwrap_subject_key
    )


@cache
def pii() -> PiiProtector:
    from tenant_security.audit.pii import PiiProtector

    return PiiProtector(subject_keys())


@cache
def audit_writer() -> AuditWriter:
    from tenant_security.audit.writer import AuditWriter

    return AuditWriter(
        settings(),
        chain_heads(),
        audit_objects(),
        record_cipher(),
        tenants(),
        pii(),
        checkpoints(),
        fault=lambda tenant_id, step: faults().check("audit", tenant_id, step),
        sealer=pii_sealer(),
    )


@cache
def chain_verifier() -> ChainVerifier:
    from tenant_security.audit.verify import ChainVerifier

    return ChainVerifier(
        chain_heads(), audit_objects(), checkpoints(), record_cipher().decode, settings().audit_bucket
    )


@cache
def audit_reader() -> AuditReader:
    from tenant_security.audit.reader import AuditReader

    return AuditReader(aws.s3(), record_cipher().decode, pii(), subject_keys())


@cache
def subject_rights() -> SubjectRights:
    from tenant_security.gdpr import SubjectRights

    return SubjectRights(
        users(),
        sessions(),
        subject_keys(),
        audit_reader(),
        settings().audit_bucket,
        # the tenant's record (cached) tells a tenant without a database from one with
        records_of=lambda tenant, user: tenant_records().created_by(tenants().get(tenant) or tenant, user),
        files_of=lambda tenant, user: tenant_files().ledger.created_by(tenant, user),  # noqa: PLW0108 - built lazily
    )


@cache
def tenant_secrets() -> TenantSecrets:
    from tenant_security.tenant_secrets import TenantSecrets

    return TenantSecrets(settings(), aws.secretsmanager())


@cache
def tenant_files() -> TenantFiles:
    from tenant_security.storage import TenantFiles
    from tenant_security.storage_ledger import FileLedger

    quota = storage_quota()
    return TenantFiles(
        settings(), aws.s3(), aws.kms(), quota, FileLedger(aws.dynamodb(), settings().counters_table, quota)
    )


@cache
def tenant_records() -> TenantRecords:
    from tenant_security.database import CREDENTIALS_SECRET
    from tenant_security.records import TenantLogins, TenantPools, TenantRecords

    config = settings()
    logins = TenantLogins(
        aws.secretsmanager(),
        lambda tenant_id: config.tenant_secret_name(tenant_id, CREDENTIALS_SECRET),
        max_age=config.records_credentials_max_age,
    )
    pools = TenantPools(
        logins,
        pool_size=config.records_pool_size,
        max_pools=config.records_max_pools,
        wait_seconds=config.records_connect_wait,
    )
    return TenantRecords(config, pools, storage_quota())


@cache
def tenant_controls() -> TenantControls:
    from tenant_security.compliance import TenantControls

    return TenantControls(settings(), aws.kms(), aws.s3())
