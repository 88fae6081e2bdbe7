"""The rollout of a policy's fields that live in AWS: key rotation, key replicas, audit retention.

A stored change that touches one of them (:class:`tenant_security.policy.changes.RolledOutField`)
starts the ``<prefix>-tenant-policy-rollout`` workflow, one execution per revision
(``<tenant>-policy-<revision>``). Its step :meth:`PolicyRollout.apply` converges the tenant's
AWS resources to the policy stored *now*, not to the revision that started it, so executions
may run in any order and at once, and the latest stored policy wins:

- every tenant key rotates every ``key_rotation_days`` (EnableKeyRotation's period);
- with ``cross_region_encryption``, each key has a replica in every other ``data_locality``
  region and in no other: a new region gets one, a dropped region's is scheduled for deletion
  (KMS's shortest window), a region that comes back gets its replica back (deletion cancelled,
  enabled); without it, every replica is scheduled for deletion. Writes in a dropped region are
  refused at once, without waiting for any of this (:mod:`tenant_security.locality` reads the
  fresh policy);
- the audit bucket's default retention is ``retention_days`` (COMPLIANCE): it governs records
  written after the change, as the audit writer's per-record retention already does.

After converging, the policy is read again; when its AWS side changed meanwhile, the step
converges again, so the last pass of any execution is for a policy that was current after its
last write. Only the execution of the revision that the profile's rollout names records its
outcome (:meth:`PolicyRevisions.set_rollout`). A transient AWS error is raised for the state
machine to retry; any other failure, and a transient one that outlasts the retries (the
workflow's ``fail`` step), records the rollout failed and puts a ``policy_rollout_failed``
security alert.

The platform tenant's keys and audit bucket are the stack's own (template.yaml): a change of
its key rotation or cross-region encryption is refused, and its rollout has nothing to apply.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tenant_security.alerts import AlertKind
from tenant_security.aws import error_code, is_transient
from tenant_security.config import KEY_PURPOSES, Settings
from tenant_security.errors import DomainError, ServiceUnavailable
from tenant_security.locality import replica_regions
from tenant_security.policy.revisions import CHANGEABLE_STATUSES, PolicyRevisions, RolloutStatus

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from tenant_security.activity import EventPublisher
    from tenant_security.models.policies import SecurityPolicies
    from tenant_security.tenants import TenantProfile, TenantStore

# Converging passes one step makes while the policy keeps changing under it (then it is retried).
MAX_PASSES = 4
LOCALITY_FIELD = "data_protection.data_locality"
CROSS_REGION_FIELD = "data_protection.cross_region_encryption"
ROTATION_FIELD = "data_protection.key_rotation_days"


class TenantKeyRollout(Protocol):
    """The tenant keys' side (:class:`tenant_security.onboarding.keys.TenantKeys`)."""

    def converge_key(self, tenant_id: str, purpose: str, policies: SecurityPolicies) -> dict[str, list[str]]:
        """Bring one key to the policy; what changed."""
        ...

    def multi_region(self, tenant_id: str) -> bool | None:
        """Whether every key of the tenant can have replicas; None without keys."""
        ...


class AuditRetention(Protocol):
    """The audit bucket's side (:class:`tenant_security.onboarding.buckets.TenantBuckets`)."""

    def set_audit_retention(self, tenant_id: str, days: int) -> None:
        """The audit bucket's default retention (COMPLIANCE)."""
        ...


class RolloutFailed(Exception):
    """The rollout failed for good; recorded failed and alerted (the workflow ends failed)."""


class RolloutNotSettled(ServiceUnavailable):
    """The policy kept changing while it was rolled out: the workflow retries the step."""

    code = "rollout_not_settled"


def execution_name(tenant_id: str, revision: int) -> str:
    """The workflow execution of one revision (Step Functions refuses a second of that name)."""
    return f"{tenant_id}-policy-{revision}"


def aws_side(policies: SecurityPolicies) -> tuple[Any, ...]:
    """What of a policy lives in AWS: two policies with the same one need no new pass."""
    protection = policies.data_protection
    return (
        protection.key_rotation_days,
        tuple(protection.data_locality),
        protection.cross_region_encryption,
        policies.audit_logging.retention_days,
    )


def failure_detail(exc: BaseException, where: str) -> str:
    """What failed, for the rollout's ``detail`` and the alert: the AWS operation and error code
    (never the message, which may carry ARNs or values), or our own error's message."""
    code = error_code(exc)
    if code:
        return f"{where}: {getattr(exc, 'operation_name', 'AWS')} answered {code}"
    if isinstance(exc, DomainError) or type(exc).__module__.startswith("tenant_security"):
        return f"{where}: {exc}"[:500]
    return f"{where}: {type(exc).__name__}"


