"""The builders every other one stands on: the settings (and :func:`configure`), the tenant,
user and session stores, the event publisher, faults and the quota stores."""

from __future__ import annotations

import sys
from functools import cache
from typing import TYPE_CHECKING

from tenant_security import aws

if TYPE_CHECKING:
    from tenant_security.activity import EventPublisher
    from tenant_security.config import Settings
    from tenant_security.event_pii import PiiSealer
    from tenant_security.faults import FaultInjector
    from tenant_security.identity.clients import ApiClientStore
    from tenant_security.identity.sessions import SessionStore
    from tenant_security.identity.users import UserStore
    from tenant_security.outbox import Outbox
    from tenant_security.quotas.guard import QuotaGuard
    from tenant_security.quotas.rate import RateLimiter
    from tenant_security.quotas.storage import StorageQuota
    from tenant_security.refusals import RefusalCounter
    from tenant_security.tenant_directory import TenantDirectory
    from tenant_security.tenants import TenantStore


# Settings a process chose itself (configure), used instead of its environment's.
_chosen: list[Settings] = []


@cache
def settings() -> Settings:
    """The settings every builder here reads: the ones given to :func:`configure`, else the
    environment's."""
    if _chosen:
        return _chosen[0]
    from tenant_security.config import get_settings

    return get_settings()


def configure(chosen: Settings | None) -> None:
    """Build every service from ``chosen`` instead of the environment's settings (the console
    script's, whose ``--prefix`` names another stack); ``None`` goes back to the environment's.
    Whatever was built before is forgotten, so no service mixes two settings."""
    _chosen[:] = [] if chosen is None else [chosen]
    package = __name__.rpartition(".")[0]
    modules = [
        m for name, m in list(sys.modules.items()) if name == package or name.startswith(package + ".")
    ]
    for module in modules:
        for builder in list(vars(module).values()):
            forget = getattr(builder, "cache_clear", None)
            if callable(forget):
                forget()


@cache
def users() -> UserStore:
    from tenant_security.identity.users import UserStore

    return UserStore(aws.dynamodb(), settings().users_table)


@cache
def api_clients() -> ApiClientStore:
    from tenant_security.identity.clients import ApiClientStore

    return ApiClientStore(aws.dynamodb(), settings().api_clients_table)


@cache
def tenant_store() -> TenantStore:
    from tenant_security.tenants import TenantStore

    return TenantStore(aws.dynamodb(), settings().tenants_table)


@cache
def tenants() -> TenantDirectory:
    from tenant_security.tenant_directory import TenantDirectory

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
def refusals() -> RefusalCounter:
    from tenant_security.refusals import RefusalCounter

    return RefusalCounter(aws.dynamodb(), settings().counters_table)


@cache
def faults() -> FaultInjector:
    from tenant_security.faults import FaultInjector, install_aws_faults

    enabled = settings().fault_injection == "enabled"
    if enabled:
        install_aws_faults(aws.before_every_call)
    return FaultInjector(aws.dynamodb(), settings().counters_table, enabled)


@cache
def rate_limiter() -> RateLimiter:
    from tenant_security.quotas.rate import RateLimiter

    return RateLimiter(
        aws.dynamodb(),
        settings().counters_table,
        # the publisher is built at the first threshold, not with every request's rate limiter
        on_threshold=lambda *reached: publisher().quota_threshold_reached(*reached),
    )


@cache
def storage_quota() -> StorageQuota:
    from tenant_security.quotas.storage import StorageQuota

    return StorageQuota(aws.dynamodb(), settings().counters_table)


@cache
def outbox() -> Outbox:
    from tenant_security.outbox import Outbox

    return Outbox(aws.dynamodb(), settings().counters_table)


@cache
def quota_guard() -> QuotaGuard:
    from tenant_security.quotas.guard import QuotaGuard

    return QuotaGuard(rate_limiter())
