"""Lazily created, shared boto3 clients.

A client is made on first use and reused for the life of the execution environment, so a warm
function pays for none. boto3 reads ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``)
itself, which is how the same code talks to moto locally and to AWS when deployed.
"""

from __future__ import annotations

import threading
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


@cache
def _client(service: str, region: str | None) -> Any:
    # boto3 session creation is not thread-safe; clients are.
    with _lock:
        return _session().client(  # type: ignore[call-overload]
            service, region_name=region, config=CLIENT_CONFIG
        )


def reset_clients() -> None:
    """Forget every client (tests that change the endpoint or credentials call this)."""
    _client.cache_clear()
    _session.cache_clear()


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
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
