"""Unauthenticated refusals, counted per source address and minute into one audit record each.

A flood of garbage tokens, or of sign-ins for accounts that do not exist, must not become one
`Security Alert` (an e-mail and an audit record) per request, with the audit writer serial per
chain. Each such refusal is one atomic counter update instead::

    {pk: "refusals#<minute>", sk: "<tenant or ->#<kind>#<address>", attempts, first_at, last_at}

and once the minute is over, the audit writer appends one record per counter with its count (as
`Security Alert` ``unauthenticated_refusals``, idempotent per minute, kind and address). Callers
who proved who they are keep their per-event records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tenant_security.alerts import AlertKind
from tenant_security.dynamo import query_pages

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MINUTE = 60
KEEP_SECONDS = 2 * 86400  # counters not flushed by then are gone (TTL)
_NOBODY = "-"


class RefusalKind(StrEnum):
    """What was refused before anyone was authenticated."""

    INVALID_TOKEN = "invalid_token"  # noqa: S105 - a kind of refusal
    UNKNOWN_ACCOUNT = "unknown_account"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class RefusalCount:
    """One (minute, tenant, kind, address) counter."""

    minute: int
    tenant_id: str | None
    kind: str
    source_ip: str
    attempts: int
    first_at: float
    last_at: float
    sample: str

    @property
    def event_id(self) -> str:
        """The summary record's idempotency key: one record per counter, however often flushed."""
        return f"refusals:{self.minute}:{self.tenant_id or _NOBODY}:{self.kind}:{self.source_ip}"

    def event(self, source: str, platform_tenant: str) -> dict[str, Any]:
        """The summary as the EventBridge event the audit writer appends."""
        return {
            "id": self.event_id,
            "source": source,
            "detail-type": "Security Alert",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_at)),
            "detail": {
                "event_id": self.event_id,
                "tenant_id": self.tenant_id or platform_tenant,
                "alert": AlertKind.UNAUTHENTICATED_REFUSALS,
                "outcome": "denied",
                "reason": self.kind,
                "source_ip": self.source_ip,
                "attempts": self.attempts,
                "minute": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(self.minute * MINUTE)),
                "first_at": self.first_at,
                "last_at": self.last_at,
                "sample": self.sample,
            },
        }


class RefusalCounter:
    """The per-minute counters (DynamoDB client and counters table given)."""

    def __init__(self, client: DynamoDBClient, table: str, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table = table
        self.clock = clock

    def count(self, kind: str, source_ip: str | None, tenant_id: str | None = None, sample: str = "") -> None:
        """One more refusal of ``kind`` from ``source_ip`` this minute (one atomic write)."""
        now = self.clock()
        minute = int(now // MINUTE)
        self.client.update_item(
            TableName=self.table,
            Key={
                "pk": {"S": f"refusals#{minute}"},
                "sk": {"S": f"{tenant_id or _NOBODY}#{kind}#{source_ip or 'unknown'}"},
            },
            UpdateExpression="ADD attempts :one SET first_at = if_not_exists(first_at, :now), "
            "last_at = :now, sample_request = if_not_exists(sample_request, :sample), expires_at = :ttl",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":now": {"N": repr(now)},
                ":sample": {"S": sample[:200] or _NOBODY},
                ":ttl": {"N": str(int(now) + KEEP_SECONDS)},
            },
        )

    def of_minute(self, minute: int) -> Iterator[RefusalCount]:
        """Every counter of one minute."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"refusals#{minute}"}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                tenant, kind, address = item["sk"]["S"].split("#", 2)
                yield RefusalCount(
                    minute=minute,
                    tenant_id=None if tenant == _NOBODY else tenant,
                    kind=kind,
                    source_ip=address,
                    attempts=int(item["attempts"]["N"]),
                    first_at=float(item["first_at"]["N"]),
                    last_at=float(item["last_at"]["N"]),
                    sample=item.get("sample_request", {}).get("S", _NOBODY),
                )

    def finished_minutes(self, after: int, limit: int = 60) -> list[int]:
        """The minutes after ``after`` that are over (at most ``limit``, the oldest first)."""
        current = int(self.clock() // MINUTE)
        first = max(after + 1, current - KEEP_SECONDS // MINUTE)
        return list(range(first, current))[:limit]


def overflow_event(
    minute: int, counts: list[RefusalCount], source: str, platform_tenant: str
) -> dict[str, Any]:
    """One summary of the counters of a minute beyond the per-minute records (a distributed
    flood): how many addresses and attempts, on the platform's chain."""
    event_id = f"refusals:{minute}:overflow"
    kinds: dict[str, int] = {}
    for count in counts:
        kinds[count.kind] = kinds.get(count.kind, 0) + count.attempts
    return {
        "id": event_id,
        "source": source,
        "detail-type": "Security Alert",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((minute + 1) * MINUTE)),
        "detail": {
            "event_id": event_id,
            "tenant_id": platform_tenant,
            "alert": AlertKind.UNAUTHENTICATED_REFUSALS,
            "outcome": "denied",
            "reason": "more sources than one record each",
            "addresses": len(counts),
            "attempts": sum(c.attempts for c in counts),
            "tenants": len({c.tenant_id for c in counts}),
            "minute": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(minute * MINUTE)),
            **{f"attempts_{kind}": n for kind, n in sorted(kinds.items())},
        },
    }
