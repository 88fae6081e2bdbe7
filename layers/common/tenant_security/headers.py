"""Headers: request headers looked up as HTTP does (case-insensitively), and the headers every
HTML page the platform serves carries (the docs pages, the HTML compliance report)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

# No inline script or style, no eval (Swagger UI sets styles through the DOM, which CSP allows).
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def standalone_page_csp(style: str) -> str:
    """The CSP of a self-contained page whose only style is the inline ``style`` (allowed by its
    hash, never by 'unsafe-inline'); no script at all."""
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """The value of header ``name`` (any case), or None."""
    wanted = name.lower()
    return next((str(v) for k, v in (headers or {}).items() if k.lower() == wanted and v is not None), None)
