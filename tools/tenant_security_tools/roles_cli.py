"""``tenant-security roles list|set|delete``: a tenant's roles through the API, as the signed-in
user (a tenant-admin, or a platform-admin for any tenant). Output is YAML, or JSON with --json."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tenant_security_tools.client import ApiError, Session
from tenant_security_tools.tenant_commands import print_document, tenant_command


def _path(session: Session, args: argparse.Namespace, role: str | None = None) -> str:
    tenant = quote(args.tenant or session.tenant_id, safe="")
    return f"/tenants/{tenant}/roles" + (f"/{quote(role, safe='')}" if role else "")


def _list(session: Session, args: argparse.Namespace) -> int:
    print_document(session.client().call("GET", _path(session, args)), args.json)
    return 0


def _set(session: Session, args: argparse.Namespace) -> int:
    body = {"permissions": list(args.permission)}
    print_document(session.client().call("PUT", _path(session, args, args.role), body), args.json)
    return 0


def _delete(session: Session, args: argparse.Namespace) -> int:
    session.client().call("DELETE", _path(session, args, args.role))
    print_document({"deleted": args.role}, args.json)
    return 0


def add_roles_parser(
    commands: Any,
    session: Callable[[], Session | int | None],
    failure: Callable[[ApiError], int],
) -> None:
    """The ``roles`` command group; ``session()`` is the saved session (or the exit code saying
    why there is none), ``failure(error)`` the exit code of an API error."""

    roles = commands.add_parser("roles", help="a tenant's built-in and custom roles").add_subparsers(
        dest="roles", required=True
    )
    listing = roles.add_parser("list", help="the built-in and custom roles with their actions")
    setting = roles.add_parser(
        "set", help="define or redefine a custom role from action patterns (never beyond what you hold)"
    )
    setting.add_argument("role", help="the custom role's name (a-z, 0-9, '-')")
    setting.add_argument(
        "--permission",
        "-p",
        action="append",
        required=True,
        help="an action pattern, e.g. files:Read (repeat)",
    )
    deleting = roles.add_parser("delete", help="delete a custom role nobody holds")
    deleting.add_argument("role")
    for parser, action in ((listing, _list), (setting, _set), (deleting, _delete)):
        tenant_command(parser, action, session, failure)
