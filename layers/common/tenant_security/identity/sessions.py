"""Sessions in DynamoDB (key: tenant_id, session_id), expiring by TTL.

The tenant's ``max_concurrent_sessions`` and ``max_sessions_per_user`` are enforced atomically: a
session is created in one transaction with a conditional increment of the tenant's and the user's
active-session counters (so one user cannot take every slot of the tenant). Revocation
decrements both in the same transaction that marks the session revoked. Sessions that expire by
TTL are not seen by the counters, so when a limit seems reached the counters are first reconciled
with the live sessions (a conditional set, so concurrent sign-ins cannot both pass it) and the
sign-in is tried once more. Reads of a session are consistent: a revocation is seen by the very
next request, and the listing that revokes every session of a tenant or user reads consistently
too (a session created a moment ago is not missed).

A session is created only while what it was made from still holds: the caller passes the
conditions (the user as read, the tenant still active) and they are checked in the creating
transaction. A demotion, password change or suspension that lands between the sign-in reading
the user and the session starting makes the creation fail (:class:`ChangedMeanwhile`) instead of
leaving a session that the change's revocation never saw.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tenant_security.dynamo import from_item, is_conditional_failure, query_pages, to_item
from tenant_security.errors import DomainError, Unauthorized

# The creating transaction's own items (tenant counter, user counter, session); the caller's
# conditions follow them.
_OWN_ITEMS = 3
# DynamoDB's limit of items in one TransactWriteItems.
_MAX_TRANSACTION_ITEMS = 100
_CHECK_FAILED = "ConditionalCheckFailed"


class SessionLimitReached(DomainError):
    status, code = 403, "session_limit_reached"


class ChangedMeanwhile(Unauthorized):
    """A condition of the session (the user as read, the tenant active) no longer held when it
    was to be created: no session was created."""

    def __init__(self) -> None:
        super().__init__("invalid credentials")


class _Outcome(Enum):
    CREATED = "created"
    FULL = "full"
    CHANGED = "changed"


@dataclass(frozen=True)
class Session:
    tenant_id: str
    session_id: str
    username: str
    amr: list[str]
    scope: str
    created_at: int
    expires_at: int
    revoked: bool = False

    def live(self, now: float) -> bool:
        return not self.revoked and self.expires_at > now


def _session(item: dict[str, Any]) -> Session:
    values = from_item(item)
    values["amr"] = list(values.get("amr", []))
    return Session(**{k: v for k, v in values.items() if k in Session.__dataclass_fields__})


class SessionStore:
    """The sessions table and the per-tenant active-session counter."""

    def __init__(
        self, client: Any, table: str, counters_table: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.table = table
        self.counters_table = counters_table
        self.clock = clock

    def _counter_key(self, tenant_id: str, username: str | None = None) -> dict[str, Any]:
        """The tenant's active-session counter, or (with ``username``) the user's."""
        return {
            "pk": {"S": f"sessions#{tenant_id}"},
            "sk": {"S": f"user#{username}" if username else "active"},
        }

    def _key(self, tenant_id: str, session_id: str) -> dict[str, Any]:
        return {"tenant_id": {"S": tenant_id}, "session_id": {"S": session_id}}

    def create(
        self,
        tenant_id: str,
        username: str,
        amr: list[str],
        scope: str,
        timeout_minutes: int,
        max_sessions: int,
        max_per_user: int | None = None,
        conditions: Sequence[Mapping[str, Any]] = (),
    ) -> Session:
        """A new session; 403 ``session_limit_reached`` when the tenant has ``max_sessions`` live
        ones, or the user ``max_per_user``; :class:`ChangedMeanwhile` (401) when one of
        ``conditions`` (``ConditionCheck`` transaction items) does not hold."""
        now = int(self.clock())
        session = Session(
            tenant_id=tenant_id,
            session_id=secrets.token_urlsafe(24),
            username=username,
            amr=list(amr),
            scope=scope,
            created_at=now,
            expires_at=now + timeout_minutes * 60,
        )
        per_user = max_per_user if max_per_user is not None else max_sessions
        for attempt in range(2):
            outcome = self._try_create(session, max_sessions, per_user, conditions)
            if outcome is _Outcome.CREATED:
                return session
            if outcome is _Outcome.CHANGED:
                raise ChangedMeanwhile
            if attempt == 0 and not (self._reconcile(tenant_id) | self._reconcile(tenant_id, username)):
                break
        raise SessionLimitReached(
            f"at most {max_sessions} concurrent sessions per tenant and {per_user} per user"
        )

    def _increment(self, key: dict[str, Any], limit: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.counters_table,
                "Key": key,
                "UpdateExpression": "SET active = if_not_exists(active, :zero) + :one",
                "ConditionExpression": "attribute_not_exists(active) OR active < :max",
                "ExpressionAttributeValues": {
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":max": {"N": str(limit)},
                },
            }
        }

    def _try_create(
        self, session: Session, max_sessions: int, max_per_user: int, conditions: Sequence[Mapping[str, Any]]
    ) -> _Outcome:
        item = dict(session.__dict__)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    self._increment(self._counter_key(session.tenant_id), max_sessions),
                    self._increment(self._counter_key(session.tenant_id, session.username), max_per_user),
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": to_item(item),
                            "ConditionExpression": "attribute_not_exists(session_id)",
                        }
                    },
                    *(dict(c) for c in conditions),
                ]
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            if any(r.get("Code") == _CHECK_FAILED for r in reasons[_OWN_ITEMS:]):
                return _Outcome.CHANGED
            return _Outcome.FULL
        return _Outcome.CREATED

    def _live_count(self, tenant_id: str, username: str | None = None) -> int:
        now = int(self.clock())
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

    def _reconcile(self, tenant_id: str, username: str | None = None) -> bool:
        """Set a counter to the live sessions if it counts more; True if it went down."""
        key = self._counter_key(tenant_id, username)
        reply = self.client.get_item(TableName=self.counters_table, Key=key, ConsistentRead=True)
        seen = int(reply.get("Item", {}).get("active", {}).get("N", "0"))
        live = self._live_count(tenant_id, username)
        if live >= seen:
            return False
        try:
            self.client.update_item(
                TableName=self.counters_table,
                Key=key,
                UpdateExpression="SET active = :live",
                ConditionExpression="active = :seen",
                ExpressionAttributeValues={":live": {"N": str(live)}, ":seen": {"N": str(seen)}},
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
        return True

    def get(self, tenant_id: str, session_id: str) -> Session | None:
        """The session, or None (a consistent read: a revocation just made is seen)."""
        reply = self.client.get_item(
            TableName=self.table, Key=self._key(tenant_id, session_id), ConsistentRead=True
        )
        item = reply.get("Item")
        return _session(item) if item else None

    def is_live(self, tenant_id: str, session_id: str) -> bool:
        """True for a session that exists, is not revoked and has not expired."""
        session = self.get(tenant_id, session_id)
        return session is not None and session.live(self.clock())

    def revoke(self, tenant_id: str, session_id: str, username: str | None = None) -> bool:
        """Revoke a live session (and free its slots); False if it was not live."""
        if username is None:
            found = self.get(tenant_id, session_id)
            if found is None:
                return False
            username = found.username
        return self._revoke_together(tenant_id, [(session_id, username)]) == 1

    def _end(self, tenant_id: str, session_id: str, username: str, now: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(tenant_id, session_id),
                "UpdateExpression": "SET revoked = :true",
                "ConditionExpression": "revoked = :false AND expires_at > :now AND username = :u",
                "ExpressionAttributeValues": {
                    ":true": {"BOOL": True},
                    ":false": {"BOOL": False},
                    ":now": {"N": str(now)},
                    ":u": {"S": username},
                },
            }
        }

    def _decrement(self, key: dict[str, Any], by: int) -> dict[str, Any]:
        # (a session created before per-user counting has no user counter: it stays absent)
        return {
            "Update": {
                "TableName": self.counters_table,
                "Key": key,
                "UpdateExpression": "SET active = if_not_exists(active, :by) - :by",
                "ConditionExpression": "attribute_not_exists(active) OR active >= :by",
                "ExpressionAttributeValues": {":by": {"N": str(by)}},
            }
        }

    def _revoke_together(self, tenant_id: str, sessions: Sequence[tuple[str, str]]) -> int:
        """Revoke ``(session_id, username)`` pairs in one transaction with their counters; how
        many were revoked. When the transaction is cancelled, each session is revoked on its own:
        one that stopped being live is skipped, and a counter that already counts too few never
        keeps a session alive (revocation wins over bookkeeping; reconciliation fixes counts)."""
        now = int(self.clock())
        per_user: dict[str, int] = {}
        for _, username in sessions:
            per_user[username] = per_user.get(username, 0) + 1
        try:
            self.client.transact_write_items(
                TransactItems=[
                    *(self._end(tenant_id, sid, username, now) for sid, username in sessions),
                    self._decrement(self._counter_key(tenant_id), len(sessions)),
                    *(self._decrement(self._counter_key(tenant_id, u), n) for u, n in per_user.items()),
                ]
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            not_live = {
                i for i, reason in enumerate(reasons[: len(sessions)]) if reason.get("Code") == _CHECK_FAILED
            }
            if not reasons:  # no reasons given: find out one by one
                not_live = set() if len(sessions) > 1 else {0}
            if not_live:  # those ended meanwhile: the rest again, together
                rest = [pair for i, pair in enumerate(sessions) if i not in not_live]
                return self._revoke_together(tenant_id, rest) if rest else 0
            if len(sessions) > 1:  # a counter counts too few: each on its own
                return sum(self._revoke_together(tenant_id, [pair]) for pair in sessions)
            return self._end_alone(tenant_id, *sessions[0], now)
        return len(sessions)

    def _end_alone(self, tenant_id: str, session_id: str, username: str, now: int) -> int:
        """Revoke a live session whose counters could not be decremented (1, or 0 if not live)."""
        try:
            self.client.update_item(**self._end(tenant_id, session_id, username, now)["Update"])
        except Exception as exc:
            if is_conditional_failure(exc):
                return 0
            raise
        return 1

    def list_live(self, tenant_id: str, username: str | None = None) -> list[Session]:
        """The tenant's live sessions (of one user when ``username`` is given), read consistently:
        revoking them all must not miss one created a moment ago."""
        now = self.clock()
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="tenant_id = :t",
            ExpressionAttributeValues={":t": {"S": tenant_id}},
            ConsistentRead=True,
        )
        sessions = (_session(item) for page in pages for item in page.get("Items", []))
        return [s for s in sessions if s.live(now) and (username is None or s.username == username)]

    def revoke_all(self, tenant_id: str, username: str | None = None) -> int:
        """Revoke every live session of the tenant (or of one user); how many were revoked.

        Sessions are revoked a transaction of up to 100 items at a time (sessions, the tenant's
        counter and each of their users' counters), so an incident's "end every session" stays a
        few calls for a tenant with thousands of sessions."""
        batches: list[list[tuple[str, str]]] = [[]]
        users: set[str] = set()
        for session in sorted(self.list_live(tenant_id, username), key=lambda s: s.username):
            batch = batches[-1]
            grown_users = users | {session.username}
            if batch and len(batch) + 1 + 1 + len(grown_users) > _MAX_TRANSACTION_ITEMS:
                batches.append(batch := [])
                grown_users = {session.username}
            batch.append((session.session_id, session.username))
            users = grown_users
        return sum(self._revoke_together(tenant_id, batch) for batch in batches if batch)
