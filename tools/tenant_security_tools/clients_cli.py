"""``tenant-security clients create|list|rotate|delete``: a tenant's API clients through the API, as
the signed-in user (a tenant-admin, or a platform-admin for any tenant); and the token request of
``tenant-security login --client-id``, which signs in as one of them (OAuth 2.0 client credentials,
RFC 6749 §4.4).

A client's secret (``tsk_...``) is shown once, by ``create`` and ``rotate``: on stdout only, with a
warning on stderr to store it now (the API keeps only a verifier). The CLI never writes it down,
and ``login --client-id`` takes it from stdin only, never from an argument (the arguments of a
process are visible to every user of the machine, and shells keep them in their history). What
that login keeps is the access token, as a person's login does; it is not refreshed.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import Any
from urllib.parse import quote, quote_plus

from tenant_security_tools.client import ApiClient, ApiError, Session, SessionKind
from tenant_security_tools.tenant_commands import print_document, tenant_command

SHOWN_ONCE = (
    "Store the client_secret now: it is shown only this once (the API keeps no copy). "
    'Sign in with it: printf %s "$SECRET" | tenant-security login --client-id ID --client-secret-stdin'
)
LIST_COLUMNS = ("client_id", "name", "roles", "expires_at", "last_used_at")


class TokenRefusal(StrEnum):
    """The RFC 6749 §5.2 errors that refuse the client itself (exit code 5, as refused credentials)."""

    INVALID_CLIENT = "invalid_client"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    INVALID_SCOPE = "invalid_scope"


# ---------------------------------------------------------------------- signing in as a client
def client_tenant(client_id: str) -> str | None:
    """The tenant a client id names (``<tenant_id>_<20 hex digits>``), or None for no client id."""
    # imported here: the layer's module brings boto3, which no other login needs
    from tenant_security.identity.clients import tenant_of_client

    return tenant_of_client(client_id)


def looks_like_secret(value: str) -> bool:
    """Whether ``value`` is a client secret (``tsk_...``): one given as an argument has leaked."""
    from tenant_security.identity.client_secrets import SECRET_PREFIX

    return value.startswith(SECRET_PREFIX)


def basic_credentials(client_id: str, secret: str) -> str:
    """The ``Authorization`` header of ``client_secret_basic`` (RFC 6749 §2.3.1): the id and the
    secret each form-urlencoded (Appendix B), then joined by ``:`` and base64-encoded (RFC 7617)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def token_request(
    client_id: str, secret: str, scope: str | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The form fields and headers of a client credentials token request; the secret goes in the
    ``Authorization`` header only, never in the form (``client_secret_basic``)."""
    # imported here, as the token endpoint's module brings boto3 and Powertools (see client_tenant)
    from tenant_security.identity.client_credentials import GRANT_CLIENT_CREDENTIALS

    fields = {"grant_type": GRANT_CLIENT_CREDENTIALS}
    if scope:
        fields["scope"] = scope
    return fields, {"Authorization": basic_credentials(client_id, secret)}


def client_sign_in(
    api: ApiClient,
    client_id: str,
    secret: str,
    scope: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Session:
    """The session of the API client ``client_id``: its access token from POST /oauth2/token;
    :class:`ApiError` when the API refuses (``code`` is the RFC 6749 error) or gives no bearer token."""
    from tenant_security.identity.client_credentials import TOKEN_PATH

    tenant_id = client_tenant(client_id)
    if tenant_id is None:
        raise ValueError("not a client id (<tenant_id>_<20 hex digits>)")
    fields, headers = token_request(client_id, secret, scope)
    reply = api.post_form(TOKEN_PATH, fields, headers)
    token, lifetime = reply.get("access_token"), reply.get("expires_in")
    if str(reply.get("token_type", "")).lower() != "bearer" or not token or not isinstance(lifetime, int):
        raise ApiError(200, "unexpected_reply", "the token endpoint gave no bearer token with its lifetime")
    return Session(api.base_url, tenant_id, client_id, str(token), clock() + lifetime, SessionKind.CLIENT)


def add_client_login_arguments(login: argparse.ArgumentParser) -> None:
    """``login``'s arguments for signing in as an API client (checked against a person's by hand)."""
    login.add_argument("--client-id", help="sign in as this API client (not with --username)")
    login.add_argument(
        "--client-secret-stdin",
        action="store_true",
        help="read the client's secret from stdin (never give it as an argument)",
    )
    login.add_argument("--scope", help="with --client-id: some of the client's roles, space-separated")


# ---------------------------------------------------------------------- the clients commands
def _path(session: Session, args: argparse.Namespace, client_id: str | None = None, suffix: str = "") -> str:
    tenant = quote(args.tenant or session.tenant_id, safe="")
    return f"/tenants/{tenant}/clients" + (f"/{quote(client_id, safe='')}{suffix}" if client_id else "")


def _show_secret(reply: dict[str, Any], as_json: bool) -> None:
    """A reply holding a secret: the warning on stderr, the reply (and so the secret) once on stdout."""
    print(SHOWN_ONCE, file=sys.stderr, flush=True)
    print_document(reply, as_json)


def _create(session: Session, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "roles": list(dict.fromkeys(args.role))}
    if args.expires_in_days is not None:
        body["expires_in_days"] = args.expires_in_days
    if args.ip:
        body["ip_whitelist"] = list(args.ip)
    # a retry after a lost reply gets the same client back, not a second one
    reply, _headers = session.client().exchange(
        "POST", _path(session, args), body, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    _show_secret(reply, args.json)
    return 0


def table(items: list[dict[str, Any]]) -> str:
    """The clients as an aligned text table of :data:`LIST_COLUMNS` (``-`` for none)."""

    def cell(item: dict[str, Any], column: str) -> str:
        value = item.get(column)
        if isinstance(value, list):
            return ",".join(str(v) for v in value) or "-"
        return "-" if value in (None, "") else str(value)

    rows = [list(LIST_COLUMNS), *([cell(item, c) for c in LIST_COLUMNS] for item in items)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(LIST_COLUMNS))]
    return "".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


def _list(session: Session, args: argparse.Namespace) -> int:
    reply = session.client().call("GET", _path(session, args))
    if args.json:
        print(json.dumps(reply))
    else:
        sys.stdout.write(table(list(reply.get("items") or [])))
    return 0


def _rotate(session: Session, args: argparse.Namespace) -> int:
    body = {"grace_seconds": args.grace_seconds}
    _show_secret(
        session.client().call("POST", _path(session, args, args.client_id, "/secret"), body), args.json
    )
    return 0


def _delete(session: Session, args: argparse.Namespace) -> int:
    session.client().call("DELETE", _path(session, args, args.client_id))
    print_document({"deleted": args.client_id}, args.json)
    return 0


def add_clients_parser(
    commands: Any,
    session: Callable[[], Session | int | None],
    failure: Callable[[ApiError], int],
) -> None:
    """The ``clients`` command group; ``session()`` is the saved session (or the exit code saying
    why there is none), ``failure(error)`` the exit code of an API error."""

    clients = commands.add_parser(
        "clients", help="a tenant's API clients (machine access: OAuth 2.0 client credentials)"
    ).add_subparsers(dest="clients", required=True)
    creating = clients.add_parser("create", help="a new API client; its secret is shown once")
    creating.add_argument("name", help="what the client is for, e.g. billing-sync")
    creating.add_argument(
        "--role", "-r", action="append", required=True, help="a role it holds (repeat; at most yours)"
    )
    creating.add_argument(
        "--expires-in-days", type=int, default=None, help="its lifetime in days (default 90, at most 365)"
    )
    creating.add_argument(
        "--ip",
        action="append",
        default=[],
        help="an address or CIDR it may call from (repeat; within the tenant's)",
    )
    listing = clients.add_parser(
        "list", help="the clients with their roles, expiry and last use (never a secret)"
    )
    rotating = clients.add_parser("rotate", help="a new secret, shown once; the old one ends after the grace")
    rotating.add_argument("client_id")
    rotating.add_argument(
        "--grace-seconds",
        type=int,
        default=0,
        help="how long the replaced secret keeps working (default 0: not at all; at most 86400)",
    )
    deleting = clients.add_parser(
        "delete", help="delete a client: its tokens are refused from the next request"
    )
    deleting.add_argument("client_id")
    actions: tuple[tuple[argparse.ArgumentParser, Callable[[Session, argparse.Namespace], int]], ...] = (
        (creating, _create),
        (listing, _list),
        (rotating, _rotate),
        (deleting, _delete),
    )
    for parser, action in actions:
        tenant_command(parser, action, session, failure)
