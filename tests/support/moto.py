"""moto in this process, for integration tests of the layer's stores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from localcloud.motohooks import (
    atomic_s3_conditional_puts,
    cached_condition_parses,
    cheap_transaction_snapshots,
    idempotent_transactions,
    kms_key_states,
    kms_multi_region_ciphertexts,
    object_lock_default_retention_changes,
    s3_post_policies,
    serialize_dynamodb_writes,
    size_of_a_missing_attribute,
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
        cached_condition_parses()
        size_of_a_missing_attribute()
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


@cache
def _template_tables() -> dict[str, Any]:
    from localcloud.template import load_template

    resources = load_template(Path(__file__).resolve().parents[2] / "template.yaml")["Resources"]
    return {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::DynamoDB::Table"}


def create_template_table(ddb: Any, logical_id: str, name: str) -> None:
    """The table ``logical_id`` of template.yaml under ``name``: its keys and secondary indexes
    as deployed, so that a test queries the indexes the functions query."""
    table = _template_tables()[logical_id]
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"],
        **(
            {"GlobalSecondaryIndexes": table["GlobalSecondaryIndexes"]}
            if "GlobalSecondaryIndexes" in table
            else {}
        ),
    )
