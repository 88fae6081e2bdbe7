"""Idempotent creation: a POST that carries an ``Idempotency-Key`` header runs once.

As Stripe does it: the first request with a key runs and its reply (status and body) is kept for
:data:`KEEP_SECONDS`; a repeat with the same key and the same body gets that reply again without
running, marked ``Idempotent-Replayed: true``; the same key with another body (or on another
route) is 422 ``idempotency_key_reused``; a repeat while the first is still running is 409
``idempotency_key_in_use``. No header: the request runs as any other. A reply that is an error is
not kept, so a corrected retry may reuse the key.

A key belongs to its caller: the record is keyed by (path tenant, caller tenant, caller user,
key), so another tenant or user sending the same key starts a request of its own and can never
read this one's reply.

A reply can be lost after the route's write committed (the request deadline's alarm, a 5xx on the
way out): Powertools then drops the in-progress mark and the retry runs again. So the creation is
keyed too: :func:`creation_id` gives the route an id derived from the key, scope and request, the
same on every retry, and the route creates its item under it (a record, an upload), finding the
one a lost reply had created instead of making a second.

Powertools idempotency (``idempotent_function`` over a ``DynamoDBPersistenceLayer`` on
template.yaml's IdempotencyTable) does the bookkeeping: a conditional put marks the key in
progress, a repeat finds it, the payload hash is checked (``payload_validation_jmespath``). What
the table holds says nothing without the client's key: the payload hashed is an HMAC of the
request under a key derived from the Idempotency-Key, so a reader of the table cannot confirm a
guessed body (a username, an e-mail); the kept reply can hold what is shown once (a new user's
one-time password) and is stored sealed with AES-GCM under another such key (HKDF-SHA256, bound to
the scope).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from tenant_security.context import AUDIT_TARGET, REPLAYED, current_caller
from tenant_security.errors import BadRequest, Conflict, DomainError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"  # Stripe's name: the reply is a kept one
# A random value (a UUID v4 is 36 characters): long enough that nobody guesses it, since the
# kept reply is sealed under it.
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{16,255}$"
KEEP_SECONDS = 24 * 3600  # Stripe keeps a key 24 hours; the table's TTL removes it after
_KEY = re.compile(KEY_PATTERN)
_INFO = b"dcisionai-tenant-security idempotency v1|"
# uuid5's namespace for creation ids (any fixed UUID: it only separates them from other uuid5s)
_CREATION_NAMESPACE = uuid.UUID("6f1c3f2e-52b8-4c57-9a53-3c6f0f3b8d21")
# Where the middleware leaves the creation id of the request, in ``app.context``.
CREATION_ID = "idempotent_creation_id"

# The header as a route parameter: documented in OpenAPI and checked (400) before the route runs.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        pattern=KEY_PATTERN,
        description="Makes the POST safe to retry: a repeat with the same key and body returns the "
        "first reply (with Idempotent-Replayed: true); another body with the same key is 422; a "
        "repeat while the first runs is 409. 16-255 characters of A-Z a-z 0-9 _ . : -; send a "
        "random UUID v4 (the kept reply is sealed under it); kept 24 hours, per caller.",
    ),
]


class _Purpose(StrEnum):
    """What a key derived from the Idempotency-Key is for (each its own key)."""

    SEAL = "seal"  # the kept reply (AES-GCM)
    REQUEST = "request"  # the payload hash Powertools stores (HMAC)
    CREATION = "creation"  # the id the route creates under (HMAC)


class IdempotencyKeyReused(DomainError):
    """The key was used before with another body or on another route."""

    status, code = 422, "idempotency_key_reused"


class IdempotencyKeyInUse(Conflict):
    """A request with this key is still running."""

    code = "idempotency_key_in_use"


class _NotKept(Exception):
    """Carries an error reply out of the idempotent function, so Powertools does not keep it."""

    def __init__(self, reply: Response[Any]) -> None:
        super().__init__("reply not kept")
        self.reply = reply


@dataclass(frozen=True)
class Replied:
    """What :meth:`IdempotentReplies.run` answered: the reply, whether it is a kept one, and what
    was kept with it (the request's audit target)."""

    response: Response[Any]
    replayed: bool = False
    kept: Mapping[str, Any] | None = None


class IdempotentReplies:
    """Runs a request once per (scope, key) and keeps its sealed reply in the idempotency table."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table_name: str,
        keep_seconds: int = KEEP_SECONDS,
        pepper: Callable[[bytes], bytes] | None = None,
    ) -> None:
        # ``pepper``: the deployment's secret HMAC (:class:`KmsPepper`); None only where a test
        # builds the replies without one.
        self.pepper = pepper
        self.config = IdempotencyConfig(
            event_key_jmespath="[scope, key]",
            payload_validation_jmespath="request",
            expires_after_seconds=keep_seconds,
            hash_function="sha256",
        )
        self.store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb)

    def secret_key(self, key: str, scope: list[str]) -> str:
        """What every kept value is derived from: the client's ``key`` for ``scope`` under the
        deployment's secret HMAC key, so a reader of the table (or of a backup) cannot test
        guessed keys without ``kms:GenerateMac`` on it."""
        _check_key(key)
        if self.pepper is None:
            return key
        digest = hashlib.sha256(json.dumps([scope, key], separators=(",", ":")).encode()).digest()
        return self.pepper(digest).hex()

    def run(
        self,
        scope: list[str],
        key: str,
        request: dict[str, Any],
        make: Callable[[], Response[Any]],
        lambda_context: Any = None,
        keep: Callable[[], Mapping[str, Any] | None] = lambda: None,
    ) -> Replied:
        """The reply of ``make()``, run at most once for ``(scope, key)``; ``request`` (route and
        body) must be the same on every repeat. ``keep()``, asked once ``make()`` succeeded: what
        to keep (sealed) with the reply and give back with every replay."""
        _check_key(key)
        if lambda_context is not None and hasattr(lambda_context, "get_remaining_time_in_millis"):
            # an in-progress mark lasts no longer than this invocation can run
            self.config.register_lambda_context(lambda_context)
        secret = _derive(key, scope, _Purpose.SEAL)
        ran = False

        def once(data: dict[str, Any]) -> dict[str, Any]:
            nonlocal ran
            ran = True
            reply = make()
            if reply.status_code >= 400:
                raise _NotKept(reply)
            kept = {"body": _body_text(reply.body), "kept": keep()}
            return {
                "status": reply.status_code,
                "content_type": reply.headers.get("Content-Type", "application/json"),
                "sealed": _seal(secret, data["scope"], json.dumps(kept, separators=(",", ":"))),
            }

        guarded = idempotent_function(
            once,
            data_keyword_argument="data",
            persistence_store=self.store,
            config=self.config,
            key_prefix="api",
        )
        # (the table holds an HMAC of the request, never the request: nothing to confirm a guess by)
        fingerprint = _mac(key, scope, _Purpose.REQUEST, request)
        try:
            stored = guarded(data={"scope": scope, "key": key, "request": fingerprint})
        except _NotKept as refused:
            return Replied(refused.reply)
        except IdempotencyValidationError:
            raise IdempotencyKeyReused(
                f"this {HEADER} was used with another request body or route; send a new key"
            ) from None
        except IdempotencyAlreadyInProgressError:
            raise IdempotencyKeyInUse(
                f"a request with this {HEADER} is still running; retry later", headers={"Retry-After": "1"}
            ) from None
        kept = json.loads(_open(secret, scope, str(stored["sealed"])))
        response = Response(
            status_code=int(stored["status"]), content_type=str(stored["content_type"]), body=kept["body"]
        )
        if ran:
            return Replied(response)
        response.headers[REPLAYED_HEADER] = "true"
        return Replied(response, replayed=True, kept=kept.get("kept"))


def creation_id_for(key: str, scope: list[str], request: dict[str, Any]) -> str:
    """The id (a UUID) the request with ``key`` creates its item under: the same for every retry
    of the same request by the same caller, unguessable without the key, another for another
    body (a corrected retry after an error creates its own)."""
    _check_key(key)
    return str(uuid.uuid5(_CREATION_NAMESPACE, _mac(key, scope, _Purpose.CREATION, request)))


def creation_id(app: APIGatewayRestResolver) -> str | None:
    """The id the route is to create its item under (:func:`creation_id_for`), when the request
    carries an ``Idempotency-Key``; None otherwise (the route picks a random one, as always)."""
    value = app.context.get(CREATION_ID)
    return str(value) if value else None


def idempotent_middleware(
    replies: Callable[[], IdempotentReplies],
) -> Callable[[APIGatewayRestResolver, NextMiddleware], Response[Any]]:
    """A route middleware (after the request middleware) that makes the route idempotent for
    requests with an ``Idempotency-Key`` header. A replay is marked for the request's audit
    record (``app.context[REPLAYED]``), with the audit target the first request named."""

    def middleware(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        event = app.current_event
        key = event.headers.get(HEADER)  # (Powertools' headers are case-insensitive)
        if not key:
            return next_middleware(app)
        caller = current_caller(app)
        path_tenant = str((event.path_parameters or {}).get("tenant_id", ""))
        scope = [path_tenant, caller.tenant_id, caller.user]
        # the whole request: every path parameter and the query too, not only the route
        request = {
            "route": f"{event.http_method} {event.resource}",
            "path": dict(event.path_parameters or {}),
            "query": dict(event.multi_value_query_string_parameters or {}),
            "body": _body_of(event.body),
        }
        key = replies().secret_key(str(key), scope)
        app.context[CREATION_ID] = creation_id_for(key, scope, request)
        replied = replies().run(
            scope,
            key,
            request,
            lambda: next_middleware(app),
            app.lambda_context,
            keep=lambda: app.context.get(AUDIT_TARGET),
        )
        if replied.replayed:
            app.context[REPLAYED] = True
            if replied.kept:
                app.context[AUDIT_TARGET] = dict(replied.kept)
        return replied.response

    return middleware


def _check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise BadRequest(f"{HEADER} must match {KEY_PATTERN}")


def _body_of(body: str | None) -> Any:
    """The request body as compared between repeats: its JSON value (key order and spacing do not
    make another request), or its text."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body


def _body_text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        return body.decode()
    if isinstance(body, str):
        return body
    return json.dumps(body, separators=(",", ":"))


def _derive(key: str, scope: list[str], purpose: _Purpose) -> bytes:
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = _INFO + purpose.value.encode() + b"|" + json.dumps(scope).encode()
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(key.encode())


def _mac(key: str, scope: list[str], purpose: _Purpose, request: dict[str, Any]) -> str:
    """HMAC-SHA256 of the request (as JSON, keys sorted) under a key derived from ``key``."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(_derive(key, scope, purpose), text.encode(), hashlib.sha256).hexdigest()


def _seal(secret: bytes, scope: list[str], text: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(secret).encrypt(nonce, text.encode(), json.dumps(scope).encode())
    return base64.b64encode(nonce + sealed).decode()


def _open(secret: bytes, scope: list[str], sealed: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = base64.b64decode(sealed)
    return AESGCM(secret).decrypt(raw[:12], raw[12:], json.dumps(scope).encode()).decode()


class KmsPepper:
    """The deployment's secret HMAC (a KMS HMAC_256 key, ``IdempotencyMacKey``): one
    ``GenerateMac`` per request that carries an ``Idempotency-Key``."""

    def __init__(self, kms: KMSClient, key_id: str) -> None:
        self.kms = kms
        self.key_id = key_id

    def __call__(self, message: bytes) -> bytes:
        """HMAC-SHA-256 of ``message`` under the key."""
        reply = self.kms.generate_mac(KeyId=self.key_id, Message=message, MacAlgorithm="HMAC_SHA_256")
        return bytes(reply["Mac"])
