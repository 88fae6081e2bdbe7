"""moto in this process, for integration tests of the layer's stores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from moto import mock_aws

from localcloud.motohooks import (
    atomic_s3_conditional_puts,
    cheap_transaction_snapshots,
    idempotent_transactions,
    kms_key_states,
    kms_multi_region_ciphertexts,
    object_lock_default_retention_changes,
    s3_post_policies,
    serialize_dynamodb_writes,
)
from tenant_security import aws, crypto


@contextmanager
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for every boto3 client (the layer's shared clients included), as the local cloud runs it."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        serialize_dynamodb_writes()  # moto's transactions are not thread-safe; the local cloud serialises
        cheap_transaction_snapshots()
        idempotent_transactions()  # botocore's retry with the same ClientRequestToken
        kms_key_states()
        kms_multi_region_ciphertexts()
        object_lock_default_retention_changes()
        s3_post_policies()
        atomic_s3_conditional_puts()
        aws.reset_clients()
        crypto.reset_caches()
        try:
            yield
        finally:
            aws.reset_clients()


def create_table(ddb: Any, name: str, *keys: str) -> None:
    """A pay-per-request table keyed by ``keys`` (hash, then range), all strings."""
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
        KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in zip(keys, ("HASH", "RANGE"), strict=False)],
    )
