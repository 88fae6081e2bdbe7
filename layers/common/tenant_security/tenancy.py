"""The tenant id rule of API.md, checked at every entry point.

3 to 32 characters: lower-case letters, digits and hyphens, starting with a letter. Such an id fits
S3 bucket names (``<prefix>-<deployment id>-tenant-<id>-data`` stays within 63 characters with the
default prefix) and PostgreSQL identifiers (always quoted through ``psycopg.sql.Identifier``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

TENANT_ID_PATTERN = r"^[a-z][a-z0-9-]{2,31}$"
PREFIX_PATTERN = r"^[a-z][a-z0-9-]{1,19}$"

_TENANT_ID_RE = re.compile(TENANT_ID_PATTERN)

TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]


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
