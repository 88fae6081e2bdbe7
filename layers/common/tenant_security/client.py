"""The console script's side of the REST API: an HTTP client and the saved sign-in session.

Plain ``urllib`` (no HTTP library in the layer). A token is sent only over HTTPS, or over HTTP to
this machine (the local cloud). The session file is created 0600 in a 0700 directory and holds
the access token only: never a password, a TOTP secret or a one-time code.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ApiError(Exception):
    """The API refused or could not be reached (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def checked_api_url(url: str) -> str:
    """The API's base URL, refused unless HTTPS (or HTTP to this machine)."""
    parts = urllib.parse.urlsplit(url.strip())
    local = parts.hostname in LOCAL_HOSTS
    if parts.scheme not in ("https", "http") or not parts.hostname or (parts.scheme == "http" and not local):
        raise ValueError(f"{url!r}: the API URL must be https:// (http:// only for this machine)")
    return url.strip().rstrip("/")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {"value": value}


@dataclass
class ApiClient:
    """JSON calls to the platform API; ``token`` is the bearer of every call unless one is given."""

    base_url: str
    token: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self.base_url = checked_api_url(self.base_url)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """The reply's JSON; :class:`ApiError` for a 4xx/5xx or no answer."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        request = urllib.request.Request(  # noqa: S310 - checked_api_url allows https (http for loopback)
            self.base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310 - as above
                return _json(reply.read())
        except urllib.error.HTTPError as exc:
            payload = _json(exc.read())
            raise ApiError(
                exc.code, str(payload.get("error", "error")), str(payload.get("message", exc.reason))
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, "unreachable", f"{self.base_url}: {reason}") from None


@dataclass
class Session:
    """Who ``tenant-security login`` signed in, and the token it got."""

    api_url: str
    tenant_id: str
    username: str
    access_token: str
    expires_at: float

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at - 5

    def client(self) -> ApiClient:
        return ApiClient(self.api_url, self.access_token)


def save_session(session: Session, path: Path) -> None:
    """Write the session readable by its owner only (replacing an earlier one)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(asdict(session), out)
    os.replace(temporary, path)


def load_session(path: Path) -> Session | None:
    """The saved session, or None when there is none (or it is unreadable)."""
    try:
        return Session(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
