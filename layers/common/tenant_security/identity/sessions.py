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
from typing import TYPE_CHECKING, Any, cast

from tenant_security.dynamo import (
    CONTENTION_CODES,
    cancellation_codes,
    from_item,
    is_conditional_failure,
    query_pages,
    to_item,
)
from tenant_security.errors import DomainError, Unauthorized
from tenant_security.identity.session_counters import SessionCounters

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# The creating transaction's own items (tenant counter, user counter, session); the caller's
# conditions follow them.
_OWN_ITEMS = 3
# DynamoDB's limit of items in one TransactWriteItems.
_MAX_TRANSACTION_ITEMS = 100
_CHECK_FAILED = "ConditionalCheckFailed"
# Retries of a revocation that met another write on the same item (TransactionConflict).
_CONTENTION_RETRIES = 4
_BACKOFF_SECONDS = 0.05
_jitter = secrets.SystemRandom()
# What a session keeps of its client: a User-Agent is rarely over 200 characters; an IPv6 address
# in text is at most 45.
MAX_USER_AGENT_CHARS = 256
MAX_SOURCE_IP_CHARS = 64


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
    # Where the session was started from, as the sign-in request said (sessions older than these
    # fields read None). Personal data of the user: shown to them and their security-admins,
    # exported by GDPR art. 15, never logged.
    source_ip: str | None = None
    user_agent: str | None = None

    def live(self, now: float) -> bool:
        return not self.revoked and self.expires_at > now

    def live_within(self, timeout_minutes: int, now: float) -> bool:
        """Live, and younger than ``timeout_minutes`` (the policy's session timeout as it is now:
        a shortened one ends the sessions already older than it)."""
        return self.live(now) and now - self.created_at < timeout_minutes * 60


def client_text(value: str | None, limit: int) -> str | None:
    """A client-supplied header value as a session keeps it: printable characters only, at most
    ``limit`` of them (a 10 KB User-Agent must not grow every session item); None when empty."""
    if not value:
        return None
    kept = "".join(c for c in value if c.isprintable()).strip()[:limit]
    return kept or None


def _session(item: dict[str, Any]) -> Session:
    values = from_item(item)
    values["amr"] = list(values.get("amr", []))
    return Session(**{k: v for k, v in values.items() if k in Session.__dataclass_fields__})


