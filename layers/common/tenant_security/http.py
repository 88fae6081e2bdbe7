"""The REST handlers' shared front: one resolver factory, one error mapping.

Every API function builds its router with :func:`make_resolver`, so every route answers bad input
the same way: ``{"error", "message"[, "fields"]}`` with a 4xx status, and an unexpected exception
becomes a bare 500 with the request id (its details go to the log, never to the client).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from tenant_security.aws import is_transient
from tenant_security.errors import (
    BadRequest,
    DomainError,
    MalformedJson,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
    fields_of,
)
from tenant_security.observability import bind_request, logger, record_metric

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
    return ValidationFailed("request is not valid", fields=fields_of(errors))


def _proxy_reply(err: DomainError) -> dict[str, Any]:
    return {
        "statusCode": err.status,
        "headers": {"Content-Type": JSON, **err.headers},
        "body": json.dumps(err.body()),
        "isBase64Encoded": False,
    }


_REPLACEMENT = "\ufffd"  # what a decoder puts where bytes were not UTF-8


class GuardedResolver(APIGatewayRestResolver):
    """A REST resolver that checks a JSON body's content type and size before anything else.

    Powertools validates the body before user middlewares run, so these checks live in
    :meth:`resolve`: a 2 MB body is refused with 413 before it is parsed.
    """

    def __init__(self, max_json_body_bytes: int, raw_body_prefixes: tuple[str, ...]) -> None:
        super().__init__(enable_validation=True)
        self.max_json_body_bytes = max_json_body_bytes
        self.raw_body_prefixes = raw_body_prefixes

    def body_error(self, event: Mapping[str, Any]) -> DomainError | None:
        """Why a request body is refused before parsing, or None."""
        body = event.get("body")
        resource = str(event.get("resource") or "")
        if (
            not body
            or event.get("httpMethod") not in _BODY_METHODS
            or resource.startswith(self.raw_body_prefixes)
        ):
            return None
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type != JSON and not content_type.endswith("+json"):
            return UnsupportedMediaType(f"send the body as {JSON}")
        if len(body) > self.max_json_body_bytes:
            return PayloadTooLarge(f"JSON body larger than {self.max_json_body_bytes} bytes")
        return None

    def encoding_error(self, event: Mapping[str, Any]) -> DomainError | None:
        """400 when the path, a path or query parameter or a JSON body was not valid UTF-8.

        API Gateway hands invalid bytes on as U+FFFD; nothing downstream should take a
        mis-decoded name for a real one (a file key, a user name, a filter).
        """
        values = [str(event.get("path") or "")]
        values += [str(v) for v in (event.get("pathParameters") or {}).values()]
        for name, items in (event.get("multiValueQueryStringParameters") or {}).items():
            values += [str(name), *(str(v) for v in items or [])]
        raw = str(event.get("resource") or "").startswith(self.raw_body_prefixes)
        if not event.get("isBase64Encoded") and not raw:  # a file's bytes are its own business
            values.append(str(event.get("body") or ""))
        if any(_REPLACEMENT in value for value in values):
            return BadRequest("the request is not valid UTF-8")
        return None

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        # Who is asking goes on every log line: the authorizer's word, else the path's tenant.
        authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
        path_tenant = (event.get("pathParameters") or {}).get("tenant_id")
        bind_request(authorizer.get("tenant_id") or path_tenant, authorizer.get("user"))
        refused = self.encoding_error(event) or self.body_error(event)
        if refused is not None:
            return _proxy_reply(refused)
        return super().resolve(event, context)


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
    app = GuardedResolver(max_json_body_bytes, tuple(raw_body_prefixes))

    @app.exception_handler(DomainError)
    def _domain(exc: DomainError) -> Response[str]:
        if exc.status == 429 or exc.code.endswith("quota_exceeded"):
            record_metric("QuotaRefusal", quota=exc.code)
        return error_response(exc)

    @app.exception_handler(json.JSONDecodeError)
    def _malformed(_exc: json.JSONDecodeError) -> Response[str]:
        return error_response(MalformedJson("request body is not valid JSON"))

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
        return error_response(DomainError(str(exc.msg), status=exc.status_code, code="request_error"))

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        if is_transient(exc):
            # AWS is down, throttling or slow: the request may be retried; nothing was half-done
            # that the domain code did not undo.
            logger.warning("AWS unavailable", extra={"error_type": type(exc).__name__})
            return error_response(
                ServiceUnavailable("a dependency is unavailable; try again", headers={"Retry-After": "1"})
            )
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
