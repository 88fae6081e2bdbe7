"""File keys and what the files API allows: key rules, object metadata names, sizes, link lifetimes."""

from __future__ import annotations

import re
from urllib.parse import quote

from tenant_security import paging
from tenant_security.errors import ValidationFailed

PURPOSE_FILE = "file"
MAX_KEY_BYTES = 512
SIZE_METADATA = "plaintext-size"
# How the bytes are protected: "esdk" (client-side, the API's PUT) or "sse-kms" (presigned uploads).
PROTECTION_METADATA = "protection"
TARGET_METADATA = "target-key"
STAGING_PREFIX = ".uploads/"
UPLOAD_URL_SECONDS = 900
MAX_UPLOAD_BYTES = 5 * 1024**3  # one S3 POST (and one CopyObject) takes at most 5 GiB
# A granted upload stays reserved (and can be completed) this long after its link expires (a POST
# in flight may finish); the sweep (every 5 minutes) then removes whatever its staging key holds.
UPLOAD_GRACE_SECONDS = 300
# The data bucket's lifecycle rule (onboarding.buckets.DATA_LIFECYCLE): noncurrent versions go after 30
# days, at the next midnight UTC or later; they are released a day after that.
NONCURRENT_DAYS = 30
DOWNLOAD_URL_SECONDS = 300
# What a file sent or read through the API itself may weigh. Lambda takes and returns at most
# 6 MiB (6,291,456 bytes) per synchronous invocation, and the file travels as base64 (4 bytes per
# 3) inside the proxy event or response, beside its envelope: headers (API Gateway admits 10,240
# bytes of request line and headers; the event carries them twice, JSON-escaped), the request and
# authorizer context, the path three times. 64 KiB bounds that envelope, so the largest file is
# (6,291,456 - 65,536) / 4 * 3 = 4,669,440 bytes (about 4.45 MiB); larger files go through
# POST /tenants/{t}/uploads and POST /tenants/{t}/downloads.
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
PROXY_ENVELOPE_BYTES = 64 * 1024
MAX_API_FILE_BYTES = (LAMBDA_SYNC_PAYLOAD_BYTES - PROXY_ENVELOPE_BYTES) // 4 * 3
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def check_key(key: str) -> str:
    """A file key: no leading '/', no '.' or '..' segment, no empty segment, no control characters."""
    segments = key.split("/")
    if (
        not key
        or len(key.encode()) > MAX_KEY_BYTES
        or key.startswith(("/", STAGING_PREFIX))
        or any(s in ("", ".", "..") for s in segments)
        or _UNSAFE.search(key)
    ):
        raise ValidationFailed(
            "invalid file key",
            fields=[
                {
                    "field": "path.key",
                    "message": f"1-{MAX_KEY_BYTES} bytes of '/'-separated names; no '.', '..', empty names, "
                    f"leading '/', backslashes, control characters or leading '{STAGING_PREFIX}'",
                }
            ],
        )
    return key


def attachment(key: str) -> str:
    """``Content-Disposition`` for a file: always an attachment, named after the key's last name
    (RFC 6266: an ASCII fallback and the UTF-8 name, percent-encoded)."""
    name = key.rsplit("/", 1)[-1] or "file"
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _is_safe_key(key: str) -> bool:
    try:
        check_key(key)
    except ValidationFailed:
        return False
    return True


def decode_next(token: str) -> str:
    """The file key a ``next`` token of :meth:`TenantFiles.list` continues after (400 otherwise)."""
    return paging.decode_next(token, _is_safe_key)
