"""Exact per-tenant quotas with atomic DynamoDB writes (the seed's check-then-increment is a race).

**Request rate and cost**: one item per tenant (per shard) per month,
``{pk: "quota#<tenant>#<shard>", sk: "<YYYY-MM>"}``, holds the current second, minute, hour and
day windows (each a window number and a count), the day's and the month's cost: well under 1 KB,
and it expires by TTL after the month. A request is admitted by **one** conditional UpdateItem
that increments every window and checks every limit at once (burst per second, per minute, per
hour, per day, daily cost). Which windows roll over is decided from the item's stored window
numbers; when that guess is stale the failed write returns the item as it is
(ReturnValuesOnConditionCheckFailure) and the write is made once more with the right shape, so
a refusal always names the limit that was really reached.

**Sharding**: a tenant whose rate exceeds what one partition takes (rule: one shard per 500
writes a second of ``max(burst_size, requests_per_minute / 60)``) gets N counter items with the
limits split between them (the remainder to the first shards); a request tries the shards in a
random order until one admits it, so the total is never over the limit, and a request is refused
only when every shard is full.

**Budget alert**: the first request that takes the month's cost to the alert threshold wins a
conditional put of ``{pk: "quota#<tenant>#alert", sk: "<YYYY-MM>"}`` and puts the one
`Quota Threshold Reached` event of that month.

**Concurrency leases** (max_concurrent_requests): slots ``{pk: "lease#<tenant>", sk: <n>}``
taken by a conditional put (free, or expired) and released by a conditional delete; a lease
expires by itself ``max_request_duration`` after it was taken, so a Lambda that dies holding one
does not leak it.

**Storage** (max_data_size, max_file_count, max_file_size): one item, reserved before a write by a
conditional ADD and released on delete or failed writes.
"""

from __future__ import annotations

import contextlib
import math
import random
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenant_security.dynamo import is_conditional_failure, partition_items
from tenant_security.errors import DomainError, PayloadTooLarge, RateLimited, ServiceUnavailable
from tenant_security.headers import header
from tenant_security.models.base import size_in_bytes
from tenant_security.models.policies import SecurityPolicies
from tenant_security.models.quotas import ResourceQuotas

WRITES_PER_SHARD = 500
_WINDOWS = (("s", 1), ("m", 60), ("h", 3600), ("d", 86400))


class StorageQuotaExceeded(DomainError):
    status, code = 413, "storage_quota_exceeded"


class ConcurrencyLimitReached(RateLimited):
    code = "concurrency_limit_reached"


@dataclass(frozen=True)
class RateLimits:
    """The request limits in force for a tenant (the stricter of its policy and its quotas)."""

    per_second: int
    per_minute: int
    per_hour: int
    per_day: int
    daily_cost: float
    monthly_budget: float
    alert_threshold: float

    @classmethod
    def of(cls, policies: SecurityPolicies, quotas: ResourceQuotas) -> RateLimits:
        rate, api, cost = policies.rate_limiting, quotas.api, quotas.cost
        return cls(
            per_second=rate.burst_size,
            per_minute=min(rate.requests_per_minute, api.requests_per_minute),
            per_hour=min(rate.requests_per_hour, api.requests_per_hour),
            per_day=api.requests_per_day,
            daily_cost=cost.daily_limit,
            monthly_budget=cost.monthly_budget,
            alert_threshold=cost.cost_alert_threshold,
        )

    @property
    def shards(self) -> int:
        return max(1, math.ceil(max(self.per_second, self.per_minute / 60) / WRITES_PER_SHARD))

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
            self.daily_cost / n,
            self.monthly_budget / n,
            self.alert_threshold,
        )


@dataclass(frozen=True)
class Admission:
    """The outcome of a rate check, with what the X-RateLimit headers report (the minute window)."""

    admitted: bool
    limit: int
    remaining: int
    reset_seconds: int
    refused_by: str = ""
    month_cost: float = 0.0

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


