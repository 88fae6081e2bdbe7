"""What an S3 error says about a write: refused (nothing stored), or unanswered (it may be)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

# S3's answers that name no object: the key (or version) is not there.
ABSENT = ("404", "NoSuchKey", "NotFound", "NoSuchVersion")


def refused(exc: BaseException) -> bool:
    """S3 answered the write with a refusal (4xx): it stored nothing. Anything else -- a timeout,
    a lost connection, a 5xx, the request's deadline inside the call -- may have stored it."""
    status = _reply_of(exc).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return isinstance(status, int) and 400 <= status < 500


def unanswered(exc: BaseException) -> bool:
    """S3 gave no answer (a timeout, a lost connection) or a 5xx: worth trying again."""
    status = _reply_of(exc).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return isinstance(exc, BotoConnectionError | HTTPClientError) or (
        isinstance(status, int) and status >= 500
    )


def retried(reply: Mapping[str, Any]) -> bool:
    """botocore sent the write more than once: an earlier attempt may have stored a version too."""
    return int(reply.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0) > 0


def _reply_of(exc: BaseException) -> dict[str, Any]:
    """The AWS reply an error carries ({} for none: botocore's timeouts carry ``response=None``)."""
    reply = getattr(exc, "response", None)
    return reply if isinstance(reply, dict) else {}


def bucket_gone(exc: BaseException) -> bool:
    return str(_reply_of(exc).get("Error", {}).get("Code", "")) == "NoSuchBucket"


def version_out(version: str | None) -> str | None:
    """A version as the API answers it (an unversioned bucket's "null" is none)."""
    return None if version in (None, "null") else version
