"""A tenant's security policy through the admin API: read it with its revision, replace or
merge-patch it (If-Match, the lock-out guard, field-level history), and start the rollout of
the fields that live in AWS.

The new document governs every request that starts 5 seconds after the reply: every function
reads tenant profiles through :class:`tenant_security.tenant_directory.TenantDirectory`, whose
entries are never older than that, and the request middleware checks against it what a cached
authorizer answer cannot see (:mod:`tenant_security.context`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from tenant_security.alerts import AlertKind
from tenant_security.authz.rbac import known_roles
from tenant_security.errors import Conflict, NotFound, ValidationFailed, field_errors
from tenant_security.models.policies import SecurityPolicies, parse_security_policies
from tenant_security.paging import decode_next, encode_next
from tenant_security.policy.changes import (
    FieldChange,
    field_changes,
    merge_patch,
    rolled_out,
    without_read_only,
)
from tenant_security.policy.lockout import CallerSession, guard
from tenant_security.policy.revisions import (
    CHANGEABLE_STATUSES,
    MAX_HISTORY_PAGE,
    PolicyRevisions,
    Revision,
    RolloutStatus,
    StaleRevision,
    etag,
    if_match_allows,
    rollout_state,
)

if TYPE_CHECKING:
    from tenant_security.activity import EventPublisher
    from tenant_security.actors import Actor
    from tenant_security.tenants import TenantProfile, TenantStore

# Changes made without If-Match are merged onto the newest revision: tried this often.
_UNCONDITIONAL_ATTEMPTS = 3


class PolicyRollouts(Protocol):
    """Where a change's AWS side goes (:class:`tenant_security.policy.rollout.PolicyRollout`)."""

    def refusals(self, tenant: TenantProfile, new: SecurityPolicies) -> list[dict[str, str]]:
        """Field errors for what AWS cannot apply to this tenant (empty when all can be)."""
        ...

    def start(self, tenant_id: str, revision: int) -> None:
        """Start applying ``revision`` (idempotent per revision)."""
        ...


@dataclass(frozen=True)
class PolicyChange:
    """One PUT or PATCH of a tenant's policy, as the handler read it."""

    tenant_id: str
    body: Any
    merge: bool  # True: an RFC 7396 merge patch over the stored document; False: the whole document
    if_match: str | None
    force: bool
    actor: Actor
    # The caller's next request as the new policy would judge it; None when another tenant's
    # policy governs the caller (a platform-admin changing a tenant's policy).
    caller: CallerSession | None


@dataclass(frozen=True)
class PolicyReply:
    """The stored document (with its rollout), its ETag and what the change changed."""

    document: dict[str, Any]
    etag: str
    changes: tuple[FieldChange, ...] = ()

    def audit_changes(self) -> list[dict[str, Any]]:
        """The changes as the request's `User Activity` names them."""
        return [c.as_dict() for c in self.changes]


def shown(tenant: TenantProfile) -> PolicyReply:
    """GET /tenants/{t}/policies: the document, ``revision`` and ``rollout`` (read-only keys)."""
    document = tenant.policies.model_dump(mode="json")
    document["revision"] = tenant.policy_revision
    document["rollout"] = tenant.rollout or {
        "status": RolloutStatus.APPLIED.value,
        "revision": 0,
        "detail": "",
    }
    return PolicyReply(document, etag(tenant.policy_revision))


