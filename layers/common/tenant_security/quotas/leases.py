"""Concurrency leases (max_concurrent_requests), kept in the tenant's first counter item.

``lz`` on ``{pk: "quota#<tenant>#0", sk: "counts"}`` maps each running request's lease id to its
expiry (whole seconds: its deadline + 5 s). A lease is taken under ``size(lz) < cap`` (and
``attribute_not_exists`` of its own id: an id drawn twice would hide a request), in the rate
counter's one write when the request is admitted on that item -- always, for a tenant of one
counter item -- or in a write of its own for a sharded tenant admitted on another shard. Every
lease of a tenant is in this one item, whatever its shard count, so a change of the count never
splits the leases held between items that do not see each other.

A request releases its lease by a REMOVE of its own id. A holder that died leaves its lease until
it expires; every write that takes a lease removes up to :data:`MAX_PRUNED` expired leases it saw
(a REMOVE of a lease already gone does nothing, and ``size(lz)`` is judged before the removal, so
this never admits more than the cap). When the item is full of expired leases the next write
counts its removals exactly (each under ``attribute_exists``, the cap raised by as many), and a
backlog larger than that is pruned by writes of their own first.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from tenant_security.errors import RateLimited

LEASES = "lz"
# The counter item that holds every lease of a tenant.
LEASE_SHARD = 0
# Expired leases one write removes.
MAX_PRUNED = 32
# The leases one item holds at most, whatever the cap (each is about 17 bytes: the item stays
# under DynamoDB's 400 KB, and a write's units, billed by the item's size, stay bounded).
MAX_LEASES_PER_ITEM = 10_000
# A lease outlives its request's deadline by this much (the deadline is enforced in the function).
LEASE_MARGIN_SECONDS = 5


class ConcurrencyLimitReached(RateLimited):
    code = "concurrency_limit_reached"


@dataclass(frozen=True)
class LeaseTerms:
    """A concurrency lease asked with the admission: at most ``max_concurrent`` held at once, each
    expiring by itself ``lifetime_seconds`` after it was taken (so a dead holder frees it)."""

    max_concurrent: int
    lifetime_seconds: float


@dataclass(frozen=True)
class LeaseWrite:
    """One attempt at a lease: its id (drawn anew for every attempt), expiry and cap."""

    lease_id: str
    expires_at: int  # whole seconds, rounded up: a small item, and never shorter than asked
    cap: int

    @classmethod
    def draw(cls, terms: LeaseTerms, now: float) -> LeaseWrite:
        return cls(
            secrets.token_urlsafe(6),
            math.ceil(now + terms.lifetime_seconds),
            min(terms.max_concurrent, MAX_LEASES_PER_ITEM),
        )


def leases_of(item: dict[str, Any]) -> dict[str, float]:
    """The leases an item holds: id -> expiry."""
    return {lease: float(value["N"]) for lease, value in item.get(LEASES, {}).get("M", {}).items()}


def live(leases: dict[str, float], now: float) -> int:
    """How many of ``leases`` have not expired."""
    return sum(1 for expiry in leases.values() if expiry > now)


def expired(leases: dict[str, float], now: float) -> list[str]:
    """Up to :data:`MAX_PRUNED` expired lease ids."""
    return sorted(lease for lease, expiry in leases.items() if expiry <= now)[:MAX_PRUNED]


def holds(item: dict[str, Any], lease_id: str) -> bool:
    """Whether ``item`` holds ``lease_id``: a write that failed its condition on its own lease had
    landed already (botocore sent it again after a lost reply)."""
    return bool(lease_id) and lease_id in item.get(LEASES, {}).get("M", {})


def fits_after_pruning(leases: dict[str, float], cap: int, now: float) -> bool:
    """Whether one write's exact pruning leaves room for one more lease."""
    return len(leases) - len(expired(leases, now)) < cap


def lease_clauses(
    held: dict[str, float] | None,
    lease: LeaseWrite,
    now: float,
    exact: bool,
    clauses: tuple[list[str], list[str], list[str]],
    names: dict[str, str],
    values: dict[str, Any],
) -> None:
    """Add a lease's part to a write (``clauses``: its SET, REMOVE and condition lists).
    ``held``: the leases last seen on the item (None: it does not exist yet). ``exact``: the item
    was found full, so the expired leases removed count towards the cap, each under
    ``attribute_exists``."""
    sets, removes, conditions = clauses
    values[":lexp"] = {"N": str(lease.expires_at)}
    if lease.cap < 1:
        conditions.append("attribute_not_exists(pk) AND attribute_exists(pk)")
    if held is None:
        values[":leases"] = {"M": {lease.lease_id: {"N": str(lease.expires_at)}}}
        sets.append(f"{LEASES} = :leases")
        return
    gone = expired(held, now)
    for n, lease_id in enumerate(gone):
        names[f"#x{n}"] = lease_id
        removes.append(f"{LEASES}.#x{n}")
        if exact:
            conditions.append(f"attribute_exists({LEASES}.#x{n})")
    values[":lcap"] = {"N": str(lease.cap + (len(gone) if exact else 0))}
    names["#lease"] = lease.lease_id
    sets.append(f"{LEASES}.#lease = :lexp")
    conditions.append(f"size({LEASES}) < :lcap AND attribute_not_exists({LEASES}.#lease)")
