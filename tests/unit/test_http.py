"""The resolver factory maps every bad input to the API.md error shape (pure, no AWS)."""

from __future__ import annotations

import json
from typing import Any

import pytest
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
