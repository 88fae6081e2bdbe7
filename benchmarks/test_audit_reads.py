"""GET /tenants/{t}/audit on the local cloud: the AWS calls of a page of 20 (goal: at most 3 of the
reader's own, warm), and its time as a ratio against a bare GetItem on the same endpoint in the
same run -- reported, never asserted as a time. Bounded: pytest-benchmark's rounds only."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import requests

from tests.e2e.test_audit_reads_http import READER_CALLS
from tests.e2e.test_audit_trail_http import _activity, _put
from tests.support.cloud import RunningCloud, aws_calls_of, wait_for
from tests.support.identity import mint_token, seed_tenant

TENANT = "bench-reads"
FUNCTION = "ComplianceApiFunction"
EVENTS = 60


@pytest.fixture(scope="module")
def auditor(platform_cloud: RunningCloud) -> str:
    seed_tenant(platform_cloud, TENANT)
    _put(platform_cloud, [_activity(TENANT, n) for n in range(EVENTS)])
    token = mint_token(platform_cloud, TENANT, "aud", ["auditor"], ttl=900)
    url = f"{platform_cloud.api_url}/tenants/{TENANT}/audit"
    headers = {"Authorization": f"Bearer {token}"}

    def written() -> bool:
        reply = requests.get(url, headers=headers, params={"limit": 200}, timeout=30)
        return len(reply.json()["items"]) >= EVENTS

    wait_for(written, timeout=120, interval=1)
    return token


def _bare_get_item_seconds(cloud: RunningCloud, rounds: int) -> float:
    """The mean time of one GetItem on the same endpoint: the unit the page's time is given in."""
    ddb = cloud.client("dynamodb")
    key = {"tenant_id": {"S": TENANT}, "position": {"S": "r#0000000000000001"}}
    ddb.get_item(TableName="dcisionai-audit-index", Key=key)
    started = time.perf_counter()
    for _ in range(rounds):
        ddb.get_item(TableName="dcisionai-audit-index", Key=key)
    return (time.perf_counter() - started) / rounds


@pytest.mark.parametrize(
    "filters", [{}, {"action": "files:Read"}, {"actor": "user-1"}], ids=["page", "action", "actor"]
)
def test_a_page_of_twenty(
    benchmark: Any, platform_cloud: RunningCloud, auditor: str, filters: dict[str, str]
) -> None:
    session = requests.Session()
    url = f"{platform_cloud.api_url}/tenants/{TENANT}/audit"
    headers = {"Authorization": f"Bearer {auditor}"}
    params = {"limit": 20, **filters}
    for _ in range(2):  # warm: the function, its data keys and the page's subject keys
        assert session.get(url, headers=headers, params=params, timeout=30).status_code == 200
    before = aws_calls_of(platform_cloud, FUNCTION)
    rounds = 0
    headers_total = 0

    def one() -> None:
        nonlocal rounds, headers_total
        rounds += 1
        reply = session.get(url, headers=headers, params=params, timeout=30)
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["items"]) == (12 if "actor" in filters else 20)  # user-1: every 5th
        headers_total += int(reply.headers["x-localcloud-aws-calls"])

    benchmark.pedantic(one, rounds=30, iterations=1)
    spent: Counter[str] = aws_calls_of(platform_cloud, FUNCTION) - before
    reader = {op: round(n / rounds, 2) for op, n in sorted(spent.items()) if op in READER_CALLS}
    per_page = sum(reader.values())
    bare = _bare_get_item_seconds(platform_cloud, 30)
    ratio = benchmark.stats.stats.mean / bare
    benchmark.extra_info.update(
        reader_aws_calls_per_page=reader,
        reader_aws_calls=per_page,
        request_aws_calls=round(headers_total / rounds, 2),  # with the authorizer and request path
        page_time_in_bare_get_items=round(ratio, 1),
    )
    print(
        f"\nGET /audit?limit=20 {filters or ''}: reader {per_page} AWS calls {reader}, "
        f"{headers_total / rounds:.1f} for the whole request; {ratio:.1f}x a bare GetItem"
    )
    if not filters:
        assert per_page <= 3  # the goal: a page of 20 in at most 3 calls of the reader's own
    assert spent["s3:GetObject"] == 0  # never a scan of the bucket
