"""The audit writer: appends each platform event to its tenant's hash chain, exactly once.

Per event: protect PII per the tenant policy → read the chain head → seal the record (sequence,
previous hash, hash) and encrypt it (Encryption SDK, platform audit key, tenant_id and purpose in
the context) → one conditional transaction claims the event id and advances the head, which
carries the new record as ``pending`` → write the object (Object Lock COMPLIANCE until now +
retention_days, SSE-KMS): three AWS calls per event. The head keeps its last record until the
next append replaces it: a writer that dies after the transaction leaves it there, and the retry
of that event or the tenant's next writer writes that same record (a write-once put of the same
bytes) -- no gap, no duplicate. Every ``checkpoint_every`` records a signed checkpoint follows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tenant_security.activity import USER_ACTIVITY
from tenant_security.audit import merkle
from tenant_security.audit.chain import canonical, record_key, seal
from tenant_security.audit.checkpoints import Checkpoints, public_checkpoint
from tenant_security.audit.cipher import RecordCipher
from tenant_security.audit.events import forged_record_content, record_content, tenant_of
from tenant_security.audit.pii import PiiProtector
from tenant_security.audit.store import ChainHeads, Head, LockedObjects, Pending
from tenant_security.audit.tree import AuditIndex, pack_frontier, unpack_frontier
from tenant_security.config import Settings
from tenant_security.errors import ServiceUnavailable
from tenant_security.event_pii import PiiSealer
from tenant_security.models.policies import SecurityPolicies
from tenant_security.observability import logger
from tenant_security.outbox import Outbox
from tenant_security.refusals import RefusalCounter, overflow_event
from tenant_security.tenants import RETIRED, TenantLookup, TenantProfile, TenantStatus

MAX_ATTEMPTS = 60
REFUSALS_MARKER = "refusals"  # the last minute whose refusals were summarised
FIRST_RUN_MINUTES = 15
MAX_SUMMARIES_PER_MINUTE = 100  # records of one minute's refusals; the rest as one record
TICK_BUDGET_SECONDS = 20.0  # of the writer's 30 s timeout
_REMEMBERED = 64
_NO_CHAIN_YET = (TenantStatus.PROVISIONING, TenantStatus.FAILED)  # no audit bucket (yet, or any more)


def _backoff(attempt: int) -> None:
    # Exponential back-off with full jitter: writers racing for one chain spread out instead of
    # colliding again (each collision costs a read and a failed transaction).
    time.sleep(random.uniform(0, min(1.0, 0.025 * 2**attempt)))  # noqa: S311 - jitter, not crypto


class ChainBusy(ServiceUnavailable):
    """Too many concurrent writers on one chain; the delivery is retried."""

    code = "chain_busy"


@dataclass(frozen=True)
class Appended:
    tenant_id: str
    sequence: int | None
    duplicate: bool = False
    forged: bool = False  # recorded as a forged event (not from the platform's source)


class AuditWriter:
    """Appends events to tenant chains (stores given, not found)."""

    def __init__(
        self,
        settings: Settings,
        heads: ChainHeads,
        objects: LockedObjects,
        cipher: RecordCipher,
        tenants: TenantLookup,
        pii: PiiProtector,
        checkpoints: Checkpoints,
        index: AuditIndex,
        fault: Callable[[str, str], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sealer: PiiSealer | None = None,
        announce: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        """``fault(tenant_id, step)`` raises to inject a failure between the writer's steps (tests);
        ``sealer`` opens the personal fields producers sealed (the writer alone may);
        ``announce(checkpoint)`` puts each new checkpoint as an `Audit Checkpoint` event (a lost
        event loses no checkpoint: it is stored first, and the next one covers it)."""
        self.sealer = sealer
        self.announce = announce or (lambda _checkpoint: None)
        self.settings = settings
        self.heads = heads
        self.objects = objects
        self.cipher = cipher
        self.tenants = tenants
        self.pii = pii
        self.checkpoints = checkpoints
        self.index = index
        self.fault = fault or (lambda _tenant, _step: None)
        self.clock = clock
        # The records whose objects this warm writer wrote itself (no need to look for them).
        self._written: list[tuple[str, int]] = []

    # ------------------------------------------------------------------ routing
    def is_forged(self, event: Mapping[str, Any]) -> bool:
        """An event that did not come from the platform's source (the bus policy lets only the
        platform's roles use it): recorded as forged, on the platform's chain."""
        return event.get("source") != self.settings.event_source

    def chain_of(self, event: Mapping[str, Any]) -> tuple[str, TenantProfile | None]:
        """The chain an event goes to: its tenant's, or the platform's while the tenant has none
        (and always the platform's for a forged event)."""
        platform = self.settings.platform_tenant_id
        if self.is_forged(event):
            return platform, self.tenants.get(platform)
        tenant_id = tenant_of(event, platform)
        record = self.tenants.get(tenant_id)
        if tenant_id != platform and (record is None or record.status in _NO_CHAIN_YET):
            return platform, self.tenants.get(platform)
        return tenant_id, record

    def _policies(self, record: TenantProfile | None) -> SecurityPolicies:
        return record.policies if record is not None else SecurityPolicies()

    def _retain_until(self, policies: SecurityPolicies, now: datetime) -> datetime:
        return now + timedelta(days=policies.audit_logging.retention_days)

    # ------------------------------------------------------------------ append
    def append(self, event: Mapping[str, Any]) -> Appended:
        """Append one EventBridge event to its chain (a repeated event id appends nothing)."""
        detail = event.get("detail")
        if self.sealer is not None and isinstance(detail, Mapping) and not self.is_forged(event):
            event = {**event, "detail": self.sealer.open(detail)}
        tenant_id, tenant = self.chain_of(event)
        policies = self._policies(tenant)
        content = (
            forged_record_content(event, tenant_id)
            if self.is_forged(event)
            else record_content(event, tenant_id)
        )
        if not content["event_id"]:
            raise ValueError("an event without an id cannot be appended idempotently")
        mode = policies.compliance.pii_handling
        if tenant is not None and tenant.status in RETIRED and mode != "none":
            mode = "redact"  # the tenant data key is being shredded: keep no new PII
        protected = self.pii.protect(content, mode)
        event_id = str(content["event_id"])
        for attempt in range(MAX_ATTEMPTS):
            head = self.heads.get(tenant_id)
            last = head.pending
            if last is not None and (tenant_id, last.sequence) not in self._written:
                # Its writer may be at work or dead: look (a cheap HEAD), and write the same bytes
                # if they are not there -- safe either way, the put is write-once.
                self._write(tenant_id, last, check_first=True)
            now = self.clock()
            record = seal(
                {
                    **protected,
                    "sequence": head.sequence + 1,
                    "prev_hash": head.hash,
                    "recorded_at": now.isoformat(),
                }
            )
            pending = Pending(
                sequence=record["sequence"],
                event_id=event_id,
                key=record_key(record["sequence"], now),
                body=self.cipher.encrypt(tenant_id, record),
                retain_until=self._retain_until(policies, now).isoformat(),
                claimed_at=time.time(),
            )
            # The record's stored bytes are its canonical JSON: the leaf hashes exactly those.
            frontier, completed = merkle.append(
                self._frontier(head), head.sequence, [merkle.leaf_hash(canonical(record))]
            )
            tree_writes = self.index.writes(
                tenant_id, completed, [(pending.sequence, pending.key, pending.body)]
            )
            outcome = self.heads.advance(
                head, record["hash"], pending, now, pack_frontier(frontier), tree_writes
            )
            if outcome == "conflict":  # another writer moved the head first
                _backoff(attempt)
                continue
            if outcome == "duplicate":
                head = self.heads.get(tenant_id)
                if head.pending is not None and head.pending.event_id == event_id:
                    self._write(tenant_id, head.pending)  # the retry of a writer that died
                sequence = self.heads.sequence_of_event(tenant_id, event_id)
                logger.info("duplicate event", extra={"tenant_id": tenant_id, "sequence": sequence})
                return Appended(tenant_id, sequence, duplicate=True, forged=self.is_forged(event))
            self.fault(tenant_id, "after_head")
            self._write(tenant_id, pending)
            if pending.sequence % self.settings.audit_checkpoint_every == 0:
                root = merkle.root_hash(pending.sequence, dict(frontier))
                self.checkpoint(tenant_id, pending.sequence, record["hash"], root, policies, now)
            return Appended(tenant_id, pending.sequence, forged=self.is_forged(event))
        raise ChainBusy(f"the audit chain of {tenant_id!r} is busy; the delivery will be retried")

    def _write(self, tenant_id: str, pending: Pending, *, check_first: bool = False) -> None:
        """The pending record's object (once; a second writer's attempt is a no-op)."""
        bucket = self.settings.audit_bucket(tenant_id)
        if not (check_first and self.objects.exists(bucket, pending.key)):
            self.objects.put_once(
                bucket,
                pending.key,
                pending.body,
                datetime.fromisoformat(pending.retain_until),
                "application/vnd.aws.encryption-sdk",
            )
        self._written.append((tenant_id, pending.sequence))
        del self._written[:-_REMEMBERED]

    @staticmethod
    def _frontier(head: Head) -> merkle.Frontier:
        """The tree the head describes (a chain begun before the tree has none: see README)."""
        return unpack_frontier(head.frontier, head.sequence)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(
        self,
        tenant_id: str,
        sequence: int,
        hash_: str,
        root: bytes,
        policies: SecurityPolicies,
        now: datetime,
    ) -> None:
        signed = self.checkpoints.write(
            self.settings.audit_bucket(tenant_id),
            tenant_id,
            sequence,
            hash_,
            root,
            now,
            self._retain_until(policies, now),
        )
        self.announce(public_checkpoint(signed))
        self.heads.set_checkpoint(tenant_id, sequence)

    def summarise_refusals(
        self, refusals: RefusalCounter, budget_seconds: float = TICK_BUDGET_SECONDS
    ) -> int:
        """Append the refusal summaries of the minutes that ended since the last run; the
        attempts they stand for. Re-running a minute appends nothing twice (each record's event
        id is its counter's).

        Bounded, so a flood cannot stall the summaries for good: a minute gets at most
        MAX_SUMMARIES_PER_MINUTE records (its busiest counters) and one record of the rest, and
        a run starts no new minute after ``budget_seconds`` (the next run goes on from there).
        """
        started = time.monotonic()
        after = self.heads.marker(REFUSALS_MARKER)
        if after is None:  # the first run: the last few minutes (older counters expire unread)
            after = int(self.clock().timestamp() // 60) - FIRST_RUN_MINUTES
        attempts = 0
        for minute in refusals.finished_minutes(after):
            if time.monotonic() - started > budget_seconds:
                break
            counts = sorted(refusals.of_minute(minute), key=lambda c: c.attempts, reverse=True)
            for count in counts[:MAX_SUMMARIES_PER_MINUTE]:
                self.append(count.event(self.settings.event_source, self.settings.platform_tenant_id))
            rest = counts[MAX_SUMMARIES_PER_MINUTE:]
            if rest:
                self.append(
                    overflow_event(minute, rest, self.settings.event_source, self.settings.platform_tenant_id)
                )
            attempts += sum(c.attempts for c in counts)
            self.heads.advance_marker(REFUSALS_MARKER, minute)
        return attempts

    def drain_outbox(self, outbox: Outbox) -> int:
        """Append the records requests held but never got on the bus (see
        :mod:`tenant_security.outbox`); how many. A record that did reach the trail is not
        appended twice (same event id)."""
        drained = 0
        for held in outbox.due():
            self.append(
                {
                    "id": held.event_id,
                    "source": self.settings.event_source,
                    "detail-type": USER_ACTIVITY,
                    "time": held.detail.get("time"),
                    "detail": held.detail,
                }
            )
            outbox.release(held)
            drained += 1
        return drained

    def checkpoint_all(self) -> list[dict[str, Any]]:
        """The scheduled run: a checkpoint of every chain that grew since its last one."""
        written = []
        for head in self.heads.heads():
            if head.sequence <= head.checkpoint_sequence:
                continue
            if head.pending is not None:
                self._write(head.tenant_id, head.pending, check_first=True)
            self.checkpoint(
                head.tenant_id,
                head.sequence,
                head.hash,
                merkle.root_hash(head.sequence, dict(self._frontier(head))),
                self._policies(self.tenants.get(head.tenant_id)),
                self.clock(),
            )
            written.append({"tenant_id": head.tenant_id, "sequence": head.sequence})
        return written
