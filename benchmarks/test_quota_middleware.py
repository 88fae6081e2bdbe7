"""Requests through the quota middleware on the local cloud: throughput and AWS calls per admitted
request (goal: exactly one write, an UpdateItem, for the request quotas). Bounded rounds."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.support.cloud import RunningCloud, aws_calls_of, table_reads_of
from tests.support.identity import mint_token, seed_tenant

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
    before = aws_calls_of(platform_cloud, *REQUEST_PATH)
    rounds = 0

    def one() -> None:
        nonlocal rounds
        rounds += 1
        assert session.get(url, headers=headers, timeout=30).status_code == 200

    benchmark.pedantic(one, rounds=100, iterations=1)
    spent = aws_calls_of(platform_cloud, *REQUEST_PATH) - before
    per_request = {k: round(v / rounds, 2) for k, v in sorted(spent.items())}
    benchmark.extra_info["aws_calls_per_request"] = per_request
    benchmark.extra_info["requests_per_second"] = 1 / benchmark.stats.stats.mean
    rate = 1 / benchmark.stats.stats.mean
    print(f"\nper admitted request: {per_request}  ({rate:.0f} requests/s, one client)")
    # the request quotas and the lease: exactly one write; the lease's release one more
    assert spent["dynamodb:UpdateItem"] == 2 * rounds
    assert "dynamodb:PutItem" not in spent
    assert "dynamodb:DeleteItem" not in spent


def test_policy_freshness_costs_at_most_one_read_per_tenant_every_5_seconds(
    benchmark: Any, platform_cloud: RunningCloud, tenant_token: str
) -> None:
    """A change governs every request that starts 5 s after it (API.md v2): each warm worker
    reads a tenant's profile at most once per 5 s, so the policy check costs no read on most
    requests and never more than one. GetItem per request = the session's one + the profile's
    share, reported beside the bare count of the session read."""
    import time

    from tenant_security.tenant_directory import POLICY_MAX_AGE

    session = requests.Session()
    url = platform_cloud.api_url + "/tenants/bench-quota/users"
    headers = {"Authorization": f"Bearer {tenant_token}"}
    assert session.get(url, headers=headers, timeout=30).status_code == 200
    before = table_reads_of(platform_cloud, "AdminApiFunction")
    started = time.monotonic()
    rounds = 0

    def one() -> None:
        nonlocal rounds
        rounds += 1
        assert session.get(url, headers=headers, timeout=30).status_code == 200

    benchmark.pedantic(one, rounds=200, iterations=1)
    elapsed = time.monotonic() - started
    reads = table_reads_of(platform_cloud, "AdminApiFunction") - before
    profile_reads, session_reads = reads["dcisionai-tenants"], reads["dcisionai-sessions"]
    # the bare count beside it: every request reads its session once (a revocation is seen at once)
    benchmark.extra_info["session_reads_per_request"] = round(session_reads / rounds, 3)
    benchmark.extra_info["profile_reads_per_request"] = round(profile_reads / rounds, 3)
    benchmark.extra_info["profile_reads_per_5_seconds"] = round(profile_reads / (elapsed / POLICY_MAX_AGE), 2)
    print(
        f"\n{rounds} requests in {elapsed:.1f}s: {session_reads} session reads, {profile_reads} tenant "
        f"profile reads ({profile_reads / rounds:.3f} per request)"
    )
    assert session_reads == rounds
    assert 0 <= profile_reads <= rounds  # never more than one extra read per request
    # and about one per worker per 5 s: the workers a warm function keeps (at most a few here)
    workers = 4
    assert profile_reads <= workers * (elapsed / POLICY_MAX_AGE + 1)
