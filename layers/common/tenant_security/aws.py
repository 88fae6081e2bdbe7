"""Lazily created, shared boto3 clients.

A client is made on first use and reused for the life of the execution environment, so a warm
function pays for none. boto3 reads ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``)
itself, which is how the same code talks to moto locally and to AWS when deployed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient

# Standard retry mode with a short connect timeout: a Lambda should fail fast, not hang.
CLIENT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=3,
    read_timeout=10,
    tcp_keepalive=True,
)

_lock = threading.Lock()


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def client(service: str, region: str | None = None) -> Any:
    """The shared client for ``service`` (created once, thread-safe), in ``region`` if given."""
    return _client(service, region)


_clients: dict[tuple[str, str | None], Any] = {}
# botocore's event before an operation's parameters are built: it carries the API parameters.
CALL_EVENT = "before-parameter-build"
_call_hooks: list[tuple[str, Any]] = []


def _client(service: str, region: str | None) -> Any:
    key = (service, region)
    found = _clients.get(key)
    if found is not None:
        return found
    # boto3 session creation is not thread-safe; clients are.
    with _lock:
        if key not in _clients:
            made = _session().client(  # type: ignore[call-overload]
                service, region_name=region, config=CLIENT_CONFIG
            )
            for unique_id, handler in _call_hooks:
                made.meta.events.register(CALL_EVENT, handler, unique_id=unique_id)
            _clients[key] = made
        return _clients[key]


@cache
def sdk_botocore_session() -> Any:
    """A botocore session of its own for the Encryption SDK's KMS clients, with the call hooks.

    Its own: the SDK wraps the session it is given in a new boto3 Session for every client, and
    each wrap registers boto3's client customisations again -- on the shared session that breaks
    the next S3 client ("Cannot inject class attribute upload_file").
    """
    import botocore.session

    session = botocore.session.get_session()
    for unique_id, handler in _call_hooks:
        session.register(CALL_EVENT, handler, unique_id=unique_id)
    return session


def before_every_call(unique_id: str, handler: Any) -> None:
    """Run ``handler(model=, params=)`` before every API call of every client, made or to be
    made -- the shared ones and the Encryption SDK's."""
    with _lock:
        _call_hooks.append((unique_id, handler))
        for made in _clients.values():
            made.meta.events.register(CALL_EVENT, handler, unique_id=unique_id)
    sdk_botocore_session().register(CALL_EVENT, handler, unique_id=unique_id)


def reset_clients() -> None:
    """Forget every client (tests that change the endpoint or credentials call this)."""
    with _lock:
        _clients.clear()
    _session.cache_clear()
    sdk_botocore_session.cache_clear()


def stepfunctions() -> SFNClient:
    """Step Functions client."""
    return client("stepfunctions")  # type: ignore[no-any-return]


def dynamodb() -> DynamoDBClient:
    """DynamoDB client."""
    return client("dynamodb")  # type: ignore[no-any-return]


def kms(region: str | None = None) -> KMSClient:
    """KMS client (of this function's region unless ``region`` is given: multi-Region key replicas)."""
    return client("kms", region)  # type: ignore[no-any-return]


def s3() -> S3Client:
    """S3 client."""
    return client("s3")  # type: ignore[no-any-return]


def events() -> EventBridgeClient:
    """EventBridge client."""
    return client("events")  # type: ignore[no-any-return]


def secretsmanager() -> SecretsManagerClient:
    """Secrets Manager client."""
    return client("secretsmanager")  # type: ignore[no-any-return]


def sqs() -> SQSClient:
    """SQS client."""
    return client("sqs")  # type: ignore[no-any-return]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    # botocore's ReadTimeoutError and ConnectionClosedError carry `response = None`
    response = getattr(exc, "response", None)
    return str((response if isinstance(response, dict) else {}).get("Error", {}).get("Code", ""))


# AWS error codes that mean "not now" rather than "not this": the request may be retried.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "KMSInternalException",
        "DependencyTimeoutException",
    }
)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or while handling (``__cause__``, else
    ``__context__``), and so on down the chain; each exception once, however the chain loops."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) is an AWS outage, throttling or timeout."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    from tenant_security.dynamo import is_contention

    return any(
        error_code(current) in TRANSIENT_ERROR_CODES
        or isinstance(current, BotoConnectionError | HTTPClientError)
        or is_contention(current)  # a transaction that met another write: retry it
        for current in causes(exc)
    )
