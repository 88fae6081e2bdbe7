"""Throttles for the unauthenticated sign-in steps, each counted by one atomic conditional write.

- **Per source address**: a sliding one-minute window, counted before anything else of the step
  runs -- so a refused attempt costs at most two DynamoDB calls and no password hash. An IPv4 address
  counts alone; an IPv6 address counts with its whole /64 (one host's or one customer's
  allocation: walking through it buys no fresh budget).
- **Per account** (tenant, user name as given): a sliding one-minute window too, counted only
  once the tenant's allow-list admits the address -- a refused address spends its own budgets,
  never the account's. Attempts from refused addresses (and for tenants that do not exist) are
  counted in a window of the same size kept apart, so the caller sees the same throttling
  whether or not the tenant exists. Where the user completed a sign-in in the last 30 days (the
  address is remembered as a hash), the account's window does not stop them: a stranger who
  fills it keeps nobody out from the addresses they usually sign in from.
- **Per (account, address) after wrong passwords**: each attempt of the pair must wait for the
  pair's ``next_at`` (one second at least); every wrong password pushes it further, doubling from
  the third failure on (at most five minutes). The wait is taken by a conditional write, so N
  parallel guesses are admitted one at a time. A stranger elsewhere is not slowed down, and a
  password failure never locks the account: only the MFA step, after a correct password, does.

A sliding window's count is the current minute's attempts plus the previous minute's, weighted
by the part of the previous minute still within the last 60 seconds. A fixed window would let
twice the limit through in the two seconds around a minute's boundary; this one lets at most
the limit through in any such short span (a caller who bursts at a minute's end and then paces
itself still gets about twice the limit over the worst 60 seconds: the sustained rate is the
limit a minute).

Items live in the counters table (``throttle#...`` keys) and expire by TTL.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import is_conditional_failure
from tenant_security.errors import RateLimited

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WINDOW_SECONDS = 60
PAIR_MIN_GAP_SECONDS = 1
PAIR_FREE_FAILURES = 2
PAIR_MAX_DELAY_SECONDS = 300
PAIR_MEMORY_SECONDS = 3600
KNOWN_ADDRESS_SECONDS = 30 * 86400
IPV6_BLOCK_PREFIX = 64
UNKNOWN_ADDRESS = "unknown"
# Closed minutes' counts kept in memory (they no longer change), per execution environment.
_CLOSED_COUNTS_KEPT = 4096


class TooManyAttempts(RateLimited):
    """A sign-in step over a throttle: 429 with ``Retry-After``."""

    code = "too_many_attempts"


def pair_delay(failures: int) -> int:
    """Seconds a (account, address) pair waits after its ``failures``-th wrong password."""
    if failures <= PAIR_FREE_FAILURES:
        return PAIR_MIN_GAP_SECONDS
    return int(min(PAIR_MAX_DELAY_SECONDS, 2 ** (failures - PAIR_FREE_FAILURES)))


def address_block(source_ip: str | None) -> str:
    """What the throttles count an address as: an IPv4 address itself, an IPv6 address's /64
    (an IPv4-mapped IPv6 address as its IPv4 address)."""
    if not source_ip:
        return UNKNOWN_ADDRESS
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return source_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address), IPV6_BLOCK_PREFIX), strict=False))
    return str(address)


def sliding_cap(limit: int, previous: int, elapsed: float) -> float:
    """How many attempts the current minute may hold, ``elapsed`` seconds into it, when the
    previous minute held ``previous``: the previous minute counts for the part of it that is still
    within the last 60 seconds."""
    return limit - previous * (1 - elapsed / WINDOW_SECONDS)


def retry_after(limit: int, previous: int, current: int, elapsed: float) -> int:
    """Whole seconds until a window at ``current`` (and ``previous`` before it) admits again."""
    if current < limit and previous > 0:
        # the previous minute's weight falls until the count is under the limit
        at = WINDOW_SECONDS * (1 - (limit - current) / previous)
        if at < WINDOW_SECONDS:
            return max(1, int(at - elapsed) + 1)
    # Just after the next minute begins: this minute's count then weighs ``current * (1 - t/60)``,
    # under the limit at once (``current`` never passes it).
    return max(1, min(WINDOW_SECONDS, int(WINDOW_SECONDS - elapsed) + 1))


class SignInThrottle:
    """The sign-in throttles (DynamoDB client and counters table given)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        per_address: int,
        per_account: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``per_address``/``per_account``: attempts a minute (every sign-in step counts one)."""
        self.client = client
        self.table = table
        self.per_address = per_address
        self.per_account = per_account
        self.clock = clock
        # (minute, {key: attempts}) of the minute before the current one, swapped as one value
        self._closed: tuple[int, dict[str, int]] = (-1, {})

    # ------------------------------------------------------------------ windows
    def _previous_count(self, pk: str, window: int) -> int:
        """The attempts of ``pk`` in the minute before ``window`` (over, so it no longer changes)."""
        minute, counts = self._closed
        if minute != window - 1:
            minute, counts = window - 1, {}
            self._closed = (minute, counts)
        if pk in counts:
            return counts[pk]
        reply = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": pk}, "sk": {"S": str(minute)}},
            ConsistentRead=True,
            ProjectionExpression="attempts",
        )
        count = int(reply.get("Item", {}).get("attempts", {}).get("N", "0"))
        if len(counts) < _CLOSED_COUNTS_KEPT:
            counts[pk] = count
        return count

    def _admit_window(self, pk: str, limit: int) -> None:
        """Count one attempt in ``pk``'s sliding window; 429 when it holds ``limit`` already."""
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        elapsed = now - window * WINDOW_SECONDS
        previous = self._previous_count(pk, window)
        cap = sliding_cap(limit, previous, elapsed)
        if cap <= 0:  # the previous minute alone fills it: nothing to count
            raise self._too_many(retry_after(limit, previous, 0, elapsed))
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": pk}, "sk": {"S": str(window)}},
                UpdateExpression="ADD attempts :one SET expires_at = :ttl",
                ConditionExpression="attribute_not_exists(attempts) OR attempts < :cap",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":cap": {"N": repr(cap)},
                    # kept through the next minute, which weighs it
                    ":ttl": {"N": str((window + 2) * WINDOW_SECONDS)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            item = getattr(exc, "response", {}).get("Item") or {}
            current = int(item.get("attempts", {}).get("N", limit))
            raise self._too_many(retry_after(limit, previous, current, elapsed)) from None

    @staticmethod
    def _too_many(seconds: int) -> TooManyAttempts:
        return TooManyAttempts(
            "too many sign-in attempts; try again later", headers={"Retry-After": str(seconds)}
        )

    def admit_address(self, source_ip: str | None) -> None:
        """Count one sign-in step of ``source_ip`` (its /64 for IPv6); 429 over the limit."""
        self._admit_window(f"throttle#address#{address_block(source_ip)}", self.per_address)

    def admit_account(
        self, tenant_id: str, username: str, source_ip: str | None, *, outside: bool = False
    ) -> None:
        """Count one sign-in step against the account; 429 over its limit -- except from an address
        the user completed a sign-in from (looked up only then: the common case is one write).

        ``outside``: the tenant's allow-list refused the address, or there is no such tenant. Such
        attempts fill a window of their own: they never keep the user out, yet are throttled alike.
        """
        pk = f"throttle#account#{tenant_id}#{username}" + ("#outside" if outside else "")
        try:
            self._admit_window(pk, self.per_account)
        except TooManyAttempts:
            # looked up in both cases: a refusal costs the same whether or not the tenant exists
            known = self.is_known(tenant_id, username, source_ip)
            if outside or not known:
                raise

    def admit(self, source_ip: str | None, tenant_id: str | None = None, username: str | None = None) -> None:
        """Count one sign-in step of ``source_ip`` and (when known) of the account; 429 over a limit."""
        self.admit_address(source_ip)
        if tenant_id and username:
            self.admit_account(tenant_id, username, source_ip)

    # ------------------------------------------------------------------ known addresses
    def _known_key(self, tenant_id: str, username: str, source_ip: str | None) -> dict[str, Any]:
        # A hash: the table holds no user name or address in clear for 30 days (the one-way
        # function of a small address space hides little from someone who can read the table).
        digest = hashlib.sha256(
            "\x00".join((tenant_id, username, address_block(source_ip))).encode()
        ).hexdigest()
        return {"pk": {"S": f"throttle#known#{digest}"}, "sk": {"S": "address"}}

    def remember_address(self, tenant_id: str, username: str, source_ip: str | None) -> None:
        """The user completed a sign-in from ``source_ip``: for 30 days the account's window does
        not stop them there (the per-address limit and the pair's back-off still do)."""
        if not source_ip:
            return
        now = self.clock()
        self.client.update_item(
            TableName=self.table,
            Key=self._known_key(tenant_id, username, source_ip),
            UpdateExpression="SET expires_at = :ttl",
            ExpressionAttributeValues={":ttl": {"N": str(int(now) + KNOWN_ADDRESS_SECONDS)}},
        )

    def is_known(self, tenant_id: str, username: str, source_ip: str | None) -> bool:
        """True when the user completed a sign-in from ``source_ip`` in the last 30 days."""
        if not source_ip:
            return False
        reply = self.client.get_item(
            TableName=self.table, Key=self._known_key(tenant_id, username, source_ip)
        )
        expires = int(reply.get("Item", {}).get("expires_at", {}).get("N", "0"))
        return expires > self.clock()  # TTL deletes late: an expired item is not known

    # ------------------------------------------------------------------ wrong passwords
    def _pair_key(self, tenant_id: str, username: str, source_ip: str | None) -> dict[str, Any]:
        return {
            "pk": {"S": f"throttle#pair#{tenant_id}#{username}#{address_block(source_ip)}"},
            "sk": {"S": "password"},
        }

    def admit_password(self, tenant_id: str, username: str, source_ip: str | None) -> None:
        """Take the pair's turn (one attempt at a time, after its back-off); 429 while it waits."""
        now = self.clock()
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._pair_key(tenant_id, username, source_ip),
                UpdateExpression="SET next_at = :next, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(next_at) OR next_at <= :now",
                ExpressionAttributeValues={
                    ":now": {"N": repr(now)},
                    ":next": {"N": repr(now + PAIR_MIN_GAP_SECONDS)},
                    ":ttl": {"N": str(int(now) + PAIR_MEMORY_SECONDS)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            waiting = float(
                (getattr(exc, "response", {}).get("Item") or {}).get("next_at", {}).get("N", now + 1)
            )
            raise self._too_many(max(1, int(waiting - now + 0.999))) from None

    def password_failed(self, tenant_id: str, username: str, source_ip: str | None) -> int:
        """One more wrong password of the pair: its back-off grows. The pair's failures so far."""
        now = self.clock()
        reply = self.client.update_item(
            TableName=self.table,
            Key=self._pair_key(tenant_id, username, source_ip),
            UpdateExpression="ADD failures :one SET expires_at = :ttl",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":ttl": {"N": str(int(now) + PAIR_MEMORY_SECONDS)},
            },
            ReturnValues="UPDATED_NEW",
        )
        failures = int(reply["Attributes"]["failures"]["N"])
        self.client.update_item(
            TableName=self.table,
            Key=self._pair_key(tenant_id, username, source_ip),
            UpdateExpression="SET next_at = :next",
            ExpressionAttributeValues={":next": {"N": repr(now + pair_delay(failures))}},
        )
        return failures

    def password_succeeded(self, tenant_id: str, username: str, source_ip: str | None) -> None:
        """The pair knows the password: its back-off is forgotten."""
        self.client.delete_item(TableName=self.table, Key=self._pair_key(tenant_id, username, source_ip))
