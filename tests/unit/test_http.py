"""The resolver factory maps every bad input to the API's error shape (pure, no AWS)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tenant_security.errors import Conflict, Locked, RateLimited
from tenant_security.http import make_resolver


class Body(BaseModel):
    name: str
    count: int


app = make_resolver(max_json_body_bytes=2048, raw_body_prefixes=("/raw",))


@app.post("/things")
def create(body: Body) -> dict[str, Any]:
    return {"name": body.name, "count": body.count}


@app.put("/raw")
def raw() -> dict[str, Any]:
    return {"bytes": len(app.current_event.body or "")}


@app.get("/conflict")
def conflict() -> dict[str, Any]:
    raise Conflict("tenant exists with another request")


@app.get("/limited")
def limited() -> dict[str, Any]:
    raise RateLimited("slow down", headers={"Retry-After": "7"})


@app.get("/locked")
def locked() -> dict[str, Any]:
    raise Locked("locked out")


@app.get("/bug")
def bug() -> dict[str, Any]:
    raise KeyError("password=hunter2")


def event(
    method: str, path: str, body: str | None = None, content_type: str = "application/json"
) -> dict[str, Any]:
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": content_type},
        "multiValueHeaders": {"Content-Type": [content_type]},
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {"requestId": "req-1", "stage": "test", "identity": {"sourceIp": "127.0.0.1"}},
        "body": body,
        "isBase64Encoded": False,
    }


def call(
    method: str, path: str, body: str | None = None, content_type: str = "application/json"
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    reply = app.resolve(event(method, path, body, content_type), None)
    headers = dict(reply.get("headers") or {})
    for key, values in (reply.get("multiValueHeaders") or {}).items():
        headers[key] = values[-1]
    return reply["statusCode"], json.loads(reply["body"]), headers


def test_valid_body() -> None:
    assert call("POST", "/things", '{"name": "a", "count": 1}')[:2] == (200, {"name": "a", "count": 1})


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{oops", "application/json", 400, "malformed_json"),
        ('{"name": "a", "count": "x"}', "application/json", 400, "validation_error"),
        ('{"name": "a", "count": 1}', "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ('{"name": "' + "a" * 4096 + '", "count": 1}', "application/json", 413, "payload_too_large"),
    ],
)
def test_bad_bodies(body: str, content_type: str, status: int, code: str) -> None:
    got_status, got_body, headers = call("POST", "/things", body, content_type)
    assert (got_status, got_body["error"]) == (status, code)
    assert headers["Content-Type"] == "application/json"


def test_raw_routes_skip_the_json_guard() -> None:
    status, body, _ = call("PUT", "/raw", "x" * 5000, "application/octet-stream")
    assert (status, body) == (200, {"bytes": 5000})


def test_validation_errors_list_fields() -> None:
    _, body, _ = call("POST", "/things", '{"count": "x"}')
    fields = {f["field"] for f in body["fields"]}
    assert fields == {"body.name", "body.count"}


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/conflict", 409, "conflict"), ("/locked", 423, "locked"), ("/nope", 404, "not_found")],
)
def test_domain_errors_map_to_their_status(path: str, status: int, code: str) -> None:
    got_status, body, _ = call("GET", path)
    assert (got_status, body["error"]) == (status, code)


def test_error_headers_are_sent() -> None:
    status, _, headers = call("GET", "/limited")
    assert status == 429
    assert headers["Retry-After"] == "7"


def test_an_unexpected_exception_is_a_bare_500_without_details() -> None:
    status, body, _ = call("GET", "/bug")
    assert status == 500
    assert body == {"error": "internal_error", "message": "internal error", "request_id": "req-1"}


@pytest.mark.parametrize("where", ["path", "query", "body"])
def test_what_was_not_valid_utf8_is_400(where: str) -> None:
    request = event("POST", "/things", '{"name": "a", "count": 1}')
    if where == "path":
        request["path"] = "/things/\ufffd"
    elif where == "query":
        request["multiValueQueryStringParameters"] = {"q": ["x\ufffd"]}
    else:
        request["body"] = '{"name": "a\ufffd", "count": 1}'
    reply = app.resolve(request, None)
    assert reply["statusCode"] == 400
    assert json.loads(reply["body"]) == {"error": "bad_request", "message": "the request is not valid UTF-8"}
    raw = event("PUT", "/raw", "bytes \ufffd of a text file", "text/plain")  # a file's bytes are its own
    assert app.resolve(raw, None)["statusCode"] == 200


@app.get("/cached")
def cached() -> Any:
    from aws_lambda_powertools.event_handler import Response

    return Response(
        status_code=200,
        content_type="application/json",
        body="{}",
        headers={"Cache-Control": "public, max-age=300"},
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/things", '{"name": "a", "count": 1}'),  # a success
        ("GET", "/conflict", None),  # a domain error
        ("GET", "/bug", None),  # a bug
        ("GET", "/nope", None),  # no such route
        ("POST", "/things", "{oops"),  # refused before the route
        ("GET", "/things/", None),  # a trailing slash
    ],
)
def test_every_reply_is_neither_cached_nor_sniffed(method: str, path: str, body: str | None) -> None:
    _, _, headers = call(method, path, body)
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_a_route_may_say_how_it_is_cached() -> None:
    assert call("GET", "/cached")[2]["Cache-Control"] == "public, max-age=300"


def test_a_trailing_slash_reaches_no_route() -> None:
    status, body, _ = call("POST", "/things/", '{"name": "a", "count": 1}')
    assert (status, body["error"]) == (404, "not_found")


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ('{"name": ' + "[" * 70 + '"a"' + "]" * 70 + ', "count": 1}', "nested deeper"),
        (DEEP, "nested deeper"),  # a RecursionError in Python's parser
        ('{"name": "a", "count": ' + "9" * 5000 + "}", "digits"),  # over Python's 4,300 digits
        ('{"name": "\\ud800", "count": 1}', "lone surrogate"),
        ('{"\\udfff": 1, "name": "a", "count": 1}', "lone surrogate"),
        ('{"name": "a", "count": NaN}', "NaN"),
        ('{"name": "a", "count": -Infinity}', "Infinity"),
        # red team B: 1e999 is infinity once parsed, and null once stored
        ('{"name": "a", "count": 1e999}', "out of range"),
        ('{"name": "a", "count": -1.5e400}', "out of range"),
    ],
)
def test_json_python_cannot_use_is_a_400_not_a_500(body: str, why: str) -> None:
    request = event("POST", "/things", body)
    reply = (
        make_resolver(max_json_body_bytes=1024 * 1024).resolve(request, None) if len(body) > 2048 else None
    )
    if reply is None:
        reply = app.resolve(request, None)
    assert reply["statusCode"] == 400, reply
    problem = json.loads(reply["body"])
    assert problem["error"] == "malformed_json"
    assert why in problem["message"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=json_values,
    noise=st.sampled_from(["", "\\ud800", "\\udc00", "[" * 80, "9" * 4400, "NaN", "{", "\x00"]),
)
def test_fuzzed_json_bodies_never_crash_the_resolver(value: Any, noise: str) -> None:
    text = json.dumps({"name": "a", "count": 1, "extra": value})
    body = text[:-1] + f', "z": "{noise}"' + "}" if noise.startswith("\\") else text + noise
    reply = app.resolve(event("POST", "/things", body), None)
    assert reply["statusCode"] in (200, 400, 413), reply  # never a 500


@app.get("/names/<name>")
def name_route(name: str) -> dict[str, Any]:
    return {"name": name, "param": app.current_event.path_parameters["name"], "path": app.current_event.path}


def encoded(path_name: str) -> dict[str, Any]:
    """A REST API's event for GET /names/{name}: path and parameter as the client encoded them."""
    return {
        **event("GET", f"/names/{path_name}"),
        "resource": "/names/{name}",
        "pathParameters": {"name": path_name},
    }


