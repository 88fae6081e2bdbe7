"""Idempotency-Key in process (moto): a reply lost after the write does not make the retry create
again, a replay is told apart (header and audit record) and the table confirms no guessed body."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.event_handler import Response

from tenant_security.activity import EventPublisher
from tenant_security.context import AUDIT_TARGET, protected_middleware
from tenant_security.http import make_resolver
from tenant_security.idempotency import (
    REPLAYED_HEADER,
    IdempotentReplies,
    KmsPepper,
    creation_id,
    creation_id_for,
    idempotent_middleware,
)
from tenant_security.quotas.deadline import RequestTimedOut
from tests.support.audit import audit_stack
from tests.support.identity_fakes import live_session
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
TABLE = "idem"
USERS = "/tenants/{tenant_id}/users"


class Ctx:
    """A Lambda context with time to spare."""

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def replies(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[IdempotentReplies, Any]]:
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(ddb, TABLE, "id")
        yield IdempotentReplies(ddb, TABLE), ddb


def test_a_creation_whose_reply_the_deadline_lost_is_found_again_by_the_retry(
    replies: tuple[IdempotentReplies, Any],
) -> None:
    store, _ = replies
    key, scope = str(uuid.uuid4()), ["t", "t", "dana"]
    request = {"route": "POST /tenants/{tenant_id}/records", "body": {"data": {"a": 1}}}
    rows: dict[str, int] = {}  # the tenant's records table: INSERT ... ON CONFLICT (id) DO NOTHING
    fire = [True]

    def make() -> Response[Any]:
        record_id = creation_id_for(key, scope, request)
        rows.setdefault(record_id, len(rows))  # committed
        if fire[0]:  # quotas.deadline's SIGALRM lands before the handler returns: 503
            fire[0] = False
            raise RequestTimedOut("the request took longer than max_request_duration")
        return Response(201, "application/json", json.dumps({"id": record_id}))

    with pytest.raises(RequestTimedOut):
        store.run(scope, key, request, make, Ctx())
    retried = store.run(scope, key, request, make, Ctx())  # the client's retry with the same key
    assert len(rows) == 1, f"one Idempotency-Key, {len(rows)} creations"
    assert json.loads(retried.response.body)["id"] == next(iter(rows))
    assert not retried.replayed  # it ran (and found the record), it was no replay


def test_creation_ids_are_the_same_for_a_retry_only() -> None:
    key, scope = str(uuid.uuid4()), ["t", "t", "dana"]
    request = {"route": "POST /tenants/{tenant_id}/records", "body": {"data": {"a": 1}}}
    first = creation_id_for(key, scope, request)
    assert uuid.UUID(first).version == 5
    assert creation_id_for(key, list(scope), json.loads(json.dumps(request))) == first
    assert creation_id_for(str(uuid.uuid4()), scope, request) != first  # another key
    assert creation_id_for(key, ["t", "t", "dora"], request) != first  # another caller
    assert creation_id_for(key, ["u", "t", "dana"], request) != first  # another tenant
    assert creation_id_for(key, scope, {**request, "body": {"data": {"a": 2}}}) != first  # another body


def test_what_the_table_holds_confirms_no_guessed_body(replies: tuple[IdempotentReplies, Any]) -> None:
    store, ddb = replies
    body = {"username": "alice", "email": "alice@example.com", "roles": ["viewer"]}
    key, scope = "aaaaaaaaaaaaaaaa", ["acme", "acme", "root"]  # a 16-character key the pattern takes
    request = {"route": f"POST {USERS}", "body": body}
    store.run(
        scope,
        key,
        request,
        lambda: Response(201, "application/json", '{"temporary_password": "S3cr3t!"}'),
        Ctx(),
    )
    (item,) = ddb.scan(TableName=TABLE)["Items"]
    stored = json.dumps(item)
    for value in ("alice", "S3cr3t!"):
        assert value not in stored
    # the validation hash is no plain hash of the body: a guessed e-mail is not confirmed offline
    for text in (
        json.dumps(request, sort_keys=True),
        json.dumps(request, sort_keys=True, separators=(",", ":")),
        json.dumps(body, sort_keys=True),
    ):
        assert item["validation"]["S"] != hashlib.sha256(text.encode()).hexdigest()


def _request(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "resource": USERS,
        "path": "/tenants/acme/users",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "Idempotency-Key": key},
        "multiValueHeaders": {},
        "pathParameters": {"tenant_id": "acme"},
        "requestContext": {
            "requestId": f"req-{uuid.uuid4()}",
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": {
                "tenant_id": "acme",
                "user": "ada",
                "roles": "tenant-admin",
                "sid": "s",
                "amr": "pwd,otp",
            },
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _headers(reply: dict[str, Any]) -> dict[str, list[str]]:
    single = {name: [value] for name, value in (reply.get("headers") or {}).items()}
    return single | dict(reply.get("multiValueHeaders") or {})


class Bus:
    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.details.extend(json.loads(entry["Detail"]) for entry in Entries)
        return {"FailedEntryCount": 0}


def test_a_replay_is_marked_in_its_reply_and_audited_with_the_first_requests_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mocked_aws(monkeypatch):
        stack = audit_stack()
        stack.add_tenant("acme")
        create_table(stack.ddb, TABLE, "id")
        replies = IdempotentReplies(stack.ddb, TABLE)
        bus = Bus()
        publisher = EventPublisher(bus, "bus", "dcisionai.tenant-security")
        app = make_resolver()
        app.use(
            [
                protected_middleware(
                    lambda tenant, _max_age: stack.get(tenant),
                    live_session,
                    "platform",
                    activity=lambda: publisher,
                )
            ]
        )
        ids: list[str | None] = []

        @app.post("/tenants/<tenant_id>/users", middlewares=[idempotent_middleware(lambda: replies)])
        def create_user(tenant_id: str) -> Response[Any]:
            body = app.current_event.json_body
            app.context[AUDIT_TARGET] = {"user": body["username"], "email": body["email"]}
            ids.append(creation_id(app))
            return Response(201, "application/json", {"username": body["username"]})

        key, body = str(uuid.uuid4()), {"username": "carol", "email": "carol@example.com"}
        first = app.resolve(_request(body, key), Ctx())
        again = app.resolve(_request(body, key), Ctx())
        assert (first["statusCode"], again["statusCode"]) == (201, 201)
        assert json.loads(again["body"]) == json.loads(first["body"])
        assert len(ids) == 1  # the route ran once ...
        assert ids[0] is not None  # ... with a creation id
        assert REPLAYED_HEADER not in _headers(first)
        assert _headers(again)[REPLAYED_HEADER] == ["true"]
        assert _headers(again)["Cache-Control"] == ["no-store"]
        created, replayed = bus.details
        assert created["action"] == replayed["action"] == "users:Create"
        assert "replay" not in created
        assert replayed["replay"] is True
        assert replayed["target_user"] == created["target_user"] == "carol"
        assert replayed["target_email"] == "carol@example.com"
        # without the header: no creation id, nothing kept
        plain = _request({"username": "dave", "email": "dave@example.com"}, key)
        del plain["headers"]["Idempotency-Key"]
        assert app.resolve(plain, Ctx())["statusCode"] == 201
        assert ids[-1] is None
        assert "replay" not in bus.details[-1]


@pytest.fixture
def peppered(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[IdempotentReplies, Any, Any]]:
    """The replies as deployed: the client's key mixed with a KMS HMAC key (IdempotencyMacKey)."""
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        kms = boto3.client("kms", region_name="us-east-1")
        create_table(ddb, TABLE, "id")
        mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
        yield IdempotentReplies(ddb, TABLE, pepper=KmsPepper(kms, mac_key)), ddb, kms


