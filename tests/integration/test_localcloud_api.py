"""The local cloud serves the REST API as API Gateway does (fixture template)."""

from __future__ import annotations

import base64
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
    assert greedy == {
        "key": "reports/2026/q4.pdf",
        "resource": "/files/{key+}",
        "path": "/files/reports/2026/q4.pdf",
    }


@pytest.mark.parametrize(
    "sent",
    ["a%2Fb", "a%20b", "caf%C3%A9", "a%0Ab", "a%FFb", "x+y@z", "x%2By%40z", "100%25", "a%252Fb"],
)
def test_path_parameters_reach_the_function_still_percent_encoded(
    fixture_cloud: RunningCloud, sent: str
) -> None:
    # as a REST API hands them to Lambda (localcloud.apigateway's docstring has the sources)
    seen = get(fixture_cloud, f"/files/dir/{sent}", f"allow-all:{uuid.uuid4()}").json()
    assert seen == {"key": f"dir/{sent}", "resource": "/files/{key+}", "path": f"/files/dir/{sent}"}


@pytest.mark.parametrize(
    ("sent", "decoded"),
    [
        ("a%20b", "a b"),
        ("caf%C3%A9", "caf\u00e9"),
        ("x+y@z", "x+y@z"),
        ("x%2By%40z", "x+y@z"),
        ("100%2541", "100%41"),
    ],
)
def test_the_api_decodes_path_parameters_once(fixture_cloud: RunningCloud, sent: str, decoded: str) -> None:
    seen = get(fixture_cloud, f"/items/{sent}", f"allow-all:{uuid.uuid4()}").json()
    assert seen["item_id"] == decoded
    assert seen["path_parameters"] == {"id": decoded}
    assert seen["path"] == f"/items/{decoded}"


@pytest.mark.parametrize(
    ("sent", "status", "code"),
    [
        ("a%FFb", 400, "bad_request"),  # not UTF-8, refused by the API's decoding
        ("a%0Ab", 404, "not_found"),  # a control character: no route of the API takes it
        ("a%2Fb", 404, "not_found"),  # an encoded slash separates segments: no such route
    ],
)
def test_a_path_parameter_that_decodes_badly_is_a_json_4xx(
    fixture_cloud: RunningCloud, sent: str, status: int, code: str
) -> None:
    assert_json_error(get(fixture_cloud, f"/items/{sent}", f"allow-all:{uuid.uuid4()}"), status, code)


def test_query_parameters_arrive_decoded(fixture_cloud: RunningCloud) -> None:
    seen = get(fixture_cloud, "/items/7?q=a+b&r=a%2Bb&s=%40", f"allow-all:{uuid.uuid4()}").json()
    assert seen["query"] == {"q": "a b", "r": "a+b", "s": "@"}


@pytest.mark.parametrize(
    ("accept", "binary"),
    [
        ("application/octet-stream", True),
        ("application/octet-stream;q=0.9, */*", True),
        ("*/*", False),  # curl's and requests' default
        ("text/html, application/octet-stream", False),  # only the first type counts
        (None, False),
    ],
)
def test_a_base64_response_is_bytes_only_for_a_binary_first_accept(
    fixture_cloud: RunningCloud, accept: str | None, binary: bool
) -> None:
    reply = get(fixture_cloud, "/proxy/bytes", "allow-all", headers={"Accept": accept})
    assert reply.status_code == 200
    expected = bytes(range(256))
    assert reply.content == (expected if binary else base64.b64encode(expected))


@pytest.mark.parametrize(
    "case",
    [
        "no-status",
        "status-text",
        "body-object",
        "header-number",
        "extra-key",
        "not-an-object",
        "datetime",
        "crash",
    ],
)
def test_a_malformed_proxy_response_or_a_function_error_is_502(
    fixture_cloud: RunningCloud, case: str
) -> None:
    reply = get(fixture_cloud, f"/proxy/{case}", "allow-all")
    error = assert_json_error(reply, 502, "internal_error")
    assert error["message"] == "Internal server error"


def test_no_answer_within_the_integration_timeout_is_504(fixture_cloud: RunningCloud) -> None:
    # /slow/{case} has TimeoutInMillis 1000: API Gateway stops waiting, the invocation runs on
    reply = get(fixture_cloud, "/slow/sleep", "allow-all", timeout=60)
    assert_json_error(reply, 504, "internal_error")


def test_a_lambda_timeout_is_502_not_504(fixture_cloud: RunningCloud) -> None:
    # the function's Timeout (10 s) ends it; 504 is only API Gateway's own integration timeout (29 s)
    reply = get(fixture_cloud, "/proxy/sleep", "allow-all", timeout=60)
    assert_json_error(reply, 502, "internal_error")


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


def test_a_body_whose_event_is_over_lambdas_6mb_is_413(fixture_cloud: RunningCloud) -> None:
    # under API Gateway's 10 MB, over what Lambda takes in one synchronous event
    body = '{"name": "' + "x" * (7 * 1024 * 1024) + '", "count": 1}'
    assert_json_error(post_echo(fixture_cloud, body), 413, "payload_too_large")


def test_the_local_cloud_counts_aws_calls_by_caller(fixture_cloud: RunningCloud) -> None:
    before = fixture_cloud.http("GET", "/__localcloud/stats").json()["aws_calls"]
    get(fixture_cloud, "/a", f"allow-all:{uuid.uuid4()}")  # the authorizer writes one counter
    after = fixture_cloud.http("GET", "/__localcloud/stats").json()["aws_calls"]
    keys = [k for k in after if k.endswith("|dynamodb:UpdateItem") and k.startswith("localcloud-")]
    assert sum(after[k] - before.get(k, 0) for k in keys) == 1  # billed to the function that called
