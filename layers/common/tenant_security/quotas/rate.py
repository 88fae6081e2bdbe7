"""Request rate and cost, one atomic write per request.

**Windows**: one item per tenant (per shard) per month,
``{pk: "quota#<tenant>#<shard>", sk: "<YYYY-MM>"}``, holds the current second, minute, hour and
day windows (each a window number and a count), the day's and the month's spend: well under 1 KB,
and it expires by TTL after the month. A request is admitted by **one** conditional UpdateItem
that increments every window and checks every limit at once (burst per second, per minute, per
hour, per day, the daily cost limit and the monthly budget). Which windows roll over is decided
from the item's stored window numbers; when that guess is stale the failed write returns the item
as it is (ReturnValuesOnConditionCheckFailure) and the write is made once more with the right
shape, so a refusal always names the limit that was really reached.

**Money**: a request's cost is its route's estimated AWS cost (authz/route_costs.py) and the
quotas' ``cost`` figures are US dollars. Both are counted as whole **nano-dollars** (integers):
DynamoDB adds decimals exactly, but a float limit compared with a float sum drifts, and
micro-dollars would round a $0.0000035 API Gateway request by 14 %. ``dspend`` (the day's) and
``mspend`` (the month's, the item being the month's) are the sums; a request is admitted only if
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

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import is_conditional_failure
from tenant_security.errors import ServiceUnavailable
from tenant_security.models.policies import SecurityPolicies
from tenant_security.models.quotas import ResourceQuotas

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WRITES_PER_SHARD = 500
NANOS_PER_USD = Decimal(1_000_000_000)


def nanodollars(usd: float) -> int:
    """US dollars (a document's figure) as whole nano-dollars, to the nearest one."""
    return int((Decimal(repr(float(usd))) * NANOS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def dollars(nanos: int) -> float:
    """Nano-dollars as US dollars."""
    return float(Decimal(nanos) / NANOS_PER_USD)


_WINDOWS = (("s", 1), ("m", 60), ("h", 3600), ("d", 86400))
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


@dataclass(frozen=True)
class Admission:
    """The outcome of a rate check, with what the X-RateLimit headers report (the minute window)."""

    admitted: bool
    limit: int
    remaining: int
    reset_seconds: int
    refused_by: str = ""
    month_cost: int = 0  # nano-dollars, this shard's

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

    def admit(self, tenant_id: str, limits: RateLimits, weight: int) -> Admission:
        """Count one request of cost ``weight`` (nano-dollars), or refuse it (nothing counted)."""
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
        self, tenant_id: str, shard: int, limits: RateLimits, weight: int, now: float
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
                month_cost=int(item["mspend"]["N"]),
            )
        raise ServiceUnavailable("the rate counter kept changing; try again")

    @staticmethod
    def _shape(
        stored: dict[str, int] | None, current: dict[str, int], limits: RateLimits, weight: int, now: float
    ) -> tuple[str, str, dict[str, Any]]:
        """The update and condition for ``stored`` windows: counts in a current window are
        incremented under their cap, rolled windows start again at one."""
        caps = {"s": limits.per_second, "m": limits.per_minute, "h": limits.per_hour, "d": limits.per_day}
        never = "attribute_not_exists(pk) AND attribute_exists(pk)"
        values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":w": {"N": str(weight)},
            ":zero": {"N": "0"},
            ":ttl": {"N": str(_month_end(now) + 7 * 86400)},
        }
        sets, conditions = ["expires_at = :ttl"], []
        if weight > limits.daily_cost or weight > limits.monthly_budget:
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
        # (an item written before spend was counted in dollars has no dspend/mspend: it starts at 0)
        if stored is not None and stored.get("d") == current["d"]:
            values[":maxday"] = {"N": str(limits.daily_cost - weight)}
            sets.append("dspend = if_not_exists(dspend, :zero) + :w")
            conditions.append("attribute_not_exists(dspend) OR dspend <= :maxday")
        else:
            sets.append("dspend = :w")
        values[":maxmonth"] = {"N": str(limits.monthly_budget - weight)}
        sets.append("mspend = if_not_exists(mspend, :zero) + :w")
        conditions.append("attribute_not_exists(mspend) OR mspend <= :maxmonth")
        return "SET " + ", ".join(sets), " AND ".join(f"({c})" for c in conditions), values

    @staticmethod
    def _refusal(
        old: dict[str, Any], current: dict[str, int], limits: RateLimits, weight: int, now: float
    ) -> Admission:
        caps = {"s": limits.per_second, "m": limits.per_minute, "h": limits.per_hour, "d": limits.per_day}
        resets = {"s": 1, "m": 60 - int(now) % 60, "h": 3600 - int(now) % 3600, "d": 86400 - int(now) % 86400}
        minute_used = (
            int(old.get("mc", {}).get("N", 0)) if int(old.get("m", {}).get("N", -1)) == current["m"] else 0
        )
        month_spent = int(old.get("mspend", {}).get("N", 0))
        by = "budget" if month_spent + weight > limits.monthly_budget else "cost"
        for name, _ in reversed(_WINDOWS):  # the longest full window decides when to retry
            used = (
                int(old.get(f"{name}c", {}).get("N", 0))
                if int(old.get(name, {}).get("N", -1)) == current[name]
                else 0
            )
            if used >= caps[name]:
                by = name
                break
        # the budget: the month's spend, so the next month's first request is admitted
        resets.update(cost=resets["d"], budget=_month_end(now) - int(now))
        reset = resets[by]
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
        ``month_cost``, and ``spend``: what is left of each limit)."""
        now = self.clock()
        current = {name: int(now // size) for name, size in _WINDOWS}
        totals = {"second": 0, "minute": 0, "hour": 0, "day": 0}
        names = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
        day_spend = month_spend = 0
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
                day_spend += int(item.get("dspend", {}).get("N", 0))
            month_spend += int(item.get("mspend", {}).get("N", 0))
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
