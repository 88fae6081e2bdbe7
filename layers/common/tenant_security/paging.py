"""Opaque ``next`` tokens of paged listings: the last key returned, URL-safe base64."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from tenant_security.errors import ValidationFailed


def encode_next(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_next(token: str, is_valid: Callable[[str], bool]) -> str:
    """The key a token continues after; 400 unless ``is_valid`` accepts it (we issued it)."""
    try:
        key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not key or not is_valid(key):
        raise ValidationFailed(
            "invalid next token", fields=[{"field": "query.next", "message": "not a page token"}]
        )
    return key
