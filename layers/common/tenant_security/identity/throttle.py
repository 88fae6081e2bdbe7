"""Throttles for the unauthenticated sign-in steps, each one atomic conditional write.

- **Per source address and per account** (tenant, user name as given): a one-minute window
  counter each, both checked and counted by one transaction, before anything else of the step
  runs -- so a refused attempt costs one DynamoDB call and no password hash.
- **Per (account, address) after wrong passwords**: each attempt of the pair must wait for the
  pair's ``next_at`` (one second at least); every wrong password pushes it further, doubling from
  the third failure on (at most five minutes). The wait is taken by a conditional write, so N
  parallel guesses are admitted one at a time. A stranger elsewhere is not slowed down, and a
  password failure never locks the account: only the MFA step, after a correct password, does.

Items live in the counters table (``throttle#...`` keys) and expire by TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tenant_security.dynamo import is_conditional_failure
from tenant_security.errors import RateLimited

WINDOW_SECONDS = 60
PAIR_MIN_GAP_SECONDS = 1
PAIR_FREE_FAILURES = 2
PAIR_MAX_DELAY_SECONDS = 300
PAIR_MEMORY_SECONDS = 3600
UNKNOWN_ADDRESS = "unknown"


class TooManyAttempts(RateLimited):
    """A sign-in step over a throttle: 429 with ``Retry-After``."""

    code = "too_many_attempts"


def pair_delay(failures: int) -> int:
    """Seconds a (account, address) pair waits after its ``failures``-th wrong password."""
    if failures <= PAIR_FREE_FAILURES:
        return PAIR_MIN_GAP_SECONDS
    return int(min(PAIR_MAX_DELAY_SECONDS, 2 ** (failures - PAIR_FREE_FAILURES)))


class SignInThrottle:
    """The sign-in throttles (DynamoDB client and counters table given)."""

    def __init__(
        self,
        client: Any,
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

    # ------------------------------------------------------------------ windows
    def _window_update(self, pk: str, cap: int, window: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": pk}, "sk": {"S": str(window)}},
                "UpdateExpression": "ADD attempts :one SET expires_at = :ttl",
                "ConditionExpression": "attribute_not_exists(attempts) OR attempts < :cap",
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":cap": {"N": str(cap)},
                    ":ttl": {"N": str((window + 2) * WINDOW_SECONDS)},
                },
            }
        }

    def admit(self, source_ip: str | None, tenant_id: str | None = None, username: str | None = None) -> None:
        """Count one sign-in step of ``source_ip`` (and of the account, when known); 429 over a limit."""
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        writes = [
            self._window_update(f"throttle#address#{source_ip or UNKNOWN_ADDRESS}", self.per_address, window)
        ]
        if tenant_id and username:
            writes.append(
                self._window_update(f"throttle#account#{tenant_id}#{username}", self.per_account, window)
            )
        try:
            self.client.transact_write_items(TransactItems=writes)
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            retry = WINDOW_SECONDS - int(now) % WINDOW_SECONDS
            raise TooManyAttempts(
                "too many sign-in attempts; try again later", headers={"Retry-After": str(max(1, retry))}
            ) from None

    # ------------------------------------------------------------------ wrong passwords
    def _pair_key(self, tenant_id: str, username: str, source_ip: str | None) -> dict[str, Any]:
        return {
            "pk": {"S": f"throttle#pair#{tenant_id}#{username}#{source_ip or UNKNOWN_ADDRESS}"},
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
            raise TooManyAttempts(
                "too many sign-in attempts; try again later",
                headers={"Retry-After": str(max(1, int(waiting - now + 0.999)))},
            ) from None

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