def test_a_table_reader_cannot_test_a_guessed_key_without_the_deployments_mac_key(
    peppered: tuple[IdempotentReplies, Any, Any],
) -> None:
    """A predictable client key (``create-user-alice``) is not enough to find the kept reply or
    open it: the row id, the fingerprint and the seal all derive from the key under the
    deployment's HMAC key, which only the API functions may use (kms:GenerateMac)."""
    store, ddb, kms = peppered
    key, scope = "create-user-alice-1", ["acme", "acme", "root"]
    request = {"route": f"POST {USERS}", "body": {"username": "alice"}}
    secret_key = store.secret_key(key, scope)
    assert secret_key != key
    assert len(secret_key) == 64  # hex of an HMAC-SHA-256
    assert store.secret_key(key, list(scope)) == secret_key  # the same for every retry
    assert store.secret_key(key, ["acme", "acme", "bob"]) != secret_key  # another caller
    reply = lambda: Response(201, "application/json", '{"temporary_password": "S3cr3t!"}')  # noqa: E731
    store.run(scope, secret_key, request, reply, Ctx())
    (item,) = ddb.scan(TableName=TABLE)["Items"]
    # what a reader who guessed the client's key could compute without the MAC key
    unpeppered = IdempotentReplies(ddb, "other")
    guessed_row = hashlib.sha256(json.dumps([scope, key], separators=(",", ":")).encode()).hexdigest()
    assert guessed_row not in json.dumps(item)
    assert creation_id_for(key, scope, request) != creation_id_for(secret_key, scope, request)
    assert unpeppered.secret_key(key, scope) == key  # (without a pepper: the client's key itself)
    assert "S3cr3t" not in json.dumps(item)
    # a second deployment (another MAC key) derives other values from the same client key
    other_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    other = IdempotentReplies(ddb, TABLE, pepper=KmsPepper(kms, other_key))
    assert other.secret_key(key, scope) != secret_key
