"""The active-session counters of a tenant and of each of its users (in the counters table).

Sign-in increments both in the transaction that creates a session, revocation decrements both
in the one that ends it; every write bumps a ``version``. Sessions that expire by TTL are not
seen by the counters, so a sign-in that finds a limit reached first reconciles them with the
live sessions -- conditional on the version read, so a revocation and a sign-in landing in
between cannot leave a counter too low.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import is_conditional_failure, query_pages

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


# How far apart two hosts' clocks may be (Lambda hosts keep theirs in sync well within it).
CLOCK_SKEW_SECONDS = 5


class SessionCounters:
    """The counters beside the sessions table (``counters_table``), counted from ``table``."""

    def __init__(
        self, client: DynamoDBClient, table: str, counters_table: str, clock: Callable[[], float]
    ) -> None:
        self.client = client
        self.table = table
        self.counters_table = counters_table
        self.clock = clock

    def key(self, tenant_id: str, username: str | None = None) -> dict[str, Any]:
        """The tenant's active-session counter, or (with ``username``) the user's."""
        return {
            "pk": {"S": f"sessions#{tenant_id}"},
            "sk": {"S": f"user#{username}" if username else "active"},
        }

    def increment(self, key: dict[str, Any], limit: int) -> TransactWriteItemTypeDef:
        """The transaction item adding one session to ``key``'s counter, below ``limit``."""
        return {
            "Update": {
                "TableName": self.counters_table,
                "Key": key,
                "UpdateExpression": (
                    "SET active = if_not_exists(active, :zero) + :one, "
                    "version = if_not_exists(version, :zero) + :one"
                ),
                "ConditionExpression": "attribute_not_exists(active) OR active < :max",
                "ExpressionAttributeValues": {
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":max": {"N": str(limit)},
                },
            }
        }

    def decrement(self, key: dict[str, Any], by: int) -> TransactWriteItemTypeDef:
        """The transaction item taking ``by`` sessions off ``key``'s counter (never below 0)."""
        # (a session created before per-user counting has no user counter: it stays absent)
        return {
            "Update": {
                "TableName": self.counters_table,
                "Key": key,
                "UpdateExpression": (
                    "SET active = if_not_exists(active, :by) - :by, "
                    "version = if_not_exists(version, :zero) + :one"
                ),
                "ConditionExpression": "attribute_not_exists(active) OR active >= :by",
                "ExpressionAttributeValues": {":by": {"N": str(by)}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
            }
        }

    def live_count(self, tenant_id: str, username: str | None = None) -> int:
        """The live sessions of the tenant (or of one user), counted consistently; a session that
        expired less than a clock skew ago still counts (another host's revocation may yet see it
        live and decrement: a counter left high is safe, one left low lets a limit be passed)."""
        now = int(self.clock()) - CLOCK_SKEW_SECONDS
        values: dict[str, Any] = {":t": {"S": tenant_id}, ":now": {"N": str(now)}, ":false": {"BOOL": False}}
        condition = "expires_at > :now AND revoked = :false"
        if username is not None:
            values[":u"] = {"S": username}
            condition += " AND username = :u"
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="tenant_id = :t",
            FilterExpression=condition,
            ExpressionAttributeValues=values,
            Select="COUNT",
            ConsistentRead=True,
        )
        return sum(int(page.get("Count", 0)) for page in pages)

    def reconcile(self, tenant_id: str, username: str | None = None) -> bool:
        """Set a counter to the live sessions if it counts more; True if it went down.

        The set is conditional on the counter's version, which every sign-in and revocation
        bumps: a revocation and a sign-in landing between the read and the count leave the count
        equal to what was read, but not the version (the set would leave the counter one low)."""
        key = self.key(tenant_id, username)
        reply = self.client.get_item(TableName=self.counters_table, Key=key, ConsistentRead=True)
        counter = reply.get("Item", {})
        seen = int(counter.get("active", {}).get("N", "0"))
        live = self.live_count(tenant_id, username)
        if live >= seen:
            return False
        values: dict[str, Any] = {
            ":live": {"N": str(live)},
            ":seen": {"N": str(seen)},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
        }
        unchanged = "active = :seen AND attribute_not_exists(version)"
        if "version" in counter:
            values[":version"] = counter["version"]
            unchanged = "active = :seen AND version = :version"
        try:
            self.client.update_item(
                TableName=self.counters_table,
                Key=key,
                UpdateExpression="SET active = :live, version = if_not_exists(version, :zero) + :one",
                ConditionExpression=unchanged,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
        return True
