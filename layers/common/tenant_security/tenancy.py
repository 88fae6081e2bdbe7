"""The names every entry point checks: tenant ids, user names and e-mail addresses (the OpenAPI document).

A tenant id has 3 to 32 characters: lower-case letters, digits and hyphens, starting with a
letter. Such an id fits S3 bucket names (``<prefix>-<deployment id>-tenant-<id>-data`` stays
within 63 characters with the default prefix) and PostgreSQL identifiers (always quoted through
``psycopg.sql.Identifier``). A user name has 2 to 64 lower-case letters, digits and ``. _ @ + -``.
Each rule is written once here, for the request models and the path checks alike.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

TENANT_ID_PATTERN = r"^[a-z][a-z0-9-]{2,31}$"
PREFIX_PATTERN = r"^[a-z][a-z0-9-]{1,19}$"
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._@+-]{1,63}$"
# A local part, an @ and a domain with a dot; 254 characters at most (RFC 5321's path limit).
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$"

_TENANT_ID_RE = re.compile(TENANT_ID_PATTERN)
_USERNAME_RE = re.compile(USERNAME_PATTERN)

TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]


def is_valid_tenant_id(value: object) -> bool:
    """True when ``value`` is a string that follows the tenant id rule."""
    # fullmatch: "$" alone would accept a trailing newline.
    return isinstance(value, str) and _TENANT_ID_RE.fullmatch(value) is not None


def require_tenant_id(value: object, field: str = "tenant_id") -> str:
    """Return ``value`` if it is a valid tenant id, else raise a 400 validation error."""
    from tenant_security.errors import ValidationFailed

    if not is_valid_tenant_id(value):
        raise ValidationFailed(
            "invalid tenant id",
            fields=[
                {
                    "field": field,
                    "message": "3 to 32 lower-case letters, digits or hyphens, starting with a letter",
                }
            ],
        )
    return str(value)


def is_valid_username(value: object) -> bool:
    """Lower-case letters, digits and ``. _ @ + -``; 2 to 64 characters."""
    return isinstance(value, str) and _USERNAME_RE.fullmatch(value) is not None


def require_username(value: object, field: str = "username") -> str:
    """Return ``value`` if it is a valid user name, else raise a 400 validation error."""
    from tenant_security.errors import ValidationFailed

    if not is_valid_username(value):
        raise ValidationFailed("invalid user name", fields=[{"field": field, "message": "not a user name"}])
    return str(value)
