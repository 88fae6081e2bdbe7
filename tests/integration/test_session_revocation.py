"""Revoking sessions when DynamoDB cancels the transaction for a reason other than "the session
ended": contention, a counter that counts too few, no reasons at all, a lost reply; and the
counters' reconciliation racing a revocation and a sign-in (red-team findings, each a
regression test). The cancellations are raised in the shape AWS documents for
TransactionCanceledException: moto serialises writes and never reports TransactionConflict."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tenant_security.identity.session_counters import CLOCK_SKEW_SECONDS
from tenant_security.identity.sessions import SessionLimitReached, SessionStore
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration

_MESSAGES = {
    "TransactionConflict": "Transaction is ongoing for the item",
    "ConditionalCheckFailed": "The conditional request failed",
    "ThrottlingError": "Throughput exceeds the current capacity of your table or index.",
}


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mocked_aws(monkeypatch):
        client = boto3.client("dynamodb")
        create_table(client, "sessions", "tenant_id", "session_id")
        create_table(client, "counters", "pk", "sk")
        yield client


class Wrapper:
    """The real client, counting writes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.transactions: list[int] = []
        self.updates = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.transactions.append(len(kwargs["TransactItems"]))
        return self.client.transact_write_items(**kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        self.updates += 1
        return self.client.update_item(**kwargs)


def _cancelled(codes: list[str]) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": "TransactionCanceledException", "Message": f"Transaction cancelled [{codes}]"},
        "CancellationReasons": [
            {"Code": c, "Message": _MESSAGES[c]} if c != "None" else {"Code": "None"} for c in codes
        ],
    }
    return ClientError(response, "TransactWriteItems")


def _counter(ddb: Any, tenant_id: str, username: str | None = None) -> int | None:
    key = {"pk": {"S": f"sessions#{tenant_id}"}, "sk": {"S": f"user#{username}" if username else "active"}}
    item = ddb.get_item(TableName="counters", Key=key, ConsistentRead=True).get("Item")
    return None if item is None or "active" not in item else int(item["active"]["N"])


def _set_counter(ddb: Any, tenant_id: str, value: int) -> None:
    ddb.update_item(
        TableName="counters",
        Key={"pk": {"S": f"sessions#{tenant_id}"}, "sk": {"S": "active"}},
        UpdateExpression="SET active = :v",
        ExpressionAttributeValues={":v": {"N": str(value)}},
    )


class Contended(Wrapper):
    """The tenant counter (the item after the sessions) is in another transaction: the next
    ``times`` transactions are cancelled with ``code`` on it."""

    def __init__(self, client: Any, code: str = "TransactionConflict", times: int = 1) -> None:
        super().__init__(client)
        self.code, self.times = code, times

    def transact_write_items(self, **kwargs: Any) -> Any:
        items = kwargs["TransactItems"]
        if self.times > 0:
            self.times -= 1
            self.transactions.append(len(items))
            codes = ["None"] * len(items)
            codes[sum(1 for i in items if i["Update"]["TableName"] == "sessions")] = self.code
            raise _cancelled(codes)
        return super().transact_write_items(**kwargs)


@pytest.mark.parametrize("code", ["TransactionConflict", "ThrottlingError"])
def test_contention_is_retried_and_the_counters_still_count_the_revocation(ddb: Any, code: str) -> None:
    store = SessionStore(ddb, "sessions", "counters")
    session = store.create("acme", "alice", ["pwd"], "full", timeout_minutes=5, max_sessions=10)
    contended = SessionStore(Contended(ddb, code), "sessions", "counters")
    assert contended.revoke("acme", session.session_id)
    assert not store.is_live("acme", session.session_id)
    assert (_counter(ddb, "acme"), _counter(ddb, "acme", "alice")) == (0, 0)


def test_one_conflict_keeps_a_batch_a_batch(ddb: Any) -> None:
    store = SessionStore(ddb, "sessions", "counters")
    for _ in range(98):
        store.create("acme", "alice", ["pwd"], "full", timeout_minutes=5, max_sessions=10_000)
    client = Contended(ddb)
    assert SessionStore(client, "sessions", "counters").revoke_all("acme") == 98
    assert store.list_live("acme") == []
    assert len(client.transactions) + client.updates <= 3  # not one write per session
    assert (_counter(ddb, "acme"), _counter(ddb, "acme", "alice")) == (0, 0)


def test_contention_that_never_ends_is_an_error_not_a_silent_skip(ddb: Any) -> None:
    store = SessionStore(ddb, "sessions", "counters")
    session = store.create("acme", "alice", ["pwd"], "full", timeout_minutes=5, max_sessions=10)
    forever = SessionStore(Contended(ddb, times=1_000), "sessions", "counters")
    with pytest.raises(ClientError):
        forever.revoke("acme", session.session_id)
    assert store.is_live("acme", session.session_id)  # the caller learns it failed and retries


def test_a_low_tenant_counter_leaves_the_right_user_counters_decremented(ddb: Any) -> None:
    store = SessionStore(ddb, "sessions", "counters")
    for i in range(6):
        store.create("acme", f"u{i % 2}", ["pwd"], "full", timeout_minutes=5, max_sessions=10)
    _set_counter(ddb, "acme", 0)
    assert store.revoke_all("acme") == 6
    assert store.list_live("acme") == []
    assert (_counter(ddb, "acme"), _counter(ddb, "acme", "u0"), _counter(ddb, "acme", "u1")) == (0, 0, 0)


class NoReasons(Wrapper):
    """A cancellation that carries no CancellationReasons."""

    def transact_write_items(self, **kwargs: Any) -> Any:
        try:
            return super().transact_write_items(**kwargs)
        except ClientError as exc:
            exc.response.pop("CancellationReasons", None)
            raise


