"""The builders of the tenant security policy's services: its revisions and history, its
rollout to AWS, and the admin API's policy and role administration."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from tenant_security import aws
from tenant_security.services.base import publisher, rate_limiter, settings, tenant_store, tenants

if TYPE_CHECKING:
    from tenant_security.administration.policies import PolicyAdmin
    from tenant_security.administration.roles import RoleAdmin
    from tenant_security.authz.role_store import RoleStore
    from tenant_security.policy.revisions import PolicyRevisions
    from tenant_security.policy.rollout import PolicyRollout
    from tenant_security.tenants import TenantProfile


@cache
def policy_revisions() -> PolicyRevisions:
    from tenant_security.policy.revisions import PolicyRevisions

    return PolicyRevisions(aws.dynamodb(), settings().tenants_table, settings().policy_history_table)


@cache
def policy_rollout() -> PolicyRollout:
    from tenant_security.onboarding.buckets import TenantBuckets
    from tenant_security.onboarding.keys import TenantKeys
    from tenant_security.policy.rollout import PolicyRollout

    config = settings()
    return PolicyRollout(
        config,
        tenant_store(),
        policy_revisions(),
        publisher(),
        keys=TenantKeys(config, aws.kms(), aws.kms),
        retention=TenantBuckets(config, aws.s3()),
        stepfunctions=aws.stepfunctions(),
        state_machine_arn=config.policy_rollout_state_machine_arn,
    )


@cache
def policy_admin() -> PolicyAdmin:
    from tenant_security.administration.policies import PolicyAdmin
    from tenant_security.quotas.rate import RateLimits

    def month_spend(tenant: TenantProfile) -> float:
        usage = rate_limiter().usage(tenant.tenant_id, RateLimits.of(tenant.policies, tenant.quotas))
        return float(usage["month_cost"])

    return PolicyAdmin(
        tenant_store(), policy_revisions(), policy_rollout(), publisher(), tenants().forget, month_spend
    )


@cache
def role_store() -> RoleStore:
    from tenant_security.authz.role_store import RoleStore

    return RoleStore(aws.dynamodb(), settings().tenants_table, settings().users_table)


@cache
def role_admin() -> RoleAdmin:
    from tenant_security.administration.roles import RoleAdmin

    return RoleAdmin(role_store(), settings().platform_tenant_id, tenants().forget)
