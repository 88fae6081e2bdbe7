"""Latency and cost (AWS calls) of a request through the local API Gateway.

Bounded: pytest-benchmark's own rounds; nothing here loops on its own. The AWS-call counts come
from the local cloud's ``x-localcloud-aws-calls`` header (calls the functions made for the
request), which is what a request costs in AWS.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.support.cloud import RunningCloud


@pytest.fixture(scope="module")
def session() -> requests.Session:
    return requests.Session()


def _get(session: requests.Session, url: str, **headers: str) -> requests.Response:
    response = session.get(url, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_health(benchmark: Any, platform_cloud: RunningCloud, session: requests.Session) -> None:
    response = benchmark(_get, session, platform_cloud.api_url + "/health")
    assert response.headers["x-localcloud-aws-calls"] == "0"  # /health costs no AWS call
    benchmark.extra_info["aws_calls_per_request"] = 0


def test_authorized_route_with_cached_decision(
    benchmark: Any, fixture_cloud: RunningCloud, session: requests.Session
) -> None:
    token = f"allow-all:{uuid.uuid4()}"
    _get(session, fixture_cloud.api_url + "/a", Authorization=token)  # fill the authorizer cache
    response = benchmark(_get, session, fixture_cloud.api_url + "/a", Authorization=token)
    calls = int(response.headers["x-localcloud-aws-calls"])
    assert calls == 0  # a cached decision: the authorizer (and its DynamoDB call) is skipped
    benchmark.extra_info["aws_calls_per_request"] = calls


def test_authorized_route_with_authorizer_call(
    benchmark: Any, fixture_cloud: RunningCloud, session: requests.Session
) -> None:
    def fresh_token_request() -> requests.Response:
        return _get(session, fixture_cloud.api_url + "/a", Authorization=f"allow-all:{uuid.uuid4()}")

    response = benchmark(fresh_token_request)
    benchmark.extra_info["aws_calls_per_request"] = int(response.headers["x-localcloud-aws-calls"])
