"""Red team 19b: the docs function's OAuth 2.0 token URL follows the stage of each request.

``_openapi()`` is cached and ``openapi_document`` copies it shallowly, so rewriting ``tokenUrl``
in place writes into the cached document: the first request's base path sticks for every later
request of the warm function (an API reached through both its execute-api stage URL and a
custom domain hands one of them a token URL that is not its own).
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.test_sample_events import FakeContext, load_function


def _document(module: Any, stage_path: str) -> dict[str, Any]:
    event = {
        "httpMethod": "GET",
        "path": "/openapi.json",
        "resource": "/openapi.json",
        "pathParameters": None,
        "headers": {},
        "requestContext": {"requestId": "r-1", "stage": "prod", "path": stage_path},
    }
    reply = module.lambda_handler(event, FakeContext())
    assert reply["statusCode"] == 200
    return dict(json.loads(reply["body"]))


def _token_url(document: dict[str, Any]) -> str:
    flows = document["components"]["securitySchemes"]["clientCredentials"]["flows"]
    return str(flows["clientCredentials"]["tokenUrl"])


def test_a_warm_function_gives_each_base_path_its_own_token_url() -> None:
    module = load_function("docs")  # one execution environment, two ways in
    first = _document(module, "/prod/openapi.json")
    assert _token_url(first) == "/prod/oauth2/token"
    second = _document(module, "/openapi.json")  # a custom domain with no base path
    assert second["servers"] == [{"url": "/"}]
    assert _token_url(second) == "/oauth2/token"  # fails: "/prod/oauth2/token" (the first one's)
