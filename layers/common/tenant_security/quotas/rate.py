"""Request rate and cost, one atomic write per request.

**Windows**: one item per tenant (per shard) per month,
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
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import is_conditional_failure
from tenant_security.errors import ServiceUnavailable
from tenant_security.models.policies import SecurityPolicies
from tenant_security.models.quotas import ResourceQuotas

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WRITES_PER_SHARD = 500
_WINDOWS = (("s", 1), ("m", 60), ("h", 3600), ("d", 86400))


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
        client: DynamoDBClient,
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
