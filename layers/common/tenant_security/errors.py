"""Domain exceptions and their one mapping to the API's error shape (README "The API").

Every error a client sees is ``{"error": CODE, "message": TEXT}`` (plus ``"fields"`` for
validation errors) with a 4xx status. Anything else is a bug and becomes a bare 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class DomainError(Exception):
    """Base of every error that is the client's to fix (or to wait out)."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        fields: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.message = message
        self.fields = [dict(f) for f in fields] if fields else None
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON error body for this error."""
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.fields is not None:
            out["fields"] = self.fields
        return out


class BadRequest(DomainError):
    status, code = 400, "bad_request"


class MalformedJson(DomainError):
    status, code = 400, "malformed_json"


class ValidationFailed(DomainError):
    status, code = 400, "validation_error"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


class PayloadTooLarge(DomainError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(DomainError):
    status, code = 415, "unsupported_media_type"


class NotAcceptable(DomainError):
    """406: the reply cannot be sent in the representation the request's Accept asks for."""

    status, code = 406, "not_acceptable"


class Locked(DomainError):
    status, code = 423, "locked"


class RateLimited(DomainError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(DomainError):
    """A dependency is down or slow: worth retrying (``Retry-After: 1`` unless told otherwise)."""

    status, code = 503, "service_unavailable"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": "1"})
        super().__init__(message, **kwargs)


def fields_of(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic-style error dicts as ``[{field, message, type}]`` with dotted paths, no input echoed."""
    return [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())) or "body",
            "message": str(err.get("msg", "invalid")),
            "type": str(err.get("type", "value_error")),
        }
        for err in errors
    ]


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """A pydantic ValidationError's failing fields (see :func:`fields_of`)."""
    return fields_of(exc.errors(include_url=False, include_input=False))


def from_validation_error(exc: ValidationError, message: str = "request is not valid") -> ValidationFailed:
    """A 400 ``validation_error`` that lists each failing field."""
    return ValidationFailed(message, fields=field_errors(exc))
