"""Shared set-up of the quota tests on moto: a settable clock, a counters table, a request's cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.support.moto import create_table, mocked_aws

T0 = 1_800_000_000.0 - (1_800_000_000 % 86400) + 3600  # 01:00:00 UTC on some day
REQUEST = 17_559  # nano-dollars: about what a GET of one item costs (authz/route_costs.py)


class Clock:
    """A clock the test moves (``clock.now += 60``)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def counters_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A DynamoDB client on moto with the ``counters`` table (pk, sk): the body of a fixture."""
    with mocked_aws(monkeypatch):
        client = boto3.client("dynamodb")
        create_table(client, "counters", "pk", "sk")
        yield client
