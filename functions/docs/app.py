"""The API in the browser: GET /docs (Swagger UI), /openapi.json, /mfa (MFA enrolment) and /static.

Public and static: no AWS access and no tenant data. The OpenAPI document is generated from the
handlers (``make openapi``; a test keeps the committed copy current). Pages load only their own
scripts and styles (a Content-Security-Policy with no inline script), and the Swagger UI bundle
is the copy Powertools ships, so nothing is fetched from a CDN.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import aws_lambda_powertools.event_handler as powertools_event_handler
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenant_security.api_reference import ApiTag
from tenant_security.errors import NotFound
from tenant_security.headers import PAGE_CSP, SECURITY_HEADERS
from tenant_security.http import make_resolver
from tenant_security.observability import logger

HERE = Path(__file__).parent
STATIC = HERE / "static"
SWAGGER_UI = Path(powertools_event_handler.__file__).parent / "openapi" / "swagger_ui"
# /static/{asset}: exactly these files, nothing else on disk is reachable.
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui.js": (SWAGGER_UI / "swagger-ui-bundle.min.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": (SWAGGER_UI / "swagger-ui.min.css", "text/css; charset=utf-8"),
    "docs.js": (STATIC / "docs.js", "text/javascript; charset=utf-8"),
    "mfa.js": (STATIC / "mfa.js", "text/javascript; charset=utf-8"),
    "pages.css": (STATIC / "pages.css", "text/css; charset=utf-8"),
}

app = make_resolver()


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@cache
def _openapi() -> dict[str, Any]:
    return dict(json.loads(_read(HERE / "openapi.json")))


def _page(name: str) -> Response[str]:
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=_read(STATIC / name),
        headers={**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"},
    )


def _base_path() -> str:
    """The stage (or custom-domain mapping) in front of the routes: ``/dev`` for ``/dev/docs``."""
    event = app.current_event
    full = str((event.raw_event.get("requestContext") or {}).get("path") or event.path)
    return full[: -len(event.path)] if full.endswith(event.path) else ""


@app.get(
    "/docs",
    summary="API reference (Swagger UI)",
    description="This document in Swagger UI, grouped by what you do; try requests with a bearer token.",
    tags=[ApiTag.SERVICE],
    responses={200: {"description": "Swagger UI", "content": {"text/html": {}}}},
)
def swagger_ui() -> Response[str]:
    """Swagger UI over this API's OpenAPI document."""
    return _page("docs.html")


@app.get(
    "/mfa",
    summary="First sign-in page",
    description="In the browser: password, then the authenticator's QR code, then the first code.",
    tags=[ApiTag.SIGN_IN],
    responses={200: {"description": "MFA enrolment page", "content": {"text/html": {}}}},
)
def mfa_enrolment() -> Response[str]:
    """First sign-in: password, then the authenticator's QR code, then the first code."""
    return _page("mfa.html")


@app.get(
    "/openapi.json",
    summary="OpenAPI document",
    description="This API's OpenAPI 3.1 document, its server being the stage that serves it.",
    tags=[ApiTag.SERVICE],
    responses={200: {"description": "OpenAPI 3.1 document", "content": {"application/json": {"schema": {}}}}},
)
def openapi_document() -> Response[str]:
    """The OpenAPI 3.1 document of the API, its server being this stage -- and the OAuth 2.0
    token URL too: an absolute path with the stage, which every client resolves alike (a relative
    one resolves against the server URL by OAS 3.1 and against the page by Swagger UI)."""
    base = _base_path()
    document = {**copy.deepcopy(_openapi()), "servers": [{"url": base or "/"}]}
    schemes = document.get("components", {}).get("securitySchemes", {})
    for scheme in schemes.values():
        for flow in (scheme.get("flows") or {}).values():
            if "tokenUrl" in flow and not str(flow["tokenUrl"]).startswith(("/", "http")):
                flow["tokenUrl"] = f"{base}/{flow['tokenUrl']}"
    return Response(
        status_code=200,
        content_type="application/json",
        body=json.dumps(document),
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@app.get(
    "/static/<asset>",
    summary="Page asset",
    description="A script or stylesheet of the /docs and /mfa pages (served here, never from a CDN).",
    tags=[ApiTag.SERVICE],
    responses={
        200: {
            "description": "Script or stylesheet",
            "content": {"text/javascript": {}, "text/css": {}},
        }
    },
)
def static_asset(asset: str) -> Response[str]:
    """A script or stylesheet of the pages above."""
    if asset not in ASSETS:
        raise NotFound("no such asset")
    path, content_type = ASSETS[asset]
    return Response(
        status_code=200,
        content_type=content_type,
        body=_read(path),
        headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"},
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point."""
    return app.resolve(event, context)