class PolicyAdmin:
    """Reads and changes tenant security policies."""

    def __init__(
        self,
        store: TenantStore,
        revisions: PolicyRevisions,
        rollouts: PolicyRollouts,
        publisher: EventPublisher,
        forget: Callable[[str], None] = lambda _tenant: None,
        month_spend: Callable[[TenantProfile], float] | None = None,
    ) -> None:
        """``forget(tenant_id)``: drop this worker's cached profile after a change (this worker
        sees its own change at once; the others within the directory's age); ``month_spend``:
        the dollars a tenant spent this month (the lock-out guard of a lowered cost_threshold)."""
        self.month_spend = month_spend
        self.store = store
        self.revisions = revisions
        self.rollouts = rollouts
        self.publisher = publisher
        self.forget = forget

    def change(self, request: PolicyChange) -> PolicyReply:
        """Store the changed document as a new revision (none when nothing changes) and start its
        rollout when a field that lives in AWS changed.

        412 when ``If-Match`` names another revision; 400 with field errors for an invalid
        document; 409 ``would_lock_out`` when the caller's own next request would be refused.
        """
        for _attempt in range(_UNCONDITIONAL_ATTEMPTS):
            tenant = self.store.get(request.tenant_id)
            if tenant is None:
                raise NotFound(f"no tenant {request.tenant_id!r}")
            if tenant.status not in CHANGEABLE_STATUSES:
                raise Conflict(f"the tenant is {tenant.status}: its policy no longer changes")
            if not if_match_allows(request.if_match, tenant.policy_revision):
                raise StaleRevision(
                    f"the policy is at revision {tenant.policy_revision}; read it again and retry"
                )
            new = self._document(tenant, request)
            old_json = tenant.policies.model_dump(mode="json")
            changes = field_changes(old_json, new.model_dump(mode="json"))
            if not changes:  # the same document again: no new revision
                return shown(self._rollout_again(tenant))
            overridden = guard(new, self._caller_now(tenant, request, changes), request.force)
            needs_rollout = bool(rolled_out(changes))
            revision = tenant.policy_revision + 1
            try:
                entry = self.revisions.commit(
                    tenant.tenant_id,
                    new.model_dump_json(),
                    tenant.policy_revision,
                    f"{request.actor.tenant_id}/{request.actor.user}",
                    changes,
                    rollout_state(RolloutStatus.PENDING, revision) if needs_rollout else None,
                    tenant.roles_revision if _names_custom_roles(new, tenant) else None,
                )
            except StaleRevision:
                latest = self.store.get(request.tenant_id)
                moved = latest is None or latest.policy_revision != tenant.policy_revision
                if request.if_match is not None and moved:
                    raise
                continue  # another change landed first (or only the roles changed): judge it again
            self.forget(tenant.tenant_id)
            if overridden:
                self.publisher.security_alert(
                    tenant.tenant_id,
                    AlertKind.POLICY_LOCKOUT_FORCED,
                    user=request.actor.user,
                    revision=entry.revision,
                    reason=", ".join(overridden),
                )
            rollout = tenant.rollout
            if needs_rollout:
                rollout = self._start_rollout(tenant.tenant_id, entry)
            stored = replace(tenant, policies=new, policy_revision=entry.revision, rollout=rollout)
            return PolicyReply(shown(stored).document, etag(entry.revision), tuple(changes))
        raise StaleRevision("the policy keeps changing; read it again and retry")

    def show(self, tenant_id: str) -> PolicyReply:
        """GET /tenants/{t}/policies, read consistently (an ETag from a cache would make a client's
        next If-Match fail for nothing)."""
        tenant = self.store.get(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id!r}")
        return shown(tenant)

    def history(self, tenant_id: str, limit: str | None, after: str | None) -> dict[str, Any]:
        """GET /tenants/{t}/policies/history: newest first; ``next`` continues the listing."""
        entries, more = self.revisions.history(
            tenant_id, _bounded_limit(limit), int(decode_next(after, _is_revision)) if after else None
        )
        return {
            "items": [e.public() for e in entries],
            "next": encode_next(str(more)) if more is not None else None,
        }

    def _caller_now(
        self, tenant: TenantProfile, request: PolicyChange, changes: list[FieldChange]
    ) -> CallerSession | None:
        """The caller as the guard judges them; with the month's spend when the budget changed."""
        caller = request.caller
        if caller is None or self.month_spend is None:
            return caller
        if not any(c.field == "rate_limiting.cost_threshold" for c in changes):
            return caller  # (a read of the counters only when it can matter)
        return replace(caller, month_spend=self.month_spend(tenant))

    def _document(self, tenant: TenantProfile, request: PolicyChange) -> SecurityPolicies:
        """The new document: checked as a document, then against this tenant."""
        body = request.body
        if not isinstance(body, Mapping):
            raise ValidationFailed(
                "the policy must be a JSON object",
                fields=[{"field": "body", "message": "a JSON object", "type": "object_type"}],
            )
        if request.merge:
            body = merge_patch(tenant.policies.model_dump(mode="json", exclude_none=True), body)
        body = without_read_only(body)
        try:
            new = parse_security_policies(body)
        except ValidationError as exc:
            raise ValidationFailed("the policy is not valid", fields=field_errors(exc)) from None
        problems = self._tenant_problems(tenant, new)
        if problems:
            raise ValidationFailed("the policy is not valid for this tenant", fields=problems)
        return new

    def _tenant_problems(self, tenant: TenantProfile, new: SecurityPolicies) -> list[dict[str, str]]:
        problems = []
        if new.tenant_id is not None and new.tenant_id != tenant.tenant_id:
            problems.append(
                {
                    "field": "tenant_id",
                    "message": f"must be {tenant.tenant_id!r} (or left out)",
                    "type": "value_error",
                }
            )
        roles = known_roles(tenant.custom_roles)
        for index, pair in enumerate(new.compliance.segregation_of_duties):
            for position, role in enumerate(pair):
                if role not in roles:
                    problems.append(
                        {
                            "field": f"compliance.segregation_of_duties.{index}.{position}",
                            "message": f"no role {role!r} in this tenant (built-in or custom)",
                            "type": "value_error",
                        }
                    )
        return problems + self.rollouts.refusals(tenant, new)

    def _rollout_again(self, tenant: TenantProfile) -> TenantProfile:
        """A change repeated while its rollout is not applied (the function died before starting
        it, or it failed): start it again -- the repetition a client makes after a lost reply is
        what gets a stuck rollout going."""
        rollout = tenant.rollout or {}
        if rollout.get("status") in (None, RolloutStatus.APPLIED.value):
            return tenant
        revision = int(rollout.get("revision", tenant.policy_revision))
        entry = Revision(revision, "", "", ())
        if rollout.get("status") == RolloutStatus.FAILED.value:
            self.revisions.set_rollout(tenant.tenant_id, revision, RolloutStatus.PENDING, "run again")
        return replace(tenant, rollout=self._start_rollout(tenant.tenant_id, entry))

    def _start_rollout(self, tenant_id: str, entry: Revision) -> dict[str, Any]:
        """Start the rollout; a start that fails marks the revision's rollout failed and alerts
        (the document is stored either way: the reply says how its rollout stands)."""
        try:
            self.rollouts.start(tenant_id, entry.revision)
        except Exception as exc:
            detail = f"the rollout could not start: {type(exc).__name__}"
            self.revisions.set_rollout(tenant_id, entry.revision, RolloutStatus.FAILED, detail)
            self.publisher.security_alert(
                tenant_id, AlertKind.POLICY_ROLLOUT_FAILED, revision=entry.revision, reason=detail
            )
            return rollout_state(RolloutStatus.FAILED, entry.revision, detail)
        return rollout_state(RolloutStatus.PENDING, entry.revision)