def _month_end(now: float) -> int:
    day = datetime.fromtimestamp(now, UTC)
    first_next = datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC)
    return int(first_next.timestamp())


class RateLimiter:
    """Admits requests within a tenant's rate and cost limits, one atomic write each."""

    def __init__(
        self,
        client: Any,
        table: str,
        clock: Callable[[], float] = time.time,
        on_threshold: Callable[[str, str, float, float], None] | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.clock = clock
        self.on_threshold = on_threshold
        self._seen: dict[str, dict[str, int]] = {}  # last stored window numbers per counter item

    def admit(self, tenant_id: str, limits: RateLimits, weight: float = 1.0) -> Admission:
        """Count one request of cost ``weight``, or refuse it (nothing counted)."""
        now = self.clock()
        order = list(range(limits.shards))
        random.shuffle(order)
        refusal: Admission | None = None
        for shard in order:
            outcome = self._admit_shard(tenant_id, shard, limits.share(shard), weight, now)
            if outcome.admitted:
                self._maybe_alert(tenant_id, limits, outcome, weight, now)
                return outcome
            refusal = outcome if refusal is None or outcome.reset_seconds < refusal.reset_seconds else refusal
        assert refusal is not None
        return refusal

    def _admit_shard(
        self, tenant_id: str, shard: int, limits: RateLimits, weight: float, now: float
    ) -> Admission:
        key = {"pk": {"S": f"quota#{tenant_id}#{shard}"}, "sk": {"S": month_of(now)}}
        cache_key = f"{tenant_id}#{shard}#{month_of(now)}"
        stored = self._seen.get(cache_key)
        for _attempt in range(4):
            now = max(now, self.clock())
            current = {name: int(now // size) for name, size in _WINDOWS}
            if stored is not None:
                # Another request (a moment later on another clock) may have opened a newer window
                # already: this request counts in it rather than rolling the window back.
                current = {name: max(current[name], stored.get(name, current[name])) for name in current}
            update, condition, values = self._shape(stored, current, limits, weight, now)
            try:
                reply = self.client.update_item(
                    TableName=self.table,
                    Key=key,
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except Exception as exc:
                if not is_conditional_failure(exc):
                    raise
                old = getattr(exc, "response", {}).get("Item") or {}
                actual = {name: int(old[name]["N"]) for name, _ in _WINDOWS if name in old} or None
                if actual != stored:  # our idea of the windows was stale: write again, rightly
                    stored = actual
                    continue
                return self._refusal(old, current, limits, weight, now)
            item = reply["Attributes"]
            self._seen[cache_key] = {name: int(item[name]["N"]) for name, _ in _WINDOWS}
            return Admission(
                True,
                limits.per_minute,
                limits.per_minute - int(item["mc"]["N"]),
                60 - int(now) % 60,
                month_cost=float(item["mcost"]["N"]),
            )
        raise ServiceUnavailable("the rate counter kept changing; try again")

    @staticmethod
    def _shape(
        stored: dict[str, int] | None, current: dict[str, int], limits: RateLimits, weight: float, now: float
    ) -> tuple[str, str, dict[str, Any]]:
        """The update and condition for ``stored`` windows: counts in a current window are
        incremented under their cap, rolled windows start again at one."""
        caps = {"s": limits.per_second, "m": limits.per_minute, "h": limits.per_hour, "d": limits.per_day}
        never = "attribute_not_exists(pk) AND attribute_exists(pk)"
        values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":w": {"N": repr(float(weight))},
            ":zero": {"N": "0"},
            ":ttl": {"N": str(_month_end(now) + 7 * 86400)},
        }
        sets, conditions = ["expires_at = :ttl"], []
        if weight > limits.daily_cost:
            conditions.append(never)
        for name, _ in _WINDOWS:
            values[f":{name}"] = {"N": str(current[name])}
            if stored is not None and stored.get(name) == current[name]:
                values[f":{name}cap"] = {"N": str(caps[name])}
                sets.append(f"{name}c = {name}c + :one")
                conditions.append(f"{name} = :{name} AND {name}c < :{name}cap")
                continue
            sets.append(f"{name} = :{name}, {name}c = :one")
            if stored is None:
                conditions.append(f"attribute_not_exists({name})")
            else:
                values[f":{name}old"] = {"N": str(stored[name])}
                conditions.append(f"{name} = :{name}old")
            if caps[name] < 1:
                conditions.append(never)
        if stored is not None and stored.get("d") == current["d"]:
            values[":maxcost"] = {"N": repr(float(limits.daily_cost - weight))}
            sets.append("dcost = dcost + :w")
            conditions.append("dcost <= :maxcost")
        else:
            sets.append("dcost = :w")
        sets.append("mcost = if_not_exists(mcost, :zero) + :w")
        return "SET " + ", ".join(sets), " AND ".join(f"({c})" for c in conditions), values

    @staticmethod
    def _refusal(
        old: dict[str, Any], current: dict[str, int], limits: RateLimits, weight: float, now: float
    ) -> Admission:
        caps = {"s": limits.per_second, "m": limits.per_minute, "h": limits.per_hour, "d": limits.per_day}
        resets = {"s": 1, "m": 60 - int(now) % 60, "h": 3600 - int(now) % 3600, "d": 86400 - int(now) % 86400}
        minute_used = (
            int(old.get("mc", {}).get("N", 0)) if int(old.get("m", {}).get("N", -1)) == current["m"] else 0
        )
        by = "cost"
        for name, _ in reversed(_WINDOWS):  # the longest full window decides when to retry
            used = (
                int(old.get(f"{name}c", {}).get("N", 0))
                if int(old.get(name, {}).get("N", -1)) == current[name]
                else 0
            )
            if used >= caps[name]:
                by = name
                break
        reset = resets["d"] if by == "cost" else resets[by]
        return Admission(False, limits.per_minute, limits.per_minute - minute_used, reset, refused_by=by)

    def _maybe_alert(
        self, tenant_id: str, limits: RateLimits, outcome: Admission, weight: float, now: float
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
        self.on_threshold(tenant_id, month_of(now), outcome.month_cost * limits.shards, limits.monthly_budget)

    def usage(self, tenant_id: str, limits: RateLimits) -> dict[str, Any]:
        """The current windows, summed over shards."""
        now = self.clock()
        current = {name: int(now // size) for name, size in _WINDOWS}
        totals = {"second": 0, "minute": 0, "hour": 0, "day": 0, "day_cost": 0.0, "month_cost": 0.0}
        names = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
        for shard in range(limits.shards):
            reply = self.client.get_item(
                TableName=self.table,
                ConsistentRead=True,
                Key={"pk": {"S": f"quota#{tenant_id}#{shard}"}, "sk": {"S": month_of(now)}},
            )
            item = reply.get("Item") or {}
            for name, _ in _WINDOWS:
                if int(item.get(name, {}).get("N", -1)) == current[name]:
                    totals[names[name]] += int(item[f"{name}c"]["N"])
            if int(item.get("d", {}).get("N", -1)) == current["d"]:
                totals["day_cost"] += float(item["dcost"]["N"])
            totals["month_cost"] += float(item.get("mcost", {}).get("N", 0))
        return {
            **totals,
            "limits": {
                "per_second": limits.per_second,
                "per_minute": limits.per_minute,
                "per_hour": limits.per_hour,
                "per_day": limits.per_day,
                "daily_cost": limits.daily_cost,
                "monthly_budget": limits.monthly_budget,
            },
            "shards": limits.shards,
            "month": month_of(now),
        }


class Leases:
    """Concurrency slots (max_concurrent_requests) that expire by themselves."""

    def __init__(self, client: Any, table: str, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table = table
        self.clock = clock

    def acquire(self, tenant_id: str, max_concurrent: int, lifetime_seconds: float) -> tuple[str, str]:
        """A free (or expired) slot; 429 when all are held."""
        now = self.clock()
        lease_id = secrets.token_hex(8)
        slots = list(range(max_concurrent))
        random.shuffle(slots)
        tried: set[int] = set()
        for slot in slots[:3] + slots[3:]:
            if slot in tried:
                continue
            if len(tried) == 3:  # crowded: look which slots are held and try only the others
                held = {
                    int(i["sk"]["S"])
                    for i in partition_items(self.client, self.table, "pk", f"lease#{tenant_id}")
                    if float(i["expires_at"]["N"]) > now
                }
                tried |= held
                if slot in tried:
                    continue
            tried.add(slot)
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        "pk": {"S": f"lease#{tenant_id}"},
                        "sk": {"S": str(slot)},
                        "lease": {"S": lease_id},
                        "expires_at": {"N": repr(now + lifetime_seconds)},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                    ExpressionAttributeValues={":now": {"N": repr(now)}},
                )
            except Exception as exc:
                if is_conditional_failure(exc):
                    continue
                raise
            return str(slot), lease_id
        raise ConcurrencyLimitReached(
            f"at most {max_concurrent} concurrent requests", headers={"Retry-After": "1"}
        )

    def release(self, tenant_id: str, slot: str, lease_id: str) -> None:
        """Free the slot if it is still ours."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": f"lease#{tenant_id}"}, "sk": {"S": slot}},
                ConditionExpression="lease = :id",
                ExpressionAttributeValues={":id": {"S": lease_id}},
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

    def active(self, tenant_id: str) -> int:
        now = self.clock()
        return sum(
            1
            for i in partition_items(self.client, self.table, "pk", f"lease#{tenant_id}")
            if float(i["expires_at"]["N"]) > now
        )


class StorageQuota:
    """Bytes and files stored by a tenant, reserved before a write and released after a delete."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def key(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's usage counter item (``bytes_used``, ``files_used``)."""
        return {"pk": {"S": f"storage#{tenant_id}"}, "sk": {"S": "usage"}}

    def reserve(self, tenant_id: str, size: int, quotas: ResourceQuotas, files: int = 1) -> None:
        """Reserve ``size`` bytes and ``files`` files; 413 past max_file_size or the tenant's totals."""
        storage = quotas.storage
        if size > size_in_bytes(storage.max_file_size):
            raise PayloadTooLarge(f"file larger than max_file_size ({storage.max_file_size})")
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self.key(tenant_id),
                UpdateExpression="ADD bytes_used :b, files_used :f",
                ConditionExpression="(attribute_not_exists(bytes_used) OR bytes_used <= :maxb) "
                "AND (attribute_not_exists(files_used) OR files_used <= :maxf)",
                ExpressionAttributeValues={
                    ":b": {"N": str(size)},
                    ":f": {"N": str(files)},
                    ":maxb": {"N": str(size_in_bytes(storage.max_data_size) - size)},
                    ":maxf": {"N": str(storage.max_file_count - files)},
                },
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                raise StorageQuotaExceeded("the tenant's storage quota is used up") from exc
            raise

    def check_room(self, tenant_id: str, size: int, quotas: ResourceQuotas) -> None:
        """413 when one more file of ``size`` bytes would not fit now (nothing reserved)."""
        storage = quotas.storage
        if size > size_in_bytes(storage.max_file_size):
            raise PayloadTooLarge(f"file larger than max_file_size ({storage.max_file_size})")
        used = self.usage(tenant_id)
        if (
            used["bytes"] + size > size_in_bytes(storage.max_data_size)
            or used["files"] >= storage.max_file_count
        ):
            raise StorageQuotaExceeded("the tenant's storage quota is used up")

    def release(self, tenant_id: str, size: int, files: int = 1) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=self.key(tenant_id),
            UpdateExpression="ADD bytes_used :b, files_used :f",
            ExpressionAttributeValues={":b": {"N": str(-size)}, ":f": {"N": str(-files)}},
        )

    def usage(self, tenant_id: str) -> dict[str, int]:
        item = (
            self.client.get_item(TableName=self.table, Key=self.key(tenant_id), ConsistentRead=True).get(
                "Item"
            )
            or {}
        )
        return {
            "bytes": int(item.get("bytes_used", {}).get("N", 0)),
            "files": int(item.get("files_used", {}).get("N", 0)),
        }


class RequestTimedOut(ServiceUnavailable):
    code = "request_timeout"


# Kept before Lambda's timeout: time to answer the 503, release the lease and record the request.
DEADLINE_MARGIN = 1.0
MIN_REQUEST_SECONDS = 0.1


def request_seconds(max_request_duration_ms: int, time_left: float | None) -> float:
    """How long a request may run: the tenant's max_request_duration, capped below the time the
    invocation has left (``time_left`` seconds, None when unknown) by :data:`DEADLINE_MARGIN`."""
    seconds = max_request_duration_ms / 1000
    if time_left is not None:
        seconds = min(seconds, max(MIN_REQUEST_SECONDS, time_left - DEADLINE_MARGIN))
    return seconds


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Stop the enclosed work after ``seconds`` with a 503 (SIGALRM: the main thread only)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise RequestTimedOut(f"the request took longer than max_request_duration ({seconds * 1000:.0f} ms)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


DOMAIN_HEADER = "x-domain"


def check_domain(
    headers: Mapping[str, Any] | None, path_parameters: Mapping[str, Any] | None, quotas: ResourceQuotas
) -> None:
    """403 for a domain (X-Domain header or a {domain} path parameter) the tenant is not entitled to."""
    from tenant_security.errors import Forbidden

    requested = [value] if (value := header(headers, DOMAIN_HEADER)) else []
    requested += [str((path_parameters or {})["domain"])] if (path_parameters or {}).get("domain") else []
    for domain in requested:
        if not quotas.domains.get(domain.strip().lower(), False):
            raise Forbidden(f"the tenant is not entitled to the domain {domain.strip()[:32]!r}")


class QuotaGuard:
    """What the request middleware asks before and after a request behind the authorizer."""

    def __init__(self, limiter: RateLimiter, leases: Leases) -> None:
        self.limiter = limiter
        self.leases = leases

    def run(
        self,
        caller: Any,
        target: Any,
        weight: float,
        event: Mapping[str, Any],
        call: Callable[[], Any],
        time_left: float | None = None,
    ) -> tuple[Any, dict[str, str]]:
        """Admit the request (429 otherwise), hold a lease while ``call()`` runs within the
        tenant's max_request_duration; ``call``'s result and the rate-limit headers.

        ``time_left``: seconds before Lambda's own timeout ends the invocation. The deadline is
        the smaller of the two, less :data:`DEADLINE_MARGIN`, so the request is answered (503) and
        its lease released before Lambda kills it; a lease left by a killed invocation then expires
        seconds after the function's timeout, not max_request_duration (300 s by default) after."""
        check_domain(event.get("headers"), event.get("pathParameters"), target.quotas)
        limits = RateLimits.of(caller.policies, caller.quotas)
        admission = self.limiter.admit(caller.tenant_id, limits, weight)
        if not admission.admitted:
            raise RateLimited(
                f"{caller.tenant_id}: request limit reached ({admission.refused_by})",
                headers=admission.headers(),
            )
        compute = caller.quotas.compute
        seconds = request_seconds(compute.max_request_duration, time_left)
        slot, lease = self.leases.acquire(caller.tenant_id, compute.max_concurrent_requests, seconds + 5)
        try:
            with deadline(seconds):
                result = call()
        finally:
            self.leases.release(caller.tenant_id, slot, lease)
        return result, admission.headers()
