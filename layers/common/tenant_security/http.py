"""The REST handlers' shared front: one resolver factory, one error mapping.

Every API function builds its router with :func:`make_resolver`, so every route answers bad input
the same way: ``{"error", "message"[, "fields"]}`` with a 4xx status, and an unexpected exception
becomes a bare 500 with the request id (its details go to the log, never to the client).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
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
from tenant_security.paths import decode_path_text

JSON = "application/json"
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# On every reply, set here once: nothing the API answers (tokens, TOTP secrets, backup codes,
# one-time passwords, secret values, exports) may be kept by a cache (RFC 6749 §5.1 for tokens),
# and no reply is to be sniffed into another type. A route may set its own Cache-Control (JWKS).
REPLY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
MAX_JSON_DEPTH = 64


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
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # C0 controls and DEL, after percent-decoding


def percent_decoded(event: Mapping[str, Any]) -> dict[str, Any]:
    """The proxy event with ``path`` and ``pathParameters`` percent-decoded: the one place a path
    is decoded, before any route, id or key rule sees it.

    A REST API hands both to Lambda as the client encoded them (``a%2Fb%20c``, ``bob%40x.io``);
    query parameters arrive decoded already. Decoded once: ``%252F`` is the text ``%2F``, never a
    ``/``. Bytes that are not UTF-8 become U+FFFD, which :meth:`GuardedResolver.encoding_error`
    refuses; control characters are left for the route and key rules to refuse.
    """
    decoded = dict(event)
    decoded["path"] = decode_path_text(event.get("path") or "")
    params = event.get("pathParameters")
    if isinstance(params, Mapping):
        decoded["pathParameters"] = {name: decode_path_text(value) for name, value in params.items()}
    return decoded


# Set in a request's context once the caller-first middleware ran for it.
_JUDGED = "caller_judged"


class GuardedResolver(APIGatewayRestResolver):
    """A REST resolver that checks a JSON body's content type and size before anything else.

    Powertools validates the body before user middlewares run, so these checks live in
    :meth:`resolve`: a 2 MB body is refused with 413 before it is parsed.
    """

    def __init__(self, max_json_body_bytes: int, raw_body_prefixes: tuple[str, ...]) -> None:
        super().__init__(enable_validation=True)
        self.max_json_body_bytes = max_json_body_bytes
        self.raw_body_prefixes = raw_body_prefixes
        # which requests a caller-first middleware judges (none until use_before_validation)
        self._guarded: Callable[[Mapping[str, Any]], bool] = lambda _event: False
        self._refused: DomainError | None = None  # this request's body refusal, while it resolves

    def use_before_validation(
        self,
        middleware: Callable[[Any, Any], Response[Any]],
        when: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> None:
        """Run ``middleware`` on every route (those whose event ``when`` accepts) before
        Powertools parses and validates the request.

        Who is calling is decided before what they sent: a caller the tenant policy refuses (an
        address outside the allow-list, no MFA, an ended session) gets its 401 or 403 whatever
        its body, learns nothing of the body's rules, and the request is recorded either way. A
        route Powertools does not validate still gets the middleware (a global one that runs it
        where the validation step did not).
        """
        validation = self._request_validation_middleware
        self._guarded = when or (lambda _event: True)

        def judged(app: Any, next_middleware: Any) -> Response[Any]:
            app.context[_JUDGED] = True

            def after_the_caller(current: Any) -> Response[Any]:
                refused, self._refused = self._refused, None
                if refused is not None:  # what :meth:`resolve` found wrong with the body, now
                    raise refused
                rest: Response[Any] = next_middleware(current)
                return rest

            return middleware(app, after_the_caller)

        def caller_first(app: Any, next_middleware: Any) -> Response[Any]:
            if not self._guarded(app.current_event.raw_event):
                return validation(app, next_middleware)
            return judged(app, lambda current: validation(current, next_middleware))

        def unvalidated_route(app: Any, next_middleware: Any) -> Response[Any]:
            if app.context.get(_JUDGED) or not self._guarded(app.current_event.raw_event):
                passed: Response[Any] = next_middleware(app)
                return passed
            return judged(app, next_middleware)

        # Powertools puts this attribute first in every validated route's stack (it calls it with
        # the app and the rest of the stack, as any middleware)
        setattr(self, "_request_validation_middleware", caller_first)  # noqa: B010 - typed as the class
        self.use([unvalidated_route])

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

    def json_error(self, event: Mapping[str, Any]) -> DomainError | None:
        """400 for a JSON body Python would parse into something no handler can use: nested
        deeper than MAX_JSON_DEPTH (a RecursionError further on), an integer over Python's
        4,300 digits, NaN or Infinity (not JSON), or a lone surrogate (not text)."""
        body = event.get("body")
        resource = str(event.get("resource") or "")
        if not body or event.get("isBase64Encoded") or resource.startswith(self.raw_body_prefixes):
            return None
        problem = json_problem(str(body))
        return MalformedJson(f"request body is not valid JSON: {problem}") if problem else None

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        event = percent_decoded(event)
        # Who is asking goes on every log line: the authorizer's word, else the path's tenant.
        authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
        path_tenant = (event.get("pathParameters") or {}).get("tenant_id")
        bind_request(authorizer.get("tenant_id") or path_tenant, authorizer.get("user"))
        path = str(event.get("path") or "")
        if path.endswith("/") and path != "/":
            # a trailing slash must not reach another route than its path names
            return _with_reply_headers(_proxy_reply(NotFound("no such route")))
        if _CONTROL.search(path):
            # No name of a route takes a control character. Refused here, not left to the route:
            # Powertools matches routes with `^...$`, and `$` also matches before a final
            # newline, so `/users/bob%0A` would run the handler for `bob` while pathParameters
            # (which the audit record reads) say `bob\n`.
            return _with_reply_headers(_proxy_reply(NotFound("no such route")))
        refused = self.encoding_error(event) or self.body_error(event) or self.json_error(event)
        if refused is not None and not self._guarded(event):
            return _with_reply_headers(_proxy_reply(refused))
        # Behind the authorizer the caller is judged first: the body's refusal (found without
        # parsing it) is raised after the caller's checks, and recorded as any refusal.
        self._refused = refused
        try:
            return _with_reply_headers(super().resolve(event, context))
        finally:
            self._refused = None


def _with_reply_headers(reply: dict[str, Any]) -> dict[str, Any]:
    """Every reply gets REPLY_HEADERS (where the route set none of its own)."""
    multi = reply.get("multiValueHeaders")
    if isinstance(multi, dict):
        present = {k.lower() for k in multi}
        for name, value in REPLY_HEADERS.items():
            if name.lower() not in present:
                multi[name] = [value]
        return reply
    headers = reply.setdefault("headers", {}) or {}
    present = {k.lower() for k in headers}
    headers.update({k: v for k, v in REPLY_HEADERS.items() if k.lower() not in present})
    reply["headers"] = headers
    return reply


def json_problem(text: str) -> str | None:
    """Why ``text`` is not JSON a handler can take, or None."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):  # 1e999: infinity to every parser that reads it as a double
            raise ValueError(f"the number {number[:40]} is out of range")
        return value

    try:
        value = json.loads(text, parse_constant=refuse_constant, parse_float=finite)
    except RecursionError:
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as exc:  # malformed, or an integer over Python's digit limit
        return "malformed" if isinstance(exc, json.JSONDecodeError) else str(exc)[:120]
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, str):
            if not _is_text(item):
                return "a string that is not text (a lone surrogate)"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _is_text(key):
                    return "a name that is not text (a lone surrogate)"
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def request_refusal(exc: Exception) -> DomainError | None:
    """The 4xx a request error of the resolver's own (before any handler) answers, or None: the
    one mapping, for the resolver's replies and for the request middleware's records of them."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, json.JSONDecodeError):
        return MalformedJson("request body is not valid JSON")
    if isinstance(exc, RequestUnsupportedContentType):
        return UnsupportedMediaType(f"send the body as {JSON}")
    if isinstance(exc, RequestValidationError):
        return _request_validation_error(exc)
    return None


def make_resolver(
    *,
    max_json_body_bytes: int = 256 * 1024,
    raw_body_prefixes: Iterable[str] = (),
) -> GuardedResolver:
    """A Powertools REST resolver with validation, body guards and the one error mapping (errors.py).

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
    def _malformed(exc: json.JSONDecodeError) -> Response[str]:
        return error_response(request_refusal(exc) or MalformedJson("request body is not valid JSON"))

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(exc: RequestUnsupportedContentType) -> Response[str]:
        return error_response(request_refusal(exc) or UnsupportedMediaType(f"send the body as {JSON}"))

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
