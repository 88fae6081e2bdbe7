"""The audit writer: appends platform events to their tenants' trails, each exactly once.

Per batch of one chain's events (up to MAX_BATCH_EVENTS): protect PII per the tenant policy →
seal the records (sequence, previous hash, hash; times never before the last record's) → one
conditional transaction claims every event id, advances the head (which names the batch's object
as ``pending``) and writes the batch's Merkle nodes and index entries (each record encrypted by
the Encryption SDK under the platform audit key, tenant_id and purpose in the context) → one
object holds the batch, encrypted likewise (Object Lock COMPLIANCE until now + retention_days,
SSE-KMS). A warm writer knows the head it left: a full batch costs one transaction and one put.
A writer that dies after the transaction leaves ``pending`` in the head; the retry of the batch
or the tenant's next writer writes that object, rebuilt from the index -- no gap, no duplicate.
A signed checkpoint follows each batch that passes a multiple of ``checkpoint_every``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tenant_security.activity import USER_ACTIVITY
from tenant_security.audit import merkle
from tenant_security.audit.batches import Prepared, Staged, batches, fitting, stage
from tenant_security.audit.chain import object_plaintext
from tenant_security.audit.checkpoints import Checkpoints, public_checkpoint
from tenant_security.audit.cipher import RecordCipher
from tenant_security.audit.events import forged_record_content, record_content, tenant_of
from tenant_security.audit.objects import LockedObjects
from tenant_security.audit.pii import PiiProtector
from tenant_security.audit.store import (
    ChainBusy,
    ChainHeads,
    Head,
    IndexIncomplete,
    IndexUnreadable,
    LostBatch,
    Outcome,
    Pending,
)
from tenant_security.audit.tree import AuditIndex, unpack_frontier
from tenant_security.config import Settings
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
        # The heads this warm writer's own last batches left (tried first; the condition checks).
        self._heads: dict[str, Head] = {}
        self._lost: list[LostBatch] = []

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
        outcome = self.append_all([event])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def append_all(self, events: Sequence[Mapping[str, Any]]) -> list[Appended | Exception]:
        """Append events, each exactly once, in the order given within each chain: per chain, in
        batches of up to :data:`MAX_BATCH_EVENTS` records -- one head transaction and one object
        per batch. For each event, what became of it, or the error that stopped it (its delivery
        is retried; the others' are not)."""
        outcomes: list[Appended | Exception | None] = [None] * len(events)
        chains: dict[str, list[tuple[int, Prepared]]] = {}
        first_of: dict[tuple[str, str], int] = {}
        repeats: list[tuple[int, int]] = []
        for position, event in enumerate(events):
            try:
                prepared = self._prepare(event)
            except Exception as exc:  # e.g. KMS refusing a subject key: this event's delivery fails
                outcomes[position] = exc
                continue
            key = (prepared.tenant_id, prepared.event_id)
            if key in first_of:  # the same event twice in one batch: at-least-once delivery
                repeats.append((position, first_of[key]))
                continue
            first_of[key] = position
            chains.setdefault(prepared.tenant_id, []).append((position, prepared))
        for tenant_id, items in chains.items():
            for batch in batches(items):
                try:
                    appended = self._append_batch(tenant_id, [p for _, p in batch])
                except Exception as exc:
                    appended = [exc] * len(batch)
                for (position, _), outcome in zip(batch, appended, strict=True):
                    outcomes[position] = outcome
        for position, original in repeats:
            first = outcomes[original]
            outcomes[position] = replace(first, duplicate=True) if isinstance(first, Appended) else first
        return [o if o is not None else RuntimeError("not appended") for o in outcomes]

    def _prepare(self, event: Mapping[str, Any]) -> Prepared:
        """The event's chain and its record content, PII protected per the chain's policy."""
        forged = self.is_forged(event)
        detail = event.get("detail")
        if self.sealer is not None and isinstance(detail, Mapping) and not forged:
            event = {**event, "detail": self.sealer.open(detail)}
        tenant_id, tenant = self.chain_of(event)
        policies = self._policies(tenant)
        content = forged_record_content(event, tenant_id) if forged else record_content(event, tenant_id)
        if not content["event_id"]:
            raise ValueError("an event without an id cannot be appended idempotently")
        mode = policies.compliance.pii_handling
        if tenant is not None and tenant.status in RETIRED and mode != "none":
            mode = "redact"  # the tenant data key is being shredded: keep no new PII
        protected = self.pii.protect(content, mode)
        return Prepared(tenant_id, policies, str(content["event_id"]), protected, forged)

    def _append_batch(self, tenant_id: str, batch: list[Prepared]) -> list[Appended | Exception]:
        """One batch of one chain: a transaction claims every event id and moves the head past
        the batch (its tree nodes and index entries with it), then one object holds its records
        (two of each, should the tree's new nodes leave the records too few of the transaction's
        items). Events appended before are answered as duplicates and the rest tried again."""
        done: dict[str, Appended] = {}
        todo = list(batch)
        for attempt in range(MAX_ATTEMPTS):
            if not todo:
                break
            # This warm writer's own last head saves a read; if another writer moved it since,
            # the transaction's condition fails and the head is read again.
            head = self._heads.pop(tenant_id, None) or self.heads.get(tenant_id)
            self._complete(tenant_id, head)
            staged = self._stage(tenant_id, head, todo[: fitting(head.sequence, len(todo))])
            advance = self.heads.advance(
                head,
                staged.records[-1]["hash"],
                staged.pending,
                staged.now,
                staged.packed_frontier,
                staged.tree_writes,
                event_ids=[p.event_id for p in todo[: len(staged.records)]],
            )
            if advance.outcome is Outcome.CONFLICT:  # another writer moved the head first
                _backoff(attempt)
                continue
            if advance.outcome is Outcome.DUPLICATE:
                self._complete(tenant_id, self.heads.get(tenant_id))  # a dead writer's object
                for prepared in todo:
                    if prepared.event_id in advance.duplicates:
                        sequence = self.heads.sequence_of_event(tenant_id, prepared.event_id)
                        logger.info("duplicate event", extra={"tenant_id": tenant_id, "sequence": sequence})
                        done[prepared.event_id] = Appended(tenant_id, sequence, True, prepared.forged)
                todo = [p for p in todo if p.event_id not in advance.duplicates]
                continue
            self._heads[tenant_id] = staged.head_after(head)
            self.fault(tenant_id, "after_head")
            self._write(tenant_id, staged.pending, staged.body)
            every = self.settings.audit_checkpoint_every
            last = staged.pending.sequence
            if last // every > head.sequence // every:  # the batch passed a multiple of N
                root = merkle.root_hash(last, dict(staged.frontier))
                self.checkpoint(
                    tenant_id, last, staged.records[-1]["hash"], root, staged.policies, staged.now
                )
            for prepared, record in zip(todo, staged.records, strict=False):
                done[prepared.event_id] = Appended(tenant_id, record["sequence"], forged=prepared.forged)
            todo = todo[len(staged.records) :]  # the rest, if the tree's nodes left them no room
        if todo:
            raise ChainBusy(f"the audit chain of {tenant_id!r} is busy; the delivery will be retried")
        return [done[p.event_id] for p in batch]

    def _stage(self, tenant_id: str, head: Head, todo: list[Prepared]) -> Staged:
        """The batch's records after ``head``, staged (audit/batches.py) at this writer's time."""
        now = self.clock()
        return stage(
            tenant_id, head, todo, now, self._retain_until(todo[-1].policies, now), self.cipher, self.index
        )

    def _rebuilt(self, tenant_id: str, pending: Pending) -> bytes:
        """The object of records ``pending.first``..``pending.sequence``, from their index entries
        (written with the head, so they are there), encrypted again."""
        if pending.body:  # a head written before objects were rebuilt from the index
            return pending.body
        entries = list(self.index.stored_records(tenant_id, pending.first_sequence, pending.sequence))
        stored = [self.cipher.plaintext(tenant_id, entry.body) for entry in entries]
        if len(stored) != pending.sequence - pending.first_sequence + 1:
            raise IndexIncomplete(f"the index of {tenant_id!r} lacks records of its last batch")
        if any(b is None for b in stored):
            raise IndexUnreadable(f"records of the last batch of {tenant_id!r} do not decrypt")
        return self.cipher.encrypt_bytes(tenant_id, object_plaintext([b for b in stored if b is not None]))

    def _complete(self, tenant_id: str, head: Head) -> None:
        """Write the head's last object if its writer may have died before it did."""
        last = head.pending
        if last is None or (tenant_id, last.sequence) in self._written:
            return
        try:
            # Its writer may be at work or dead: look (a cheap HEAD), and write the same bytes
            # if they are not there -- safe either way, the put is write-once.
            self._write(tenant_id, last, check_first=True)
        except IndexIncomplete:
            if last.in_flight():
                raise  # maybe not visible yet: the delivery is retried
            # Deleted: stalling would keep every later event of the tenant off its trail, so
            # the batch is given up (and alarmed); the verifier names its records missing.
            lost = self.heads.give_up(head, self.clock())
            if lost is not None:
                logger.error("audit records lost: index entries gone, object never written", extra=vars(lost))
                self._lost.append(lost)
            self._written.append((tenant_id, last.sequence))

    def take_lost(self) -> list[LostBatch]:
        """The batches this writer gave up as lost since the last call (for the alarm metric)."""
        lost, self._lost = self._lost, []
        return lost

    def _write(
        self, tenant_id: str, pending: Pending, body: bytes | None = None, *, check_first: bool = False
    ) -> None:
        """The pending object (once; a second writer's attempt is a no-op). Without ``body`` (a
        dead writer's object) it is rebuilt from the records' entries in the index."""
        bucket = self.settings.audit_bucket(tenant_id)
        if not (check_first and self.objects.exists(bucket, pending.key)):
            self.objects.put_once(
                bucket,
                pending.key,
                body if body is not None else self._rebuilt(tenant_id, pending),
                datetime.fromisoformat(pending.retain_until),
                "application/vnd.aws.encryption-sdk",
            )
        self._written.append((tenant_id, pending.sequence))
        del self._written[:-_REMEMBERED]

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
        """Sign, store and announce the checkpoint of the tree of ``sequence`` records."""
        bucket, retain_until = self.settings.audit_bucket(tenant_id), self._retain_until(policies, now)
        signed = self.checkpoints.write(bucket, tenant_id, sequence, hash_, root, now, retain_until)
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
            source, platform = self.settings.event_source, self.settings.platform_tenant_id
            events = [count.event(source, platform) for count in counts[:MAX_SUMMARIES_PER_MINUTE]]
            if counts[MAX_SUMMARIES_PER_MINUTE:]:
                events.append(overflow_event(minute, counts[MAX_SUMMARIES_PER_MINUTE:], source, platform))
            for outcome in self.append_all(events):  # in batches: a flood's minute is a few appends
                if isinstance(outcome, Exception):
                    raise outcome  # the minute is not marked done: the next run appends the rest
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
            if head.sequence <= head.checkpoint_sequence or not head.frontier:
                continue  # nothing new, or a chain begun before the tree (audit rebuild-tree)
            try:  # one chain's trouble (in flight, unreadable, AWS failing) puts off its own only
                self._complete(head.tenant_id, head)
                self.checkpoint(
                    head.tenant_id,
                    head.sequence,
                    head.hash,
                    merkle.root_hash(head.sequence, dict(unpack_frontier(head.frontier, head.sequence))),
                    self._policies(self.tenants.get(head.tenant_id)),
                    self.clock(),
                )
            except Exception:
                logger.exception("checkpoint put off", extra={"tenant_id": head.tenant_id})
                continue
            written.append({"tenant_id": head.tenant_id, "sequence": head.sequence})
        return written
