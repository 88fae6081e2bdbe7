"""What the routes tell the OpenAPI document besides their types: the group (tag) of each
operation, and its success reply as a model.

Swagger UI (GET /docs) lists operations by tag, in :class:`ApiTag`'s order, so a reader finds them
by what they want to do. The errors every operation can answer are added once by the generator
(``make openapi``, tenant_security_tools.openapi), all with the one error body.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class ApiTag(StrEnum):
    """Groups of operations, by what a user does."""

    SIGN_IN = "sign-in"
    TENANTS = "tenants"
    USERS = "users"
    POLICIES = "policies"
    MACHINE_ACCESS = "machine-access"
    DATA = "data"
    AUDIT = "audit"
    COMPLIANCE = "compliance"
    SERVICE = "service"


TAG_DESCRIPTIONS: dict[ApiTag, str] = {
    ApiTag.SIGN_IN: "Password, MFA enrolment and verification, tokens, sign-out",
    ApiTag.TENANTS: "Onboard, inspect, suspend, reinstate and offboard tenants; quotas; sessions",
    ApiTag.USERS: "A tenant's users and their roles",
    ApiTag.POLICIES: "The tenant's security policy: read, change (ETag, merge patch), history, rollout",
    ApiTag.MACHINE_ACCESS: "API clients and their OAuth 2.0 client credentials tokens (machine access)",
    ApiTag.DATA: "Files, records and secrets, under the tenant's own keys",
    ApiTag.AUDIT: "The tenant's tamper-evident audit trail and its verification",
    ApiTag.COMPLIANCE: "SOX, GDPR and ISO 27001 reports; GDPR export and erasure of a data subject",
    ApiTag.SERVICE: "Health, this reference and its pages",
}

# The project's error body (the generator adds it to components as "Error").
ERROR_BODY: dict[str, Any] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
# The errors of a POST that takes an Idempotency-Key, besides those of every route.
IDEMPOTENCY_ERRORS: dict[int, Any] = {
    409: {
        "description": "A request with this Idempotency-Key is still running (idempotency_key_in_use)",
        "content": ERROR_BODY,
    },
    422: {
        "description": "This Idempotency-Key was used with another body or route (idempotency_key_reused)",
        "content": ERROR_BODY,
    },
}


def reply(model: type[BaseModel], status: int = 200, description: str = "") -> dict[int, Any]:
    """``responses=`` of a route whose success is a JSON ``model``."""
    return {
        status: {
            "description": description or (model.__doc__ or model.__name__).strip().split("\n")[0],
            "content": {"application/json": {"model": model}},
        }
    }


# What a replayed reply carries (tenant_security.idempotency.REPLAYED_HEADER), as Stripe's API does.
REPLAYED_HEADERS: dict[str, Any] = {
    "Idempotent-Replayed": {
        "description": "true: the reply a request with the same Idempotency-Key got; nothing was done again",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def idempotent_reply(model: type[BaseModel], status: int, description: str) -> dict[int, Any]:
    """``responses=`` of a POST that takes an Idempotency-Key: its success (which may be a replay,
    with the ``Idempotent-Replayed`` header) and :data:`IDEMPOTENCY_ERRORS`."""
    responses = reply(model, status, description)
    responses[status]["headers"] = REPLAYED_HEADERS
    return responses | IDEMPOTENCY_ERRORS


# The policy routes' ETag and the refusals particular to them (If-Match, the lock-out guard).
POLICY_HEADERS: dict[str, Any] = {
    "ETag": {"description": "the policy revision", "schema": {"type": "string"}}
}
POLICY_ERRORS: dict[int, Any] = {
    400: {"description": "The document is not valid (``fields`` names each problem)", "content": ERROR_BODY},
    409: {
        "description": "``would_lock_out``: your own next request would be refused; send force=true",
        "content": ERROR_BODY,
    },
    412: {"description": "If-Match names another revision: read the policy again", "content": ERROR_BODY},
}


def policy_reply(model: type[BaseModel]) -> dict[int, Any]:
    """``responses=`` of a route that answers the policy document with its ETag."""
    responses = reply(model)
    responses[200]["headers"] = POLICY_HEADERS
    return {**responses, **POLICY_ERRORS}


def oauth_reply(model: type[BaseModel], error: type[BaseModel]) -> dict[int, Any]:
    """``responses=`` of the token endpoint: its success, and RFC 6749 §5.2's errors (400 and 401
    with ``error``'s body; the generator keeps them instead of the API's own)."""
    errors = {"application/json": {"model": error}}
    return reply(model) | {
        400: {
            "description": "invalid_request, unsupported_grant_type, invalid_scope or unauthorized_client",
            "content": errors,
        },
        401: {
            "description": "invalid_client (with WWW-Authenticate: Basic)",
            "content": errors,
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        },
    }
