"""Pure logic of the local cloud: intrinsics, IAM policy evaluation, route precedence."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from localcloud.apigateway import _route_regex, evaluate_policy
from localcloud.eventbridge import normalise_event, target_input
from localcloud.intrinsics import Resolver, references

ATTRS = {("Fn", "Arn"): "arn:aws:lambda:us-east-1:1:function:fn"}
TEMPLATE: dict[str, Any] = {
    "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}},
    "Mappings": {"Sizes": {"dev": {"Memory": 256}}},
}


def resolver(stage: str = "dev") -> Resolver:
    return Resolver(
        TEMPLATE,
        {"Stage": stage, "Prefix": "dcisionai"},
        {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"},
        ref=lambda name: {"Bus": "dcisionai-platform"}[name],
        get_att=lambda logical_id, att: ATTRS[(logical_id, att)],
    )


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ({"Ref": "Prefix"}, "dcisionai"),
        ({"Ref": "Bus"}, "dcisionai-platform"),
        ({"Fn::Sub": "${Prefix}-tenants"}, "dcisionai-tenants"),
        ({"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:root"}, "arn:aws:iam::123456789012:root"),
        ({"Fn::Sub": "${Fn.Arn}/invocations"}, "arn:aws:lambda:us-east-1:1:function:fn/invocations"),
        ({"Fn::Sub": ["${X}-${Prefix}", {"X": {"Ref": "Bus"}}]}, "dcisionai-platform-dcisionai"),
        ({"Fn::Sub": "${!Literal}"}, "${Literal}"),
        ({"Fn::GetAtt": ["Fn", "Arn"]}, "arn:aws:lambda:us-east-1:1:function:fn"),
        ({"Fn::GetAtt": "Fn.Arn"}, "arn:aws:lambda:us-east-1:1:function:fn"),
        ({"Fn::Join": ["-", ["a", {"Ref": "Prefix"}]]}, "a-dcisionai"),
        ({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}, "y"),
        ({"Fn::If": ["IsProd", "big", "small"]}, "small"),
        ({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}, 256),
        ({"List": ["a", {"Ref": "AWS::NoValue"}]}, {"List": ["a"]}),
    ],
)
def test_intrinsics(expression: Any, value: Any) -> None:
    assert resolver().resolve(expression) == value


def test_conditions_follow_parameters() -> None:
    assert resolver("prod").resolve({"Fn::If": ["IsProd", "big", "small"]}) == "big"


def test_references_find_dependencies() -> None:
    found = references(
        {"a": {"Fn::Sub": "${Fn.Arn}-${Prefix}"}, "b": [{"Ref": "Bus"}], "c": {"Fn::GetAtt": "T.Arn"}}
    )
    assert found == {"Fn", "Prefix", "Bus", "T"}


ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev"


def policy(effect: str, *resources: str) -> dict[str, Any]:
    return {"Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": list(resources)}]}


@pytest.mark.parametrize(
    ("document", "method_arn", "allowed"),
    [
        (policy("Allow", f"{ARN}/*"), f"{ARN}/GET/tenants/acme", True),
        (policy("Allow", f"{ARN}/GET/tenants/*"), f"{ARN}/GET/tenants/acme", True),
        (policy("Allow", f"{ARN}/GET/tenants/*"), f"{ARN}/PUT/tenants/acme", False),
        (policy("Allow", f"{ARN}/GET/tenants/acm?"), f"{ARN}/GET/tenants/acme", True),
        (policy("Allow", f"{ARN}/GET/a"), f"{ARN}/GET/ab", False),
        (policy("Deny", f"{ARN}/*"), f"{ARN}/GET/a", False),
        (
            {
                "Statement": [
                    *policy("Allow", f"{ARN}/*")["Statement"],
                    *policy("Deny", f"{ARN}/DELETE/*")["Statement"],
                ]
            },
            f"{ARN}/DELETE/tenants/acme",
            False,
        ),
        (
            {"Statement": [{"Action": "s3:GetObject", "Effect": "Allow", "Resource": "*"}]},
            f"{ARN}/GET/a",
            False,
        ),
        ({"Statement": []}, f"{ARN}/GET/a", False),
    ],
)
def test_policy_evaluation(document: dict[str, Any], method_arn: str, allowed: bool) -> None:
    assert evaluate_policy(document, method_arn) is allowed


def test_literal_segments_take_precedence_over_parameters() -> None:
    routes = sorted(
        ["/tenants/{t}", "/tenants/me", "/tenants/{t}/files/{key+}", "/{proxy+}"],
        key=lambda r: _route_regex(r)[1],
        reverse=True,
    )
    assert routes.index("/tenants/me") < routes.index("/tenants/{t}")
    assert routes[-1] == "/{proxy+}"


def test_event_time_is_iso_and_target_input_follows_the_target() -> None:
    event = normalise_event({"id": "1", "time": 0, "detail": {"a": {"b": 2}}, "ingestion-time": 5})
    assert event["time"] == "1970-01-01T00:00:00Z"
    assert "ingestion-time" not in event
    assert target_input({"InputPath": "$.detail.a"}, event) == {"b": 2}
    assert target_input({"Input": '{"fixed": true}'}, event) == {"fixed": True}
    assert target_input({}, event) is event


def _policy(expiration: str, *conditions: Any) -> str:
    return base64.b64encode(
        json.dumps({"expiration": expiration, "conditions": list(conditions)}).encode()
    ).decode()


def test_a_post_policy_is_enforced_like_s3_does() -> None:
    from localcloud.motohooks import post_policy_problem

    now = datetime(2026, 1, 1, tzinfo=UTC)
    policy = _policy("2026-01-01T00:15:00Z", {"bucket": "b"}, {"key": "k"}, ["content-length-range", 1, 5])
    fields = {"policy": policy, "key": "k", "x-amz-signature": "sig"}
    assert post_policy_problem(fields, "b", 5, now) is None
    assert "exceeds" in str(post_policy_problem(fields, "b", 6, now))
    assert "smaller" in str(post_policy_problem(fields, "b", 0, now))
    assert "bucket" in str(post_policy_problem(fields, "other", 5, now))
    assert "expired" in str(post_policy_problem(fields, "b", 5, datetime(2026, 1, 1, 0, 15, tzinfo=UTC)))
    assert "Extra input fields" in str(post_policy_problem({**fields, "x-amz-meta-a": "1"}, "b", 5, now))
    assert "not valid" in str(post_policy_problem({"key": "k"}, "b", 5, now))
    starts = _policy("2026-01-02T00:00:00Z", ["starts-with", "$key", "up/"])
    assert post_policy_problem({"policy": starts, "key": "up/x"}, "b", 1, now) is None
    assert post_policy_problem({"policy": starts, "key": "down/x"}, "b", 1, now) is not None


def test_routes_match_the_decoded_path_and_parameters_stay_encoded() -> None:
    from localcloud.apigateway import decoded_for_matching, proxy_response_problem, raw_path

    assert raw_path({"RAW_URI": "/files/a%2Fb?x=1"}) == "/files/a%2Fb"
    assert raw_path({"RAW_URI": "/files/caf\u00c3\u00a9"}) == "/files/caf%C3%A9"  # raw bytes, encoded
    decoded, starts = decoded_for_matching("/f/a%2Fb%20c")
    assert decoded == "/f/a/b c"
    pattern, _ = _route_regex("/f/{key+}")
    found = pattern.match(decoded)
    assert found is not None
    assert "/f/a%2Fb%20c"[starts[found.start("key")] : starts[found.end("key")]] == "a%2Fb%20c"
    single, _ = _route_regex("/f/{id}")
    assert single.match(decoded) is None  # an encoded slash still separates segments
    assert proxy_response_problem({"statusCode": 200, "body": "{}"}) is None
    assert proxy_response_problem({"statusCode": 200, "body": {}}) == "body is not a string"
    assert proxy_response_problem({"body": "{}"}) is not None
    assert proxy_response_problem({"statusCode": True}) is not None


def test_results_are_serialised_as_lambdas_python_runtime_does() -> None:
    """Red team: the worker was stricter than AWS. awslambdaric (python3.12) writes a Decimal as a
    number and keeps non-ASCII as is; a datetime still fails (Runtime.MarshalError)."""
    from decimal import Decimal

    import pytest

    from localcloud.worker import runtime_json

    assert runtime_json({"n": Decimal("3"), "x": Decimal("1.5"), "name": "Zoë"}) == (
        '{"n": 3, "x": 1.5, "name": "Zoë"}'
    )
    with pytest.raises(TypeError):
        runtime_json({"at": datetime(2026, 1, 1, tzinfo=UTC)})
