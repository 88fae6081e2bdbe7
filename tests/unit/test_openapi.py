"""The OpenAPI document generated from the handlers against the routes of template.yaml."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from localcloud.openapi import ERROR_STATUSES, build_openapi, routes_of
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
            assert "422" not in responses, (method, path)
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


def test_the_committed_document_is_the_generated_one() -> None:
    # The deployed API serves functions/docs/openapi.json at /openapi.json and /docs.
    committed = json.loads((REAL_TEMPLATE.parent / "functions" / "docs" / "openapi.json").read_text())
    assert committed == document(), "functions/docs/openapi.json is stale: run `make openapi`"
