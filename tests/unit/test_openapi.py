"""The OpenAPI document generated from the handlers against the routes of template.yaml."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tenant_security.api_reference import ApiTag
from tenant_security_tools.openapi import ERROR_STATUSES, build_openapi, routes_of
from tests.support.cloud import REAL_TEMPLATE
from tests.unit.test_rbac_and_routes import template_routes


@cache
def document() -> dict[str, Any]:
    return build_openapi(REAL_TEMPLATE)


def _template() -> dict[tuple[str, str], bool]:
    return {(m, p.replace("+}", "}")): protected for m, p, protected in template_routes()}


def test_no_route_is_missing_from_either() -> None:
    documented, templated = routes_of(document()), set(_template())
    unserved, unrouted = templated - documented, documented - templated
    assert not unserved, f"in template.yaml, not served by any handler: {unserved}"
    assert not unrouted, f"served by a handler, no route in template.yaml: {unrouted}"


def test_routes_behind_the_authorizer_need_the_bearer_token() -> None:
    for (method, path), protected in _template().items():
        operation = document()["paths"][path][method.lower()]
        assert ("security" in operation) is protected, (method, path)


def test_every_operation_documents_the_error_body_and_no_powertools_422() -> None:
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            # Powertools' 422 is replaced by the API's 400; 422 is only Idempotency-Key's reuse
            assert "HTTPValidationError" not in json.dumps(responses), (method, path)
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert ("422" in responses) is ("idempotency-key" in headers), (method, path)
            assert set(ERROR_STATUSES) <= set(responses), (method, path)
            successes = [s for s in responses if s.startswith("2")]
            assert len(successes) == 1, (method, path, successes)
    records = document()["paths"]["/tenants/{tenant_id}/records"]["post"]["responses"]
    assert "201" in records  # the status the handler declares, not Powertools' default 200
    file_get = document()["paths"]["/tenants/{tenant_id}/files/{key}"]["get"]["responses"]["200"]
    assert "application/octet-stream" in file_get["content"]
    assert (
        "$ref"
        in document()["paths"]["/tenants/{tenant_id}/records"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"]
    )


IDEMPOTENT = {
    ("POST", "/tenants"),
    ("POST", "/tenants/{tenant_id}/users"),
    ("POST", "/tenants/{tenant_id}/records"),
    ("POST", "/tenants/{tenant_id}/uploads"),
    ("POST", "/tenants/{tenant_id}/clients"),
}


def test_every_operation_is_described_grouped_and_typed() -> None:
    tags = [t["name"] for t in document()["tags"]]
    assert tags == [t.value for t in ApiTag]
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            where = (method.upper(), path)
            assert operation["summary"] != f"{method.upper()} {path}", where  # not Powertools' default
            assert operation.get("description"), where
            assert len(operation["tags"]) == 1, where
            assert operation["tags"][0] in tags, where
            (success,) = [r for s, r in operation["responses"].items() if s.startswith("2")]
            for media, content in success.get("content", {}).items():
                if media == "application/json" and path != "/openapi.json":
                    assert "$ref" in content["schema"], where  # a reply model, not a bare object


def test_the_posts_that_create_take_an_idempotency_key() -> None:
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert ("idempotency-key" in headers) is ((method.upper(), path) in IDEMPOTENT), (method, path)
            if (method.upper(), path) in IDEMPOTENT:
                for status in ("409", "422"):
                    schema = operation["responses"][status]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_the_committed_document_is_the_generated_one() -> None:
    # The deployed API serves functions/docs/openapi.json at /openapi.json and /docs.
    committed = json.loads((REAL_TEMPLATE.parent / "functions" / "docs" / "openapi.json").read_text())
    assert committed == document(), "functions/docs/openapi.json is stale: run `make openapi`"
