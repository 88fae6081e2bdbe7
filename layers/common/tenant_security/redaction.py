"""Redaction of secrets before anything is written to a log line.

Two nets: values under sensitive keys (password, token, secret, code, ...) are replaced whole,
and strings anywhere are scrubbed of bearer tokens, JWTs, otpauth secrets and key=value pairs
whose key is sensitive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***redacted***"

# Keys whose values are secrets whatever they hold (matched case-insensitively, as substrings
# of the normalised key: "newPassword", "x-api-key", "backup_codes" all match).
_SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "apikey",
    "privatekey",
    "credential",
    "otp",
    "totp",
    "mfacode",
    "backupcode",
    "sessionkey",
    "signature",
    "plaintext",
)
_SENSITIVE_EXACT_KEYS = {"code", "codes", "pin", "key_material"}

_PATTERNS = (
    # Authorization: Bearer <anything>
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # a JWT (three base64url segments, the first starting like a JSON header)
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # an API client secret (identity/client_secrets.py SECRET_PATTERN), wherever it is pasted
    # (no word boundary before it: after a JSON escape's letter, a %3A or an "_" it is one still)
    (re.compile(r"tsk_[0-9A-Za-z]{20,}"), REDACTED),
    # otpauth://...?secret=BASE32
    (re.compile(r"(?i)(secret=)[A-Z2-7]+=*"), r"\1" + REDACTED),
    # password=..., "token": "...", code: 123456 in free text
    (
        re.compile(
            r"(?i)\b((?:[a-z_]*(?:password|secret|token|passwd|otp|code|credential)s?)"
            r"\"?\s*[:=]\s*\"?)([^\s\",&;}]+)"
        ),
        r"\1" + REDACTED,
    ),
)


def _normalise(key: str) -> str:
    return re.sub(r"[^a-z]", "", key.lower())


def is_sensitive_key(key: str) -> bool:
    """True when a field of this name holds a secret."""
    if key.lower() in _SENSITIVE_EXACT_KEYS:
        return True
    norm = _normalise(key)
    return any(part in norm for part in _SENSITIVE_KEY_PARTS)


def scrub_text(text: str) -> str:
    """Remove secrets that appear inside free text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with every secret replaced by :data:`REDACTED`."""
    if _depth > 20:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_sensitive_key(k) else redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set):
        return [redact(v, _depth + 1) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value