def test_without_reasons_a_low_counter_never_keeps_a_session_alive(ddb: Any) -> None:
    store = SessionStore(NoReasons(ddb), "sessions", "counters")
    single = store.create("acme", "alice", ["pwd"], "full", timeout_minutes=5, max_sessions=10)
    for i in range(5):
        store.create("acme", f"u{i % 2}", ["pwd"], "full", timeout_minutes=5, max_sessions=10)
    _set_counter(ddb, "acme", 0)
    assert store.revoke("acme", single.session_id)
    assert not store.is_live("acme", single.session_id)
    assert store.revoke_all("acme") == 5
    assert store.list_live("acme") == []
    assert not store.revoke("acme", single.session_id)  # once


class Interleaved(Wrapper):
    """During reconciliation's count of the tenant's live sessions: ``before`` runs just before
    it, ``after`` just after."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.before: Callable[[], Any] | None = None
        self.after: Callable[[], Any] | None = None

    def query(self, **kwargs: Any) -> Any:
        counting = kwargs.get("Select") == "COUNT" and ":u" not in kwargs.get("ExpressionAttributeValues", {})
        if counting and self.before and self.after:
            before, after, self.before, self.after = self.before, self.after, None, None
            before()
            reply = self.client.query(**kwargs)
            after()
            return reply
        return self.client.query(**kwargs)


def test_a_reconciliation_racing_a_logout_and_a_sign_in_keeps_the_limit(ddb: Any) -> None:
    now = [1_000_000.0]
    plain = SessionStore(ddb, "sessions", "counters", clock=lambda: now[0])
    client = Interleaved(ddb)
    store = SessionStore(client, "sessions", "counters", clock=lambda: now[0])
    alice = plain.create("acme", "alice", ["pwd"], "full", timeout_minutes=60, max_sessions=2)
    plain.create("acme", "bob", ["pwd"], "full", timeout_minutes=1, max_sessions=2)
    now[0] += 120  # bob's session expired, TTL has not deleted it: counter 2, live 1
    client.before = lambda: plain.revoke("acme", alice.session_id)
    client.after = lambda: plain.create("acme", "dave", ["pwd"], "full", timeout_minutes=60, max_sessions=2)
    for user in ("carol", "erin"):
        with contextlib.suppress(SessionLimitReached):
            store.create("acme", user, ["pwd"], "full", timeout_minutes=60, max_sessions=2)
    assert len(plain.list_live("acme")) <= 2


class Replayed(Wrapper):
    """The next transaction is applied, its reply lost, and the same request sent again (what
    botocore does, with the same ClientRequestToken)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.armed = False

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            kwargs.setdefault("ClientRequestToken", "lost-reply-1")
            self.client.transact_write_items(**kwargs)
        return super().transact_write_items(**kwargs)


def test_botocore_sends_a_client_request_token(ddb: Any) -> None:
    seen: list[dict[str, Any]] = []
    ddb.meta.events.register(
        "before-call.dynamodb.TransactWriteItems", lambda params, **_: seen.append(params)
    )
    SessionStore(ddb, "sessions", "counters").create(
        "acme", "alice", ["pwd"], "full", timeout_minutes=5, max_sessions=10
    )
    body = seen[0]["body"]
    assert "ClientRequestToken" in json.loads(body if isinstance(body, str) else body.decode())


def test_a_replayed_batch_counts_its_sessions_once(ddb: Any) -> None:
    client = Replayed(ddb)
    store = SessionStore(client, "sessions", "counters")
    for _ in range(10):
        store.create("acme", "alice", ["pwd"], "full", timeout_minutes=5, max_sessions=100)
    client.armed = True
    assert store.revoke_all("acme") == 10  # what the alert reports as sessions_revoked
    assert store.list_live("acme") == []
    assert _counter(ddb, "acme") == 0


def test_the_same_token_with_other_items_is_refused(ddb: Any) -> None:
    item = {
        "Put": {"TableName": "counters", "Item": {"pk": {"S": "x"}, "sk": {"S": "y"}, "b": {"B": b"\x00"}}}
    }
    ddb.transact_write_items(TransactItems=[item], ClientRequestToken="t-1")
    ddb.transact_write_items(TransactItems=[item], ClientRequestToken="t-1")  # a replay: fine
    other = {"Put": {"TableName": "counters", "Item": {"pk": {"S": "x"}, "sk": {"S": "z"}}}}
    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(TransactItems=[other], ClientRequestToken="t-1")
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    with pytest.raises(ClientError) as other_parameter:  # any other parameter changed, too
        ddb.transact_write_items(
            TransactItems=[item], ClientRequestToken="t-1", ReturnConsumedCapacity="TOTAL"
        )
    assert other_parameter.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"


def test_a_session_just_expired_still_counts_for_the_clock_skew(ddb: Any) -> None:
    """Reconciliation counts a session that expired less than a clock skew ago: a revocation on
    a host whose clock is behind may still see it live and decrement (a counter left low would let
    the limit be passed)."""
    now = [1_000_000.0]
    store = SessionStore(ddb, "sessions", "counters", clock=lambda: now[0])
    store.create("acme", "alice", ["pwd"], "full", timeout_minutes=1, max_sessions=1)
    now[0] += 60 + CLOCK_SKEW_SECONDS - 1  # expired here, maybe not on a host a little behind
    with pytest.raises(SessionLimitReached):
        store.create("acme", "bob", ["pwd"], "full", timeout_minutes=1, max_sessions=1)
    now[0] += 2  # beyond the skew: the slot is free
    store.create("acme", "bob", ["pwd"], "full", timeout_minutes=1, max_sessions=1)