@pytest.mark.parametrize(
    ("sent", "name"),
    [
        ("a%20b", "a b"),
        ("bob%2Bops%40x.io", "bob+ops@x.io"),
        ("x+y", "x+y"),
        ("caf%C3%A9", "caf\u00e9"),
        ("%2541", "%41"),
    ],
)
def test_path_parameters_are_decoded_once_before_any_handler(sent: str, name: str) -> None:
    reply = app.resolve(encoded(sent), None)
    assert reply["statusCode"] == 200, reply["body"]
    assert json.loads(reply["body"]) == {"name": name, "param": name, "path": f"/names/{name}"}


@pytest.mark.parametrize(
    ("sent", "status", "code"), [("a%FFb", 400, "bad_request"), ("a%0Ab", 404, "not_found")]
)
def test_a_path_parameter_that_decodes_to_no_text_is_a_4xx(sent: str, status: int, code: str) -> None:
    reply = app.resolve(encoded(sent), None)
    assert (reply["statusCode"], json.loads(reply["body"])["error"]) == (status, code)


@pytest.mark.parametrize("sent", ["bob%0A", "bob%0D", "bob%00", "bob%7F", "b%09ob"])
def test_a_control_character_in_a_path_reaches_no_handler(sent: str) -> None:
    """Before the fix `bob%0A` ran the handler for `bob` (Powertools' `$` matches before a final
    newline) while pathParameters -- what the audit record's target names -- said `bob\\n`."""
    reply = app.resolve(encoded(sent), None)
    assert (reply["statusCode"], json.loads(reply["body"])["error"]) == (404, "not_found"), reply["body"]
