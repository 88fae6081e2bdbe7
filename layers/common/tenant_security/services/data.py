"""The builders of the data plane (secrets, files, records), the tenant databases, onboarding,
tenant administration and idempotent replies."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from tenant_security import aws
from tenant_security.services.base import (
    api_clients,
    publisher,
    rate_limiter,
    sessions,
    settings,
    storage_quota,
    tenant_store,
    tenants,
    users,
)

if TYPE_CHECKING:
    from tenant_security.administration.tenants import TenantAdmin
    from tenant_security.database import DatabaseLogin, TenantDatabases
    from tenant_security.idempotency import IdempotentReplies
    from tenant_security.onboarding.provisioner import TenantProvisioner
    from tenant_security.records import TenantRecords
    from tenant_security.storage.files import TenantFiles
    from tenant_security.tenant_secrets import TenantSecrets


@cache
def tenant_secrets() -> TenantSecrets:
    from tenant_security.tenant_secrets import TenantSecrets

    return TenantSecrets(settings(), aws.secretsmanager())


@cache
def tenant_files() -> TenantFiles:
    from tenant_security.storage.files import TenantFiles
    from tenant_security.storage.ledger import FileLedger

    quota = storage_quota()
    return TenantFiles(
        settings(), aws.s3(), aws.kms(), quota, FileLedger(aws.dynamodb(), settings().counters_table, quota)
    )


@cache
def tenant_records() -> TenantRecords:
    from tenant_security.database import CREDENTIALS_SECRET
    from tenant_security.records import TenantRecords
    from tenant_security.tenant_connections import TenantLogins, TenantPools

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
def tenant_databases() -> TenantDatabases | None:
    """The master's access to tenant databases; None where the deployment has no platform
    database (DatabaseSecretArn empty). The login is kept per execution environment and read
    again from the secret when a connection is refused (RDS rotates it)."""
    from tenant_security.database import TenantDatabases, master_login

    config = settings()
    if not config.database_secret_arn:
        return None

    def master() -> DatabaseLogin:
        return master_login(aws.secretsmanager(), config.database_secret_arn, config.database_location)

    return TenantDatabases(master(), reload=master)


@cache
def provisioner() -> TenantProvisioner:
    from tenant_security.onboarding.executions import execution_checker
    from tenant_security.onboarding.provisioner import TenantProvisioner

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
        clients=api_clients(),
    )


@cache
def tenant_admin() -> TenantAdmin:
    from tenant_security.administration.tenants import TenantAdmin

    return TenantAdmin(settings(), tenant_store(), tenants(), publisher(), rate_limiter(), storage_quota())


@cache
def idempotent_replies() -> IdempotentReplies:
    from tenant_security.idempotency import IdempotentReplies, KmsPepper

    return IdempotentReplies(
        aws.dynamodb(),
        settings().idempotency_table,
        pepper=KmsPepper(aws.kms(), settings().idempotency_mac_key_id),
    )


def idempotency_middleware() -> Any:
    """The route middleware of the POST routes that create something: ``Idempotency-Key``."""
    from tenant_security.idempotency import idempotent_middleware

    return idempotent_middleware(idempotent_replies)
