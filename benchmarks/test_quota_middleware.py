"""Requests through the quota middleware on the local cloud: throughput and AWS calls per admitted
request (goal: exactly one write, an UpdateItem, for the request quotas). Bounded rounds."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import requests

from tests.support.cloud import RunningCloud
from tests.support.identity import mint_token, seed_tenant


def platform_calls(cloud: RunningCloud, *functions: str) -> Counter[str]:
    """AWS calls made by the functions named (by logical id), by operation."""
    counts = requests.get(cloud.api_url + "/__localcloud/stats", timeout=10).json()["aws_calls"]
    callers = {f"localcloud-{f}" for f in functions}
    spent: Counter[str] = Counter()
    for key, n in counts.items():
        caller, _, operation = key.partition("|")
        if caller in callers:
            spent[operation] += n
    return spent


REQUEST_PATH = ("AuthorizerFunction", "AdminApiFunction")


@pytest.fixture(scope="module")
def tenant_token(platform_cloud: RunningCloud) -> str:
    seed_tenant(platform_cloud, "bench-quota")
    return mint_token(platform_cloud, "bench-quota", "bench", ["tenant-admin"], ttl=900)


def test_admitted_request_cost(benchmark: Any, platform_cloud: RunningCloud, tenant_token: str) -> None:
    session = requests.Session()
    url = platform_cloud.api_url + "/tenants/bench-quota/users"
    headers = {"Authorization": f"Bearer {tenant_token}"}
    assert session.get(url, headers=headers, timeout=30).status_code == 200  # warm: tenant record cached
    before = platform_calls(platform_cloud, *REQUEST_PATH)
    rounds = 0

    def one() -> None:
        nonlocal rounds
        rounds += 1
        assert session.get(url, headers=headers, timeout=30).status_code == 200

    benchmark.pedantic(one, rounds=100, iterations=1)
    spent = platform_calls(platform_cloud, *REQUEST_PATH) - before
    per_request = {k: round(v / rounds, 2) for k, v in sorted(spent.items())}
    benchmark.extra_info["aws_calls_per_request"] = per_request
    benchmark.extra_info["requests_per_second"] = 1 / benchmark.stats.stats.mean
    rate = 1 / benchmark.stats.stats.mean
    print(f"\nper admitted request: {per_request}  ({rate:.0f} requests/s, one client)")
    # the request quotas: exactly one write; the lease adds a put and a delete
    assert spent["dynamodb:UpdateItem"] == rounds
