"""Request rate, cost and concurrency, one atomic write per request (and one to release it).

**Windows**: one item per tenant (per shard), ``{pk: "quota#<tenant>#<shard>", sk: "counts"}``,
holds the current second, minute, hour, day and month windows (each a window number and a count,
the month's a spend), the day's spend, and the concurrency leases held: well under 1 KB at
ordinary limits, and it expires by TTL 40 days after its last write, when nothing in it counts. A
request is admitted by **one** conditional UpdateItem that increments every window, takes its
lease and checks every limit at once (burst per second, per minute, per hour, per day, the daily
cost limit, the monthly budget and ``max_concurrent_requests``). Which windows roll over is
decided from the item's stored window numbers; when that guess is stale the failed write returns
the item as it is (ReturnValuesOnConditionCheckFailure) and the write is made once more with the
right shape, so a refusal always names the limit that was really reached.

**Leases** (:mod:`.leases`): the concurrency leases are on the tenant's first counter item. A tenant
of one item takes its lease in the admission's one write; a sharded tenant takes it first, in a
write of its own, and gives it back if no shard admits the request. A request refused on any limit
takes no lease and counts nothing. A write that failed its condition on its own lease had landed
already (botocore sent it again after a lost reply): it is the admission. The earlier layout (one
item per month, leases as separate slot items) is read once per counter item: a tenant's counts of
the month are copied to the new item, so an upgrade spends no limit anew.

**Money**: a request's cost is its route's estimated AWS cost (authz/route_costs.py) and the
quotas' ``cost`` figures are US dollars. Both are counted as whole **nano-dollars** (integers):
DynamoDB adds decimals exactly, but a float limit compared with a float sum drifts, and
micro-dollars would round a $0.0000035 API Gateway request by 14 %. ``dspend`` (the day's) and
``mspend`` (the month's, counted in the month window ``mo``) are the sums; a request is admitted only if
both stay within their limit after it, so spend never exceeds a limit, whatever runs at once.
The month's limit is the stricter of ``cost.monthly_budget`` and the security policy's
``rate_limiting.cost_threshold``.

**Sharding**: a tenant whose rate exceeds what one partition takes (rule: one shard per 500
writes a second of the platform quota's ``api.requests_per_minute / 60``, at most MAX_SHARDS;
never the tenant's own policy, which could otherwise change the count and spend its limits anew
on each new set of shards) gets N counter items with the limits split between them (the
remainder to the first shards); a request tries the shards in a
random order until one admits it, so the total is never over the limit, and a request is refused
only when every shard is full.

**Budget alert**: the first request that takes the month's cost to the alert threshold wins a
conditional put of ``{pk: "quota#<tenant>#alert", sk: "<YYYY-MM>"}`` and puts the one
`Quota Threshold Reached` event of that month.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from tenant_security.dynamo import is_conditional_failure
from tenant_security.errors import ServiceUnavailable
from tenant_security.models.policies import SecurityPolicies
from tenant_security.models.quotas import ResourceQuotas
from tenant_security.observability import logger
from tenant_security.quotas.leases import (
    LEASE_SHARD,
    LEASES,
    LeaseTerms,
    LeaseWrite,
    expired,
    fits_after_pruning,
    holds,
    lease_clauses,
    leases_of,
    live,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import UpdateItemOutputTypeDef

WRITES_PER_SHARD = 500
NANOS_PER_USD = Decimal(1_000_000_000)


def nanodollars(usd: float) -> int:
    """US dollars (a document's figure) as whole nano-dollars, to the nearest one."""
    return int((Decimal(repr(float(usd))) * NANOS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def dollars(nanos: int) -> float:
    """Nano-dollars as US dollars."""
    return float(Decimal(nanos) / NANOS_PER_USD)


_WINDOWS = (("s", 1), ("m", 60), ("h", 3600), ("d", 86400))
_WINDOW_NAMES = tuple(name for name, _ in _WINDOWS)
MONTH = "mo"  # the month's window number (month_number): the month's spend counts in it
COUNTER_SK = "counts"  # the sort key of a tenant's counter items
# A counter item lives this long after its last write: every window and lease in it is over by
# then (the longest is the month), so TTL removes only what counts no more.
ITEM_LIFETIME_SECONDS = 40 * 86400
MAX_ATTEMPTS = 6
_NEVER = "attribute_not_exists(pk) AND attribute_exists(pk)"  # a condition no item meets
# At most this many counter items per tenant: a refused request tries each one.
MAX_SHARDS = 16


def shards_for(writes_per_second: float) -> int:
    """Counter items for a rate of writes (each item takes WRITES_PER_SHARD a second)."""
    return min(MAX_SHARDS, max(1, math.ceil(writes_per_second / WRITES_PER_SHARD)))


@dataclass(frozen=True)
class RateLimits:
    """The request limits in force for a tenant (the stricter of its policy and its quotas)."""

    per_second: int
    per_minute: int
    per_hour: int
    per_day: int
    daily_cost: int  # nano-dollars: cost.daily_limit
    monthly_budget: int  # nano-dollars: the stricter of cost.monthly_budget and cost_threshold
    alert_threshold: float
    # How many counter items share the limits. From the platform's quotas only (api
    # requests_per_minute), never from the tenant's own policy: spend counted on the shards of
    # one count does not bind the shards of another, so a tenant that could change the count
    # (burst_size, step by step) would spend its limits again on each new set.
    shard_count: int = 0

    @classmethod
    def of(cls, policies: SecurityPolicies, quotas: ResourceQuotas) -> RateLimits:
        rate, api, cost = policies.rate_limiting, quotas.api, quotas.cost
        return cls(
            per_second=rate.burst_size,
            per_minute=min(rate.requests_per_minute, api.requests_per_minute),
            per_hour=min(rate.requests_per_hour, api.requests_per_hour),
            per_day=api.requests_per_day,
            daily_cost=nanodollars(cost.daily_limit),
            monthly_budget=nanodollars(min(cost.monthly_budget, rate.cost_threshold)),
            alert_threshold=cost.cost_alert_threshold,
            shard_count=shards_for(api.requests_per_minute / 60),
        )

    @property
    def shards(self) -> int:
        """``shard_count``; limits built by hand (tests) take it from their own rates."""
        return self.shard_count or shards_for(max(self.per_second, self.per_minute / 60))

    def share(self, shard: int) -> RateLimits:
        """This shard's part of every limit."""
        n = self.shards

        def part(total: int) -> int:
            return total // n + (1 if shard < total % n else 0)

        return RateLimits(
            part(self.per_second),
            part(self.per_minute),
            part(self.per_hour),
            part(self.per_day),
            part(self.daily_cost),
            part(self.monthly_budget),
            self.alert_threshold,
            1,
        )


class Refusal(StrEnum):
    """The limit that refused a request (the X-RateLimit reset and Retry-After follow from it)."""

    SECOND = "s"
    MINUTE = "m"
    HOUR = "h"
    DAY = "d"
    COST = "cost"  # the day's cost limit
    BUDGET = "budget"  # the month's
    CONCURRENCY = "concurrency"  # max_concurrent_requests


@dataclass(frozen=True)
class Admission:
    """The outcome of a rate check, with what the X-RateLimit headers report (the minute window),
    and the lease taken with it (``shard`` and ``lease_id``, for :meth:`RateLimiter.release`)."""

    admitted: bool
    limit: int
    remaining: int
    reset_seconds: int
    refused_by: Refusal | None = None
    month_cost: int = 0  # nano-dollars, this shard's
    shard: int = 0
    lease_id: str = ""  # the lease taken (on the tenant's LEASE_SHARD item), for release()
    lease_expires_at: float = 0.0  # when it expires: the request must be done before

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.admitted:
            out["Retry-After"] = str(max(1, self.reset_seconds))
        return out


def month_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def month_number(now: float) -> int:
    """The month as a window number (months since year 0), like the fixed windows' numbers."""
    day = datetime.fromtimestamp(now, UTC)
    return day.year * 12 + day.month - 1


def _month_end(now: float) -> int:
    day = datetime.fromtimestamp(now, UTC)
    first_next = datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC)
    return int(first_next.timestamp())


def _windows_now(now: float) -> dict[str, int]:
    return {**{name: int(now // size) for name, size in _WINDOWS}, MONTH: month_number(now)}


@dataclass(frozen=True)
class _CounterView:
    """What a worker last saw of a counter item: its window numbers and its leases (id: expiry)."""

    windows: dict[str, int]
    leases: dict[str, float]
    has_lease_map: bool = True  # False: the item has no ``lz`` yet (a lease write must make it)

    @classmethod
    def of(cls, item: dict[str, Any]) -> _CounterView | None:
        if not item:
            return None
        windows = {name: int(item[name]["N"]) for name in (*_WINDOW_NAMES, MONTH) if name in item}
        return cls(windows, leases_of(item), LEASES in item)


class RateLimiter:
    """Admits requests within a tenant's rate, cost and concurrency limits, one atomic write each
    (and one more to release the request's lease)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        clock: Callable[[], float] = time.time,
        on_threshold: Callable[[str, str, float, float], None] | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.clock = clock
        self.on_threshold = on_threshold
        self._seen: dict[str, _CounterView | None] = {}  # last view of each counter item
        self._lease_views: dict[str, dict[str, float]] = {}  # a sharded tenant's lease item's leases

    @staticmethod
    def _key(tenant_id: str, shard: int) -> dict[str, Any]:
        return {"pk": {"S": f"quota#{tenant_id}#{shard}"}, "sk": {"S": COUNTER_SK}}

    def admit(
        self, tenant_id: str, limits: RateLimits, weight: int, lease: LeaseTerms | None = None
    ) -> Admission:
        """Count one request of cost ``weight`` (nano-dollars), with a concurrency lease on
        ``lease``'s terms if given, or refuse it (nothing counted, no lease).

        A tenant of one counter item gets both in one write. A sharded tenant's lease is taken
        first, on the lease item, and given back if no shard admits the request."""
        now = self.clock()
        if lease is None or limits.shards == 1:
            return self._admit_on_shards(tenant_id, limits, weight, now, lease)
        taken = self._take_lease(tenant_id, lease, now)
        if taken is None:
            return Admission(False, limits.per_minute, 0, 1, refused_by=Refusal.CONCURRENCY)
        try:
            outcome = self._admit_on_shards(tenant_id, limits, weight, now, None)
        except Exception:
            self._release_quietly(tenant_id, taken.lease_id)
            raise
        if not outcome.admitted:
            self._release_quietly(tenant_id, taken.lease_id)  # the refusal is the answer; it expires
            return outcome
        return replace(outcome, lease_id=taken.lease_id, lease_expires_at=float(taken.expires_at))

    def _admit_on_shards(
        self, tenant_id: str, limits: RateLimits, weight: int, now: float, lease: LeaseTerms | None
    ) -> Admission:
        """The rate admission on the tenant's shards in random order (with the lease folded into
        the lease item's write when ``lease`` is given: the tenant has one shard)."""
        order = list(range(limits.shards))
        random.shuffle(order)
        refusal: Admission | None = None
        for shard in order:
            outcome = self._admit_shard(tenant_id, shard, limits.share(shard), weight, now, lease)
            if outcome.admitted:
                try:
                    self._maybe_alert(tenant_id, limits, outcome, weight, now)
                except Exception:  # a side effect: the admission (and its lease) stands
                    logger.exception("the budget alert could not be recorded")
                return outcome
            if outcome.refused_by is Refusal.CONCURRENCY:
                return outcome
            refusal = outcome if refusal is None or outcome.reset_seconds < refusal.reset_seconds else refusal
        assert refusal is not None
        return refusal

    def release(self, tenant_id: str, admission: Admission) -> None:
        """Give back the admission's lease (nothing if it took none, or the lease has gone)."""
        self._release(tenant_id, admission.lease_id)

    def _release(self, tenant_id: str, lease_id: str) -> None:
        if not lease_id:
            return
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(tenant_id, LEASE_SHARD),
                UpdateExpression=f"REMOVE {LEASES}.#lease",
                ConditionExpression=f"attribute_exists({LEASES})",  # never a stub item of a key alone
                ExpressionAttributeNames={"#lease": lease_id},
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

    def _prune(self, tenant_id: str, lease_ids: list[str]) -> None:
        """Remove expired leases in a write of their own (a backlog one admission cannot take)."""
        names = {f"#x{n}": lease_id for n, lease_id in enumerate(lease_ids)}
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(tenant_id, LEASE_SHARD),
                UpdateExpression="REMOVE " + ", ".join(f"{LEASES}.{name}" for name in names),
                ConditionExpression=f"attribute_exists({LEASES})",
                ExpressionAttributeNames=names,
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

    def _load(self, tenant_id: str, shard: int, now: float) -> _CounterView | None:
        """A cold worker's first view of a counter item. A tenant whose counts are still in the
        monthly item of the earlier layout (``sk: <YYYY-MM>``) gets them copied over once, so an
        upgrade spends no limit anew."""
        key = self._key(tenant_id, shard)
        item = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item") or {}
        if item:
            return _CounterView.of(item)
        monthly = {"pk": key["pk"], "sk": {"S": month_of(now)}}
        earlier = self.client.get_item(TableName=self.table, Key=monthly, ConsistentRead=True).get("Item")
        if not earlier:
            return None
        copied = {
            name: earlier[name]
            for name in (*_WINDOW_NAMES, *(f"{n}c" for n in _WINDOW_NAMES), "dspend", "mspend")
            if name in earlier
        }
        seeded = {
            **key,
            **copied,
            MONTH: {"N": str(month_number(now))},
            LEASES: {"M": {}},
            "expires_at": {"N": str(int(now) + ITEM_LIFETIME_SECONDS)},
        }
        try:
            self.client.put_item(
                TableName=self.table, Item=seeded, ConditionExpression="attribute_not_exists(pk)"
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
        return _CounterView.of(seeded)  # if another worker won, the first write corrects the view

    def _admit_shard(
        self,
        tenant_id: str,
        shard: int,
        share: RateLimits,
        weight: int,
        now: float,
        lease: LeaseTerms | None,
    ) -> Admission:
        """One shard's admission (``share``: its part of the limits), with the lease folded in
        when ``lease`` is given (the shard is the lease item)."""
        cache_key = f"{tenant_id}#{shard}"
        stored = self._seen[cache_key] if cache_key in self._seen else self._load(tenant_id, shard, now)
        exact = False  # the lease item was found full: count the expired leases removed
        for _attempt in range(MAX_ATTEMPTS):
            now = max(now, self.clock())
            current = _windows_now(now)
            if stored is not None:
                # Another request (a moment later on another clock) may have opened a newer window
                # already: this request counts in it rather than rolling the window back.
                seen = stored.windows
                current = {name: max(current[name], seen.get(name, current[name])) for name in current}
            taking = LeaseWrite.draw(lease, now) if lease else None
            if (
                taking
                and stored is not None
                and exact
                and not fits_after_pruning(stored.leases, taking.cap, now)
            ):
                self._prune(tenant_id, expired(stored.leases, now))  # a backlog of dead leases
                stored = self._load(tenant_id, shard, now)
                continue
            update, condition, names, values = self._shape(stored, current, share, weight, now, taking, exact)
            request: dict[str, Any] = {
                "TableName": self.table,
                "Key": self._key(tenant_id, shard),
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "ReturnValues": "ALL_NEW",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
            if names:  # DynamoDB refuses an empty map
                request["ExpressionAttributeNames"] = names
            try:
                reply = self.client.update_item(**request)
            except Exception as exc:
                if not is_conditional_failure(exc):
                    if taking:  # it may have landed before the error: its lease must not linger
                        self._release_quietly(tenant_id, taking.lease_id)
                    raise
                old = getattr(exc, "response", {}).get("Item") or {}
                if taking and holds(old, taking.lease_id):
                    reply = cast("UpdateItemOutputTypeDef", {"Attributes": old})  # a retry of a landed write
                else:
                    actual = _CounterView.of(old)
                    if (actual and actual.windows) != (stored and stored.windows):
                        stored = actual  # our idea of the windows was stale: write again, rightly
                        continue
                    if self._rate_blocked(old, current, share, weight):
                        return self._refusal(old, current, share, weight, now)
                    if taking and live(actual.leases if actual else {}, now) >= taking.cap:
                        return Admission(False, share.per_minute, 0, 1, refused_by=Refusal.CONCURRENCY)
                    exact = exact or bool(taking and actual and len(actual.leases) >= taking.cap)
                    stored = actual  # leases moved, or expired ones to prune: write again
                    continue
            item = reply["Attributes"]
            self._seen[cache_key] = _CounterView.of(item)
            return Admission(
                True,
                share.per_minute,
                share.per_minute - int(item["mc"]["N"]),
                60 - int(now) % 60,
                month_cost=int(item["mspend"]["N"]),
                shard=shard,
                lease_id=taking.lease_id if taking else "",
                lease_expires_at=float(taking.expires_at) if taking else 0.0,
            )
        self._seen.pop(cache_key, None)
        raise ServiceUnavailable("the rate counter kept changing; try again")

    def _take_lease(self, tenant_id: str, terms: LeaseTerms, now: float) -> LeaseWrite | None:
        """A sharded tenant's lease, in a write of its own on the lease item (None: refused)."""
        held = self._lease_views.get(tenant_id)
        if held is None:  # a cold view: the item as it is, seeded from the earlier layout if new
            view = self._load(tenant_id, LEASE_SHARD, now)
            held = view.leases if view is not None and view.has_lease_map else None
        exact = False
        for _attempt in range(MAX_ATTEMPTS):
            now = max(now, self.clock())
            lease = LeaseWrite.draw(terms, now)
            if held is not None and exact and not fits_after_pruning(held, lease.cap, now):
                self._prune(tenant_id, expired(held, now))
                held, exact = None, False
                continue
            sets, removes, conditions = ["expires_at = :ttl"], list[str](), list[str]()
            names: dict[str, str] = {}
            values: dict[str, Any] = {":ttl": {"N": str(int(now) + ITEM_LIFETIME_SECONDS)}}
            if held is None:  # not seen: the item may not exist, or hold no lease map yet
                sets.append(f"{LEASES} = if_not_exists({LEASES}, :empty)")
                values[":empty"] = {"M": {}}
                condition = None
            else:
                lease_clauses(held, lease, now, exact, (sets, removes, conditions), names, values)
                condition = " AND ".join(f"({c})" for c in conditions)
            update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
            request: dict[str, Any] = {
                "TableName": self.table,
                "Key": self._key(tenant_id, LEASE_SHARD),
                "UpdateExpression": update,
                "ExpressionAttributeValues": values,
                "ReturnValues": "ALL_NEW",
            }
            if condition:
                request |= {
                    "ConditionExpression": condition,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            if names:
                request["ExpressionAttributeNames"] = names
            try:
                reply = self.client.update_item(**request)
            except Exception as exc:
                if not is_conditional_failure(exc):
                    if held is not None:
                        self._release_quietly(tenant_id, lease.lease_id)
                    raise
                old = getattr(exc, "response", {}).get("Item") or {}
                if not holds(old, lease.lease_id):
                    if LEASES not in old:  # the item is gone, or has no map: make it again
                        held, exact = None, False
                        continue
                    held = leases_of(old)
                    if live(held, now) >= lease.cap:
                        return None
                    exact = exact or len(held) >= lease.cap
                    continue
                reply = cast("UpdateItemOutputTypeDef", {"Attributes": old})
            held = self._lease_views[tenant_id] = leases_of(reply["Attributes"])
            if condition is None:  # the map now exists: take the lease on what it holds
                continue
            return lease
        self._lease_views.pop(tenant_id, None)
        raise ServiceUnavailable("the lease item kept changing; try again")

    def _release_quietly(self, tenant_id: str, lease_id: str) -> None:
        """Release on the way out of an error: the original error is what the caller must see."""
        with contextlib.suppress(Exception):
            self._release(tenant_id, lease_id)

    @staticmethod
    def _shape(
        stored: _CounterView | None,
        current: dict[str, int],
        limits: RateLimits,
        weight: int,
        now: float,
        lease: LeaseWrite | None,
        exact: bool = False,
    ) -> tuple[str, str, dict[str, str], dict[str, Any]]:
        """The update and condition for ``stored`` windows: counts in a current window are
        incremented under their cap, rolled windows start again at one; the day's and month's spend
        likewise under their limits; and the lease, under the concurrency cap, after removing
        expired leases when the item is full of them."""
        caps = {"s": limits.per_second, "m": limits.per_minute, "h": limits.per_hour, "d": limits.per_day}
        names: dict[str, str] = {}
        values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":w": {"N": str(weight)},
            ":zero": {"N": "0"},
            ":ttl": {"N": str(int(now) + ITEM_LIFETIME_SECONDS)},
        }
        sets, removes = ["expires_at = :ttl"], list[str]()
        conditions = ["attribute_not_exists(pk)"] if stored is None else []
        seen = stored.windows if stored is not None else {}
        if weight > limits.daily_cost or weight > limits.monthly_budget:
            conditions.append(_NEVER)
        for name, _ in _WINDOWS:
            values[f":{name}"] = {"N": str(current[name])}
            if seen.get(name) == current[name]:
                values[f":{name}cap"] = {"N": str(caps[name])}
                sets.append(f"{name}c = {name}c + :one")
                conditions.append(f"{name} = :{name} AND {name}c < :{name}cap")
                continue
            sets.append(f"{name} = :{name}, {name}c = :one")
            if stored is not None:
                values[f":{name}old"] = {"N": str(seen[name])} if name in seen else {"N": "-1"}
                conditions.append(f"{name} = :{name}old" if name in seen else f"attribute_not_exists({name})")
            if caps[name] < 1:
                conditions.append(_NEVER)
        if seen.get("d") == current["d"]:
            values[":maxday"] = {"N": str(limits.daily_cost - weight)}
            sets.append("dspend = if_not_exists(dspend, :zero) + :w")
            conditions.append("attribute_not_exists(dspend) OR dspend <= :maxday")
        else:
            sets.append("dspend = :w")
        values[":mo"] = {"N": str(current[MONTH])}
        if seen.get(MONTH) == current[MONTH]:
            values[":maxmonth"] = {"N": str(limits.monthly_budget - weight)}
            sets.append("mspend = if_not_exists(mspend, :zero) + :w")
            conditions.append(f"{MONTH} = :mo AND (attribute_not_exists(mspend) OR mspend <= :maxmonth)")
        else:
            sets.append(f"{MONTH} = :mo, mspend = :w")
            if stored is not None:
                values[":moold"] = {"N": str(seen.get(MONTH, -1))}
                conditions.append(f"{MONTH} = :moold" if MONTH in seen else f"attribute_not_exists({MONTH})")
        if lease is not None:
            held = stored.leases if stored is not None else None
            lease_clauses(held, lease, now, exact, (sets, removes, conditions), names, values)
        elif stored is None:
            values[":leases"] = {"M": {}}
            sets.append(f"{LEASES} = :leases")  # every counter item has its lease map
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        condition = " AND ".join(f"({c})" for c in conditions)
        used = re.findall(r":\w+", update + " " + condition)  # DynamoDB refuses a value left unused
        return update, condition, names, {name: value for name, value in values.items() if name in used}

    @staticmethod
    def _rate_blocked(old: dict[str, Any], current: dict[str, int], limits: RateLimits, weight: int) -> bool:
        """Whether the item as it is refuses the request on a rate, cost or budget limit."""
        caps = {"s": limits.per_second, "m": limits.per_minute, "h": limits.per_hour, "d": limits.per_day}
        for name, _ in _WINDOWS:
            in_window = int(old.get(name, {}).get("N", -1)) == current[name]
            if caps[name] < 1 or (in_window and int(old.get(f"{name}c", {}).get("N", 0)) >= caps[name]):
                return True
        today = int(old.get("d", {}).get("N", -1)) == current["d"]
        day = int(old.get("dspend", {}).get("N", 0)) if today else 0
        month = (
            int(old.get("mspend", {}).get("N", 0))
            if int(old.get(MONTH, {}).get("N", -1)) == current[MONTH]
            else 0
        )
        return day + weight > limits.daily_cost or month + weight > limits.monthly_budget

    @staticmethod
    def _refusal(
        old: dict[str, Any], current: dict[str, int], limits: RateLimits, weight: int, now: float
    ) -> Admission:
        caps = {"s": limits.per_second, "m": limits.per_minute, "h": limits.per_hour, "d": limits.per_day}
        resets = {"s": 1, "m": 60 - int(now) % 60, "h": 3600 - int(now) % 3600, "d": 86400 - int(now) % 86400}
        minute_used = (
            int(old.get("mc", {}).get("N", 0)) if int(old.get("m", {}).get("N", -1)) == current["m"] else 0
        )
        month_spent = (
            int(old.get("mspend", {}).get("N", 0))
            if int(old.get(MONTH, {}).get("N", -1)) == current[MONTH]
            else 0
        )
        by = Refusal.BUDGET if month_spent + weight > limits.monthly_budget else Refusal.COST
        for name, _ in reversed(_WINDOWS):  # the longest full window decides when to retry
            used = (
                int(old.get(f"{name}c", {}).get("N", 0))
                if int(old.get(name, {}).get("N", -1)) == current[name]
                else 0
            )
            if used >= caps[name]:
                by = Refusal(name)
                break
        # the budget: the month's spend, so the next month's first request is admitted
        resets.update(cost=resets["d"], budget=_month_end(now) - int(now))
        reset = resets[by.value]
        return Admission(False, limits.per_minute, limits.per_minute - minute_used, reset, refused_by=by)

    def _maybe_alert(
        self, tenant_id: str, limits: RateLimits, outcome: Admission, weight: int, now: float
    ) -> None:
        threshold = limits.monthly_budget * limits.alert_threshold / limits.shards
        if self.on_threshold is None or not (outcome.month_cost - weight < threshold <= outcome.month_cost):
            return
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": f"quota#{tenant_id}#alert"},
                    "sk": {"S": month_of(now)},
                    "expires_at": {"N": str(_month_end(now) + 40 * 86400)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return  # another request crossed first: its event stands
            raise
        self.on_threshold(
            tenant_id,
            month_of(now),
            dollars(outcome.month_cost * limits.shards),
            dollars(limits.monthly_budget),
        )

    def usage(self, tenant_id: str, limits: RateLimits) -> dict[str, Any]:
        """The current windows, summed over shards; spend in US dollars (``day_cost``,
        ``month_cost``, and ``spend``: what is left of each limit); the leases held
        (``concurrent_requests``)."""
        now = self.clock()
        current = _windows_now(now)
        totals = {"second": 0, "minute": 0, "hour": 0, "day": 0}
        names = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
        day_spend = month_spend = leases = 0
        for shard in range(limits.shards):
            key = self._key(tenant_id, shard)
            item = self.client.get_item(TableName=self.table, ConsistentRead=True, Key=key).get("Item")
            if not item:  # counts not yet moved from the earlier layout's monthly item
                key = {"pk": key["pk"], "sk": {"S": month_of(now)}}
                item = self.client.get_item(TableName=self.table, ConsistentRead=True, Key=key).get("Item")
                item = {**item, MONTH: {"N": str(current[MONTH])}} if item else {}
            for name, _ in _WINDOWS:
                if int(item.get(name, {}).get("N", -1)) == current[name]:
                    totals[names[name]] += int(item[f"{name}c"]["N"])
            if int(item.get("d", {}).get("N", -1)) == current["d"]:
                day_spend += int(item.get("dspend", {}).get("N", 0))
            if int(item.get(MONTH, {}).get("N", -1)) == current[MONTH]:
                month_spend += int(item.get("mspend", {}).get("N", 0))
            view = _CounterView.of(item)
            leases += live(view.leases, now) if view else 0
        return {
            **totals,
            "day_cost": dollars(day_spend),
            "month_cost": dollars(month_spend),
            "limits": {
                "per_second": limits.per_second,
                "per_minute": limits.per_minute,
                "per_hour": limits.per_hour,
                "per_day": limits.per_day,
                "daily_cost": dollars(limits.daily_cost),
                "monthly_budget": dollars(limits.monthly_budget),
            },
            "shards": limits.shards,
            "month": month_of(now),
            "concurrent_requests": leases,
            "spend": {
                "currency": "USD",
                "day": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d"),
                "month": month_of(now),
                "today": dollars(day_spend),
                "this_month": dollars(month_spend),
                "daily_limit": dollars(limits.daily_cost),
                "monthly_limit": dollars(limits.monthly_budget),
                "remaining_today": dollars(max(0, limits.daily_cost - day_spend)),
                "remaining_this_month": dollars(max(0, limits.monthly_budget - month_spend)),
                "alert_at": dollars(int(limits.monthly_budget * limits.alert_threshold)),
            },
        }
