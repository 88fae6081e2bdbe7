"""The console script's side of the REST API: an HTTP client and the saved sign-in session.

Plain ``urllib`` (no HTTP library among the runtime dependencies). A token is sent only over
HTTPS, or over HTTP to this machine (the local cloud), and only to the URL the user chose: a
redirect is never followed, so a bearer token never travels on to another host or scheme. The
session file is written with :mod:`tenant_security.private_files` (0600, never through a
symlink) and holds the access token only: never a password, a TOTP secret or a one-time code.
"""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tenant_security.private_files import (
    DirectoryPolicy,
    private_directory,
    read_private_file,
    write_private_file,
)


class Scheme(StrEnum):
    """The URL schemes the API may be reached by."""

    HTTPS = "https"
    HTTP = "http"  # only to this machine


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is this machine: ``localhost``, 127.0.0.0/8 or ::1."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it could resolve anywhere
        return False


class ApiError(Exception):
    """The API refused or could not be reached (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def checked_api_url(url: str, *, loopback_only: bool = False) -> str:
    """The API's base URL, refused (``ValueError``) unless HTTPS or HTTP to this machine; with
    ``loopback_only``, unless it is this machine whatever the scheme (the local cloud's)."""
    parts = urllib.parse.urlsplit(url.strip())
    local = is_loopback_host(parts.hostname)
    if parts.scheme not in tuple(Scheme) or not parts.hostname or (parts.scheme == Scheme.HTTP and not local):
        raise ValueError(f"{url!r}: the API URL must be https:// (http:// only for this machine)")
    if loopback_only and not local:
        raise ValueError(f"{url!r} is not on this machine (127.0.0.0/8, ::1 or localhost)")
    return url.strip().rstrip("/")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Hands a 3xx back as an ``HTTPError`` instead of following it with the same headers."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"

# urllib's default opener follows redirects, Authorization header and all: never used.
_OPENER = urllib.request.build_opener(_NoRedirects)
# To this machine, never through a proxy ($http_proxy): plain HTTP is allowed only because it
# does not leave the machine, and a proxy would carry the password on in clear.
_DIRECT = urllib.request.build_opener(_NoRedirects, urllib.request.ProxyHandler({}))


def _redirect_refusal(status: int, url: str, location: str | None) -> ApiError:
    """The error for a 3xx from ``url``: it names where the API wanted the request to go."""
    target = urllib.parse.urlsplit(urllib.parse.urljoin(url, location or ""))
    where = f"{target.scheme}://{target.netloc}" if location else "nowhere (no Location)"
    return ApiError(
        status,
        "redirect",
        f"the API answered {status}, redirecting to {where}; not followed "
        "(the token goes only to the URL you signed in to: use the final URL)",
    )


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
        """The reply's JSON; :class:`ApiError` for a 3xx (never followed), a 4xx/5xx or no answer."""
        return self.exchange(method, path, body, token=token)[0]

    def exchange(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The reply's JSON and headers (``If-Match`` and ``ETag``, say); errors as :meth:`call`."""
        sent = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            sent["Content-Type"] = content_type
        if token or self.token:
            sent["Authorization"] = f"Bearer {token or self.token}"
        return self._send(method, path, None if body is None else json.dumps(body).encode(), sent)

    def post_form(self, path: str, fields: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
        """POST ``fields`` as ``application/x-www-form-urlencoded`` with ``headers`` only (never the
        bearer token): the OAuth 2.0 token endpoint's request. Errors as :meth:`call`."""
        sent = {"Accept": "application/json", **headers, "Content-Type": FORM_MEDIA_TYPE}
        return self._send("POST", path, urllib.parse.urlencode(fields).encode(), sent)[0]

    def get_bytes(self, path: str, accept: str = "application/json") -> bytes:
        """GET ``path`` as the bearer and the reply's body byte for byte (an audit record's
        stored bytes, say); errors as :meth:`call`."""
        sent = {"Accept": accept}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        return self._open("GET", path, None, sent)[0]

    def _send(
        self, method: str, path: str, data: bytes | None, sent: dict[str, str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        body, headers = self._open(method, path, data, sent)
        return _json(body), headers

    def _open(
        self, method: str, path: str, data: bytes | None, sent: dict[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        request = urllib.request.Request(  # noqa: S310 - checked_api_url allows https (http for loopback)
            self.base_url + path, data=data, headers=sent, method=method
        )
        try:
            opener = _DIRECT if is_loopback_host(urllib.parse.urlsplit(self.base_url).hostname) else _OPENER
            with opener.open(request, timeout=self.timeout) as reply:
                return reply.read(), dict(reply.headers.items())
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise _redirect_refusal(exc.code, request.full_url, exc.headers.get("Location")) from None
            payload = _json(exc.read())
            # OAuth 2.0's errors (RFC 6749 §5.2) say ``error_description``, the platform's ``message``
            message = payload.get("error_description") or payload.get("message") or exc.reason
            raise ApiError(exc.code, str(payload.get("error", "error")), str(message)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, "unreachable", f"{self.base_url}: {reason}") from None


class SessionKind(StrEnum):
    """Who a saved session is: a person (``username``) or an API client (``username`` is its
    client id; its token is not refreshed: when it expires, ``login --client-id`` again)."""

    PERSON = "person"
    CLIENT = "client"


@dataclass
class Session:
    """Who ``tenant-security login`` signed in, and the token it got."""

    api_url: str
    tenant_id: str
    username: str
    access_token: str
    expires_at: float
    kind: str = SessionKind.PERSON  # sessions saved before API clients existed are a person's

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at - 5

    def client(self) -> ApiClient:
        return ApiClient(self.api_url, self.access_token)

    @property
    def is_client(self) -> bool:
        """Whether an API client signed in (``login --client-id``), not a person."""
        return self.kind == SessionKind.CLIENT


# Nobody but its owner may add, rename or remove files where the session is kept.
SESSION_DIRECTORY_POLICY = DirectoryPolicy.OWNER_ONLY


def check_session_directory(path: Path) -> None:
    """Make sure a session can be saved at ``path`` (its directory made 0700 when missing), so that
    ``login`` stops before the password rather than after the sign-in;
    :class:`~tenant_security.private_files.UnsafeFile` when others can write the directory."""
    private_directory(path.parent, SESSION_DIRECTORY_POLICY)


def save_session(session: Session, path: Path) -> None:
    """Write the session readable by its owner only (replacing an earlier one, or a symlink there);
    :class:`~tenant_security.private_files.UnsafeFile` when others can write its directory."""
    write_private_file(path, json.dumps(asdict(session)), SESSION_DIRECTORY_POLICY)


def load_session(path: Path) -> Session | None:
    """The saved session, or None when there is none (or it is unreadable);
    :class:`~tenant_security.private_files.UnsafeFile` for a symlink or a file others could read."""
    try:
        return Session(**json.loads(read_private_file(path)))
    except (OSError, ValueError, TypeError):
        return None


def api_command(
    session: Callable[[], Session | int | None],
    failure: Callable[[ApiError], int],
    action: Callable[[Session, Any], int],
) -> Callable[[Any], int]:
    """A command that runs ``action(session, args)`` as the signed-in user: ``session()`` is the
    saved session (or the exit code saying why there is none), ``failure(error)`` the exit code
    of an API error."""

    def runner(args: Any) -> int:
        current = session()
        if not isinstance(current, Session):
            return current if isinstance(current, int) else 5
        try:
            return action(current, args)
        except ApiError as exc:
            return failure(exc)

    return runner