DEFAULT_HISTORY_PAGE = 20


def _names_custom_roles(policies: SecurityPolicies, tenant: TenantProfile) -> bool:
    """True when a segregation-of-duties pair names one of the tenant's custom roles."""
    named = {role for pair in policies.compliance.segregation_of_duties for role in pair}
    return bool(named & set(tenant.custom_roles))


def _is_revision(key: str) -> bool:
    return key.isdigit() and 0 < len(key) <= 12


def _bounded_limit(limit: str | None) -> int:
    """?limit: 1 to MAX_HISTORY_PAGE (default 20); 400 otherwise."""
    if limit is None:
        return DEFAULT_HISTORY_PAGE
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_HISTORY_PAGE:
        raise ValidationFailed(
            "invalid limit",
            fields=[{"field": "query.limit", "message": f"1 to {MAX_HISTORY_PAGE}", "type": "int_range"}],
        )
    return int(limit)


def caller_session(
    source_ip: str | None,
    amr: tuple[str, ...],
    started_at: float | None,
    clock: Callable[[], float] = time.time,
    *,
    machine: bool = False,
) -> CallerSession:
    """The caller's next request, as :func:`tenant_security.policy.lockout.guard` judges it
    (``machine``: an API client's)."""
    return CallerSession(
        source_ip=source_ip, amr=amr, session_started_at=started_at, now=clock(), machine=machine
    )