def _error_name(error: Any) -> str:
    """A Step Functions error name from a Catch's output, as a bare word (never its Cause)."""
    name = str(error.get("Error", "")) if isinstance(error, Mapping) else ""
    return re.sub(r"[^A-Za-z0-9_.-]", "", name)[:80] or "unknown error"


class PolicyRollout:
    """Checks, starts and applies the rollout of tenant policies' AWS side."""

    def __init__(
        self,
        settings: Settings,
        store: TenantStore,
        revisions: PolicyRevisions,
        publisher: EventPublisher,
        keys: TenantKeyRollout,
        retention: AuditRetention,
        stepfunctions: SFNClient | None,
        state_machine_arn: str,
    ) -> None:
        """``keys``, ``retention``: the tenant's keys and audit bucket; ``stepfunctions`` and
        ``state_machine_arn``: where :meth:`start` starts the workflow ("": none configured)."""
        self.settings = settings
        self.store = store
        self.revisions = revisions
        self.publisher = publisher
        self.keys = keys
        self.retention = retention
        self.stepfunctions = stepfunctions
        self.state_machine_arn = state_machine_arn

    # ------------------------------------------------------------------ before a change is stored
    def refusals(self, tenant: TenantProfile, new: SecurityPolicies) -> list[dict[str, str]]:
        """Field errors for what AWS cannot apply to this tenant.

        - ``data_locality`` must keep this stack's region: the tenant's keys, buckets and
          database are here, and every write of its data would be refused (403) anywhere else.
        - ``cross_region_encryption`` with other regions, for keys created single-Region (it was
          off at onboarding): KMS cannot make a key multi-Region (DescribeKey tells).
        - the platform tenant's key rotation and cross-region encryption: its key is the stack's.
        """
        region = self.settings.region
        problems = []
        if region not in new.data_protection.data_locality:
            problems.append(
                _problem(
                    LOCALITY_FIELD, f"must include {region}: this deployment stores the tenant's data there"
                )
            )
        old = tenant.policies.data_protection
        if tenant.tenant_id == self.settings.platform_tenant_id:
            for field, before, after in (
                (ROTATION_FIELD, old.key_rotation_days, new.data_protection.key_rotation_days),
                (
                    CROSS_REGION_FIELD,
                    old.cross_region_encryption,
                    new.data_protection.cross_region_encryption,
                ),
            ):
                if before != after:
                    problems.append(
                        _problem(
                            field, "the platform tenant's key is the stack's own: change it in template.yaml"
                        )
                    )
            return problems
        wanted = replica_regions(new, region)
        if wanted and set(wanted) != set(replica_regions(tenant.policies, region)):
            multi = self.keys.multi_region(tenant.tenant_id)
            if multi is None:
                problems.append(_problem(CROSS_REGION_FIELD, "the tenant's keys were not found"))
            elif not multi:
                problems.append(
                    _problem(
                        CROSS_REGION_FIELD,
                        "the tenant's keys were created single-Region (cross_region_encryption was off"
                        " at onboarding) and KMS cannot make a key multi-Region: no replicas possible",
                    )
                )
        return problems

    def start(self, tenant_id: str, revision: int) -> None:
        """Start the workflow for ``revision``; one that exists already and is running (or
        succeeded) is the same rollout, one that failed or was stopped runs again under a name
        of its own (Step Functions keeps a name for 90 days)."""
        if self.stepfunctions is None or not self.state_machine_arn:
            raise RuntimeError("no policy rollout workflow is configured (POLICY_ROLLOUT_STATE_MACHINE_ARN)")
        name = execution_name(tenant_id, revision)
        if self._start(name, tenant_id, revision):
            return
        execution = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        status = self.stepfunctions.describe_execution(executionArn=execution)["status"]
        if status not in ("RUNNING", "PENDING_REDRIVE", "SUCCEEDED"):
            self._start(f"{name}-rerun-{int(time.time())}", tenant_id, revision)

    def _start(self, name: str, tenant_id: str, revision: int) -> bool:
        """False when an execution of that name exists already."""
        assert self.stepfunctions is not None
        try:
            self.stepfunctions.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=name,
                input=json.dumps({"tenant_id": tenant_id, "revision": revision}),
            )
        except Exception as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            return False
        return True

    # ------------------------------------------------------------------ the workflow's steps
    def apply(self, tenant_id: str, revision: int) -> dict[str, Any]:
        """Converge the tenant's AWS resources to its stored policy, and record revision
        ``revision``'s rollout applied (``status`` ``superseded`` when a newer revision's rollout
        speaks for the tenant now). Transient errors are raised for a retry; any other failure
        is recorded failed, alerted and raised as :class:`RolloutFailed`."""
        for _pass in range(MAX_PASSES):
            tenant = self.store.get(tenant_id)
            if tenant is None or tenant.status not in CHANGEABLE_STATUSES:
                # Offboarding shreds the keys: a rollout must not replicate them meanwhile.
                state = tenant.status if tenant is not None else "gone"
                detail = f"not rolled out: the tenant is {state}"
                self.revisions.set_rollout(tenant_id, revision, RolloutStatus.FAILED, detail)
                return {"status": RolloutStatus.FAILED.value, "revision": revision, "detail": detail}
            changes = self._converge(tenant, revision)
            after = self.store.get(tenant_id)
            if after is None or aws_side(after.policies) == aws_side(tenant.policies):
                detail = _summary(tenant, self.settings.region, changes)
                recorded = self.revisions.set_rollout(tenant_id, revision, RolloutStatus.APPLIED, detail)
                return {
                    "status": RolloutStatus.APPLIED.value if recorded else "superseded",
                    "revision": revision,
                    "policy_revision": tenant.policy_revision,
                    "changes": changes,
                }
        raise RolloutNotSettled(f"the policy of {tenant_id!r} kept changing while it was rolled out")

    def fail(self, tenant_id: str, revision: int, error: Any) -> dict[str, Any]:
        """The workflow's last step after a failure that outlasted the retries: record it, alert."""
        detail = f"the rollout failed after retries: {_error_name(error)}"
        self._record_failure(tenant_id, revision, detail)
        return {"status": RolloutStatus.FAILED.value, "revision": revision, "detail": detail}

    # ------------------------------------------------------------------ inside
    def _converge(self, tenant: TenantProfile, revision: int) -> dict[str, Any]:
        if tenant.tenant_id == self.settings.platform_tenant_id:
            return {}  # the stack's key and audit bucket (template.yaml); records keep their retention
        changes: dict[str, Any] = {}
        steps: list[tuple[str, Any]] = [
            (f"{purpose} key", lambda p=purpose: self.keys.converge_key(tenant.tenant_id, p, tenant.policies))
            for purpose in KEY_PURPOSES
        ]
        steps.append(
            (
                "audit bucket",
                lambda: self.retention.set_audit_retention(
                    tenant.tenant_id, tenant.policies.audit_logging.retention_days
                ),
            )
        )
        for where, step in steps:
            try:
                done = step()
            except Exception as exc:
                if is_transient(exc) or isinstance(exc, ServiceUnavailable):
                    raise
                detail = failure_detail(exc, where)
                self._record_failure(tenant.tenant_id, revision, detail)
                raise RolloutFailed(detail) from exc
            if done:
                changes[where] = done
        return changes

    def _record_failure(self, tenant_id: str, revision: int, detail: str) -> None:
        """Failed, and an alert. When a newer revision's rollout speaks for the tenant now, this
        pass may still have changed AWS after that one converged (a replica scheduled for
        deletion that the newer policy keeps): the newer rollout is marked failed too, so GET
        never says ``applied`` over AWS it does not describe; repeating the change runs it again."""
        if not self.revisions.set_rollout(tenant_id, revision, RolloutStatus.FAILED, detail):
            latest = self.store.get(tenant_id)
            current = int((latest.rollout or {}).get("revision", 0)) if latest is not None else 0
            detail = (
                f"revision {revision}'s rollout failed after this one was applied ({detail}); "
                "send the change again to re-apply it"
            )
            if not current or not self.revisions.set_rollout(
                tenant_id, current, RolloutStatus.FAILED, detail
            ):
                return
            revision = current
        self.publisher.security_alert(
            tenant_id, AlertKind.POLICY_ROLLOUT_FAILED, revision=revision, reason=detail
        )


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message, "type": "value_error"}


def _summary(tenant: TenantProfile, home_region: str, changes: Mapping[str, Any]) -> str:
    """The applied rollout's ``detail``: the AWS side now, and what this pass changed."""
    changed = "; ".join(
        f"{where} " + ", ".join(f"{part} {' '.join(regions)}" for part, regions in parts.items())
        for where, parts in changes.items()
    )
    policies = tenant.policies
    replicas = ", ".join(replica_regions(policies, home_region)) or "none"
    return (
        f"key rotation every {policies.data_protection.key_rotation_days} days; replicas: {replicas};"
        f" audit retention {policies.audit_logging.retention_days} days"
        + (f"; changed: {changed}" if changed else "")
    )