class SessionStore:
    """The sessions table and the per-tenant active-session counter."""

    def __init__(
        self, client: DynamoDBClient, table: str, counters_table: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.table = table
        self.counters_table = counters_table
        self.clock = clock
        self.counters = SessionCounters(client, table, counters_table, clock)

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
        source_ip: str | None = None,
        user_agent: str | None = None,
    ) -> Session:
        """A new session; 403 ``session_limit_reached`` when the tenant has ``max_sessions`` live
        ones, or the user ``max_per_user``; :class:`ChangedMeanwhile` (401) when one of
        ``conditions`` (``ConditionCheck`` transaction items) does not hold. ``source_ip`` and
        ``user_agent``: the signing-in request's (kept shortened, see :func:`client_text`)."""
        now = int(self.clock())
        session = Session(
            tenant_id=tenant_id,
            session_id=secrets.token_urlsafe(24),
            username=username,
            amr=list(amr),
            scope=scope,
            created_at=now,
            expires_at=now + timeout_minutes * 60,
            source_ip=client_text(source_ip, MAX_SOURCE_IP_CHARS),
            user_agent=client_text(user_agent, MAX_USER_AGENT_CHARS),
        )
        per_user = max_per_user if max_per_user is not None else max_sessions
        for attempt in range(2):
            outcome = self._try_create(session, max_sessions, per_user, conditions)
            if outcome is _Outcome.CREATED:
                return session
            if outcome is _Outcome.CHANGED:
                raise ChangedMeanwhile
            if attempt == 0 and not (
                self.counters.reconcile(tenant_id) | self.counters.reconcile(tenant_id, username)
            ):
                break
        raise SessionLimitReached(
            f"at most {max_sessions} concurrent sessions per tenant and {per_user} per user"
        )

    def _try_create(
        self, session: Session, max_sessions: int, max_per_user: int, conditions: Sequence[Mapping[str, Any]]
    ) -> _Outcome:
        item = dict(session.__dict__)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    self.counters.increment(self.counters.key(session.tenant_id), max_sessions),
                    self.counters.increment(
                        self.counters.key(session.tenant_id, session.username), max_per_user
                    ),
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": to_item(item),
                            "ConditionExpression": "attribute_not_exists(session_id)",
                        }
                    },
                    # the callers' ConditionCheck items, copied as given
                    *(cast("TransactWriteItemTypeDef", dict(c)) for c in conditions),
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

    def get(self, tenant_id: str, session_id: str) -> Session | None:
        """The session, or None (a consistent read: a revocation just made is seen). An empty id
        (a token without a session, such as an API client's) names none."""
        if not session_id or not tenant_id:
            return None
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

    def _end(self, tenant_id: str, session_id: str, username: str, now: int) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(tenant_id, session_id),
                # an ended session keeps nothing of its client (the trail has each request's)
                "UpdateExpression": "SET revoked = :true REMOVE source_ip, user_agent",
                "ConditionExpression": "revoked = :false AND expires_at > :now AND username = :u",
                "ExpressionAttributeValues": {
                    ":true": {"BOOL": True},
                    ":false": {"BOOL": False},
                    ":now": {"N": str(now)},
                    ":u": {"S": username},
                },
            }
        }

    def _revoke_together(
        self,
        tenant_id: str,
        sessions: Sequence[tuple[str, str]],
        skipped_counters: frozenset[str | None] = frozenset(),
        attempt: int = 0,
    ) -> int:
        """Revoke ``(session_id, username)`` pairs in one transaction with their counters; how
        many were revoked.

        When the transaction is cancelled, its reasons decide: sessions that stopped being live
        leave the batch; a counter that already counts too few is left out (revocation wins over
        bookkeeping: a counter left high is lowered by the next sign-in's reconciliation, never
        one left low); contention on an item is retried with backoff. Without reasons, each
        session is revoked on its own."""
        now = int(self.clock())
        counted: dict[str | None, int] = {None: len(sessions)}  # None: the tenant's counter
        for _, username in sessions:
            counted[username] = counted.get(username, 0) + 1
        counters = [(owner, n) for owner, n in counted.items() if owner not in skipped_counters]
        try:
            self.client.transact_write_items(
                TransactItems=[
                    *(self._end(tenant_id, sid, username, now) for sid, username in sessions),
                    *(
                        self.counters.decrement(self.counters.key(tenant_id, owner), n)
                        for owner, n in counters
                    ),
                ]
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            codes = cancellation_codes(exc)
            if not codes:
                if len(sessions) > 1:
                    return sum(self._revoke_together(tenant_id, [pair]) for pair in sessions)
                return self._end_alone(tenant_id, *sessions[0], now)
            if CONTENTION_CODES.intersection(codes):
                if attempt >= _CONTENTION_RETRIES:
                    raise
                time.sleep(_BACKOFF_SECONDS * 2**attempt * (0.5 + _jitter.random()))
                return self._revoke_together(tenant_id, sessions, skipped_counters, attempt + 1)
            session_codes, counter_codes = codes[: len(sessions)], codes[len(sessions) :]
            live = [
                pair for pair, code in zip(sessions, session_codes, strict=False) if code != _CHECK_FAILED
            ]
            if len(live) < len(sessions):
                return self._revoke_together(tenant_id, live, skipped_counters, attempt) if live else 0
            too_few = {
                owner
                for (owner, _), code in zip(counters, counter_codes, strict=False)
                if code == _CHECK_FAILED
            }
            if not too_few:
                raise
            return self._revoke_together(tenant_id, sessions, skipped_counters | too_few, attempt)
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
        values: dict[str, Any] = {":t": {"S": tenant_id}}
        filtered: dict[str, Any] = {}
        if username is not None:  # (DynamoDB leaves the others out of the reply)
            values[":u"] = {"S": username}
            filtered["FilterExpression"] = "username = :u"
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="tenant_id = :t",
            ExpressionAttributeValues=values,
            ConsistentRead=True,
            **filtered,
        )
        sessions = (_session(item) for page in pages for item in page.get("Items", []))
        return [s for s in sessions if s.live(now) and (username is None or s.username == username)]

    def page_live(
        self, tenant_id: str, limit: int, after: str | None = None
    ) -> tuple[list[Session], str | None]:
        """Up to ``limit`` live sessions of the tenant in session-id order, after the session id
        ``after``; and the id the next page starts after (None on the last page). Read
        consistently, as :meth:`list_live`."""
        now = int(self.clock())
        start: dict[str, Any] = {"ExclusiveStartKey": self._key(tenant_id, after)} if after else {}
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="tenant_id = :t",
            FilterExpression="revoked = :false AND expires_at > :now",
            ExpressionAttributeValues={
                ":t": {"S": tenant_id},
                ":false": {"BOOL": False},
                ":now": {"N": str(now)},
            },
            ConsistentRead=True,
            **start,
        )
        found: list[Session] = []
        for page in pages:
            items = page.get("Items", [])
            for index, item in enumerate(items):
                found.append(_session(item))
                if len(found) == limit:
                    more = index < len(items) - 1 or "LastEvaluatedKey" in page
                    return found, found[-1].session_id if more else None
        return found, None

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
