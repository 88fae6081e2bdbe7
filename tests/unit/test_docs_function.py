"""The docs function: the OpenAPI document's server follows the stage; only known assets are served."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_sample_events import FakeContext, load_function


def _get(path: str, stage_path: str | None = None, asset: str | None = None) -> dict[str, Any]:
    module = load_function("docs")
    event = {
        "httpMethod": "GET",
        "path": path,
        "resource": "/static/{asset}" if asset else path,
        "pathParameters": {"asset": asset} if asset else None,
        "headers": {},
        "requestContext": {"requestId": "r-1", "stage": "prod", "path": stage_path or path},
    }
    return dict(module.lambda_handler(event, FakeContext()))


@pytest.mark.parametrize(
    ("stage_path", "server"),
    [
        ("/prod/openapi.json", "/prod"),
        ("/openapi.json", "/"),
        ("/v1/tenant-security/openapi.json", "/v1/tenant-security"),
    ],
)
def test_the_document_points_try_it_out_at_the_stage_it_came_through(stage_path: str, server: str) -> None:
    reply = _get("/openapi.json", stage_path)
    assert reply["statusCode"] == 200
    document = json.loads(reply["body"])
    assert document["servers"] == [{"url": server}]
    assert "/auth/login" in document["paths"]
    # the OAuth 2.0 token URL with the stage too, as an absolute path (Swagger UI's Authorize, and
    # any client that resolves it by OAS 3.1 against the server URL, reach the same endpoint)
    flow = document["components"]["securitySchemes"]["clientCredentials"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == server.rstrip("/") + "/oauth2/token"


def test_pages_carry_a_strict_content_security_policy() -> None:
    for path in ("/docs", "/mfa"):
        reply = _get(path)
        headers = {name: values[0] for name, values in reply["multiValueHeaders"].items()}
        assert reply["statusCode"] == 200
        assert headers["Content-Type"].startswith("text/html")
        assert "script-src 'self';" in headers["Content-Security-Policy"]
        assert "'unsafe-eval'" not in headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in headers["Content-Security-Policy"]


@pytest.mark.parametrize("asset", ["swagger-ui.js", "swagger-ui.css", "docs.js", "mfa.js", "pages.css"])
def test_each_known_asset_is_served(asset: str) -> None:
    reply = _get(f"/static/{asset}", asset=asset)
    assert reply["statusCode"] == 200
    assert len(reply["body"]) > 100


@pytest.mark.parametrize("asset", ["app.py", "openapi.json", "mfa.html", "..%2Fapp.py", "swagger-ui.js.map"])
def test_nothing_else_on_disk_is_reachable(asset: str) -> None:
    reply = _get(f"/static/{asset}", asset=asset)
    assert reply["statusCode"] == 404
    assert json.loads(reply["body"])["error"] == "not_found"
