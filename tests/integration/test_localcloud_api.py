"""The local cloud serves the REST API as API Gateway does (fixture template)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.cloud import RunningCloud

pytestmark = pytest.mark.integration


def authorizer_calls(cloud: RunningCloud) -> int:
    item = cloud.client("dynamodb").get_item(
        TableName=cloud.outputs["TableName"], Key={"pk": {"S": "authorizer-calls"}}, ConsistentRead=True
    )
    return int(item.get("Item", {}).get("calls", {}).get("N", 0))


def get(cloud: RunningCloud, path: str, token: str | None = None, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = token
    return cloud.http("GET", path, headers=headers, **kwargs)


def assert_json_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert "message" in body
    return dict(body)


def test_allow_reaches_the_handler_with_the_authorizer_context(fixture_cloud: RunningCloud) -> None:
    token = f"allow-all:{uuid.uuid4()}"
    response = get(fixture_cloud, "/a", token)
    assert response.status_code == 200
    seen = response.json()
    assert seen["resource"] == "/a"
    assert seen["authorizer"]["principalId"] == "allow-all"
    assert len(seen["authorizer"]["decision_id"]) == 32
    assert seen["source_ip"] == "127.0.0.1"


def test_explicit_deny_is_403(fixture_cloud: RunningCloud) -> None:
    assert_json_error(get(fixture_cloud, "/a", f"deny:{uuid.uuid4()}"), 403, "forbidden")


def test_policy_is_evaluated_against_each_method_arn(fixture_cloud: RunningCloud) -> None:
    token = f"allow-a:{uuid.uuid4()}"
    assert get(fixture_cloud, "/a", token).status_code == 200
    assert_json_error(get(fixture_cloud, "/b", token), 403, "forbidden")  # not in the policy
    assert get(fixture_cloud, "/items/42", token).json()["item_id"] == "42"  # wildcard resource


def test_a_cached_decision_serves_a_second_route_without_calling_the_authorizer(
    fixture_cloud: RunningCloud,
) -> None:
    token = f"allow-all:{uuid.uuid4()}"
    before = authorizer_calls(fixture_cloud)
    first = get(fixture_cloud, "/a", token).json()["authorizer"]["decision_id"]
    second = get(fixture_cloud, "/b", token).json()["authorizer"]["decision_id"]
    assert first == second
    assert authorizer_calls(fixture_cloud) == before + 1
    other = get(fixture_cloud, "/a", f"allow-all:{uuid.uuid4()}").json()["authorizer"]["decision_id"]
    assert other != first  # another token, another decision


def test_missing_identity_source_is_401_without_calling_the_authorizer(fixture_cloud: RunningCloud) -> None:
    before = authorizer_calls(fixture_cloud)
    assert_json_error(get(fixture_cloud, "/a"), 401, "unauthorized")
    assert_json_error(get(fixture_cloud, "/a", ""), 401, "unauthorized")
    assert authorizer_calls(fixture_cloud) == before


def test_unauthorized_from_the_authorizer_is_401(fixture_cloud: RunningCloud) -> None:
    assert_json_error(get(fixture_cloud, "/a", "unauthorized"), 401, "unauthorized")


@pytest.mark.parametrize("token", ["crash", "bad-context"])
def test_a_failing_or_malformed_authorizer_never_allows(fixture_cloud: RunningCloud, token: str) -> None:
    assert_json_error(get(fixture_cloud, "/a", token), 500, "internal_error")


def test_a_route_without_authorizer_is_served_directly(fixture_cloud: RunningCloud) -> None:
    before = authorizer_calls(fixture_cloud)
    seen = get(fixture_cloud, "/open").json()
    assert seen["authorizer"] is None
    assert authorizer_calls(fixture_cloud) == before


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("DELETE", "/a"), ("GET", "/a/b/c")])
def test_unknown_routes_are_404_json(fixture_cloud: RunningCloud, method: str, path: str) -> None:
    response = fixture_cloud.http(method, path, headers={"Authorization": "allow-all"})
    assert_json_error(response, 404, "not_found")


def test_the_proxy_event_carries_path_query_and_greedy_parameters(fixture_cloud: RunningCloud) -> None:
    token = f"allow-all:{uuid.uuid4()}"
    seen = get(fixture_cloud, "/items/7?x=1&y=2", token).json()
    assert seen["path_parameters"] == {"id": "7"}
    assert seen["query"] == {"x": "1", "y": "2"}
    greedy = get(fixture_cloud, "/files/reports/2026/q4.pdf", token).json()
    assert greedy == {"key": "reports/2026/q4.pdf", "resource": "/files/{key+}"}


def test_each_function_runs_with_its_own_environment(fixture_cloud: RunningCloud) -> None:
    seen = get(fixture_cloud, "/a", f"allow-all:{uuid.uuid4()}").json()
    assert seen["role"] == "echo"
    assert seen["authorizer"]["role"] == "authorizer"


def post_echo(cloud: RunningCloud, body: bytes | str, content_type: str = "application/json") -> Any:
    return cloud.http(
        "POST", "/echo", data=body, headers={"Authorization": "allow-all", "Content-Type": content_type}
    )


def test_valid_json_is_accepted(fixture_cloud: RunningCloud) -> None:
    response = post_echo(fixture_cloud, '{"name": "x", "count": 3}')
    assert response.status_code == 200
    assert response.json() == {"echo": {"name": "x", "count": 3}}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "malformed_json"),
        ('{"name": "x", "count": "many"}', "application/json", 400, "validation_error"),
        ('{"name": "x"}', "application/json", 400, "validation_error"),
        ("[1, 2]", "application/json", 400, "validation_error"),
        ('{"name": "x", "count": 1}', "text/plain", 415, "unsupported_media_type"),
        ('{"name": "' + "x" * (1024 * 1024) + '", "count": 1}', "application/json", 413, "payload_too_large"),
        (b"\xff\xfe\x00garbage", "application/json", 400, "bad_request"),
    ],
    ids=["malformed", "wrong-type", "missing-field", "not-an-object", "content-type", "1MB", "invalid-utf8"],
)
def test_bad_input_gets_a_4xx_json_error(
    fixture_cloud: RunningCloud, body: str | bytes, content_type: str, status: int, code: str
) -> None:
    response = post_echo(fixture_cloud, body, content_type)
    error = assert_json_error(response, status, code)
    if code == "validation_error":
        assert error["fields"], error
        assert all({"field", "message"} <= set(f) for f in error["fields"])


def test_a_body_over_api_gateways_10mb_limit_is_413(fixture_cloud: RunningCloud) -> None:
    response = post_echo(fixture_cloud, b"x" * (10 * 1024 * 1024 + 1))
    assert_json_error(response, 413, "payload_too_large")


def test_the_local_cloud_counts_aws_calls_by_caller(fixture_cloud: RunningCloud) -> None:
    before = fixture_cloud.http("GET", "/__localcloud/stats").json()["aws_calls"]
    get(fixture_cloud, "/a", f"allow-all:{uuid.uuid4()}")  # the authorizer writes one counter
    after = fixture_cloud.http("GET", "/__localcloud/stats").json()["aws_calls"]
    keys = [k for k in after if k.endswith("|dynamodb:UpdateItem") and k.startswith("localcloud-")]
    assert sum(after[k] - before.get(k, 0) for k in keys) == 1  # billed to the function that called
