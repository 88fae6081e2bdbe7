"""The REST handlers' shared front: one resolver factory, one error mapping.

Every API function builds its router with :func:`make_resolver`, so every route answers bad input
the same way: ``{"error", "message"[, "fields"]}`` with a 4xx status, and an unexpected exception
becomes a bare 500 with the request id (its details go to the log, never to the client).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from tenant_security.errors import (
    DomainError,
    MalformedJson,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from tenant_security.observability import logger

JSON = "application/json"
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def error_response(err: DomainError) -> Response[str]:
    """The HTTP reply of a domain error (the one place errors become HTTP)."""
    return Response(
        status_code=err.status,
        content_type=JSON,
        body=json.dumps(err.body()),
        headers=err.headers or None,
    )


def _request_validation_error(exc: RequestValidationError) -> DomainError:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return MalformedJson("request body is not valid JSON")
    fields = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ())) or "body",
            "message": str(e.get("msg", "invalid")),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]
    return ValidationFailed("request is not valid", fields=fields)


def make_resolver(
    *,
    max_json_body_bytes: int = 256 * 1024,
    raw_body_prefixes: Iterable[str] = (),
) -> APIGatewayRestResolver:
    """A Powertools REST resolver with validation, body guards and the API.md error mapping.

    ``raw_body_prefixes``: resource paths (e.g. ``/tenants/{t}/files``) whose bodies are raw bytes
    rather than JSON; they skip the JSON content-type and size checks (their handlers enforce
    their own limits).
    """
    app = APIGatewayRestResolver(enable_validation=True)
    raw_prefixes = tuple(raw_body_prefixes)

    def body_guard(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        event = app.current_event
        body = event.body
        resource = event.resource or ""
        if body and event.http_method in _BODY_METHODS and not resource.startswith(raw_prefixes):
            content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
            if content_type and content_type != JSON and not content_type.endswith("+json"):
                return error_response(UnsupportedMediaType(f"send the body as {JSON}"))
            if len(body) > max_json_body_bytes:
                return error_response(
                    PayloadTooLarge(f"JSON body larger than {max_json_body_bytes} bytes")
                )
        return next_middleware(app)

    app.use(middlewares=[body_guard])

    @app.exception_handler(DomainError)
    def _domain(exc: DomainError) -> Response[str]:
        return error_response(exc)

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(_exc: RequestUnsupportedContentType) -> Response[str]:
        return error_response(UnsupportedMediaType(f"send the body as {JSON}"))

    @app.exception_handler(RequestValidationError)
    def _validation(exc: RequestValidationError) -> Response[str]:
        return error_response(_request_validation_error(exc))

    @app.not_found
    def _not_found(_exc: NotFoundError) -> Response[str]:
        return error_response(NotFound("no such route"))

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response[str]:
        return error_response(DomainError(exc.msg, status=exc.status_code, code="request_error"))

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        # A bug: log it (redacted) and tell the client only what it needs to report it.
        logger.exception("unhandled error", extra={"error_type": type(exc).__name__})
        request_id = app.current_event.request_context.request_id
        return Response(
            status_code=500,
            content_type=JSON,
            body=json.dumps(
                {"error": "internal_error", "message": "internal error", "request_id": request_id}
            ),
        )

    return app
