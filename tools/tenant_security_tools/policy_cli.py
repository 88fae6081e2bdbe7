"""``tenant-security policy get|set|patch|history``: a tenant's security policy through the API,
as the signed-in user (a security-admin, or a platform-admin for any tenant).

Documents go in and out as YAML (JSON with --json). ``set`` (the whole document) and ``patch``
(an RFC 7396 merge patch) first show the field-level difference against the stored revision,
then ask before they change it (``--yes`` for scripts; ``--dry-run`` only shows), and send
``If-Match`` with the revision they showed: a change made meanwhile is refused (412), never
overwritten.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml

from tenant_security.models.policies import parse_security_policies
from tenant_security.policy.changes import FieldChange, field_changes, merge_patch, without_read_only
from tenant_security_tools.client import ApiError, Session
from tenant_security_tools.tenant_commands import print_document, tenant_command

MERGE_PATCH = "application/merge-patch+json"


def _path(session: Session, args: argparse.Namespace, suffix: str = "") -> str:
    tenant = quote(args.tenant or session.tenant_id, safe="")
    return f"/tenants/{tenant}/policies{suffix}"


def read_document(path: str) -> dict[str, Any]:
    """A policy document or merge patch from a YAML or JSON file (``-``: stdin); the root key
    ``security_policies`` is optional, as in events/tenant.yaml."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    if isinstance(document, dict) and set(document) == {"security_policies"}:
        document = document["security_policies"]
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a policy document (a mapping of sections)")
    return document


def describe(changes: list[FieldChange]) -> str:
    """The difference as ``field: old -> new`` lines."""
    if not changes:
        return "no change\n"
    return "".join(f"  {c.field}: {json.dumps(c.old)} -> {json.dumps(c.new)}\n" for c in changes)


def _stored(session: Session, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    document, headers = session.client().exchange("GET", _path(session, args))
    return document, headers.get("ETag") or headers.get("etag") or ""


def _get(session: Session, args: argparse.Namespace) -> int:
    print_document(_stored(session, args)[0], args.json)
    return 0


def _change(session: Session, args: argparse.Namespace, merge: bool) -> int:
    wanted = read_document(args.file)
    stored, etag = _stored(session, args)
    current = without_read_only(stored)
    proposed = merge_patch(current, wanted) if merge else wanted
    # the document the API would store (defaults filled in): what the difference is against
    new = parse_security_policies(without_read_only(proposed)).model_dump(mode="json")
    changes = field_changes(current, new)
    sys.stderr.write(f"revision {etag or '?'} -> changes:\n" + describe(changes))
    if not changes or args.dry_run:
        return 0
    if not args.yes:
        if not sys.stdin.isatty() or args.file == "-":
            sys.stderr.write("not changed: confirm with --yes (no terminal to ask on)\n")
            return 2
        if input("apply these changes? [y/N] ").strip().lower() not in ("y", "yes"):
            sys.stderr.write("not changed\n")
            return 1
    query = "?" + urlencode({"force": "true"}) if args.force else ""
    reply, headers = session.client().exchange(
        "PATCH" if merge else "PUT",
        _path(session, args, query),
        wanted,
        headers={"If-Match": etag} if etag else None,
        content_type=MERGE_PATCH if merge else "application/json",
    )
    sys.stderr.write(f"stored as revision {headers.get('ETag') or headers.get('etag') or '?'}\n")
    print_document(reply, args.json)
    return 0


def _history(session: Session, args: argparse.Namespace) -> int:
    query = urlencode({"limit": args.limit})
    print_document(session.client().call("GET", _path(session, args, f"/history?{query}")), args.json)
    return 0


def add_policy_parser(
    commands: Any,
    session: Callable[[], Session | int | None],
    failure: Callable[[ApiError], int],
) -> None:
    """The ``policy`` command group; ``session()`` is the saved session (or the exit code saying
    why there is none), ``failure(error)`` the exit code of an API error."""

    policy = commands.add_parser("policy", help="a tenant's security policy").add_subparsers(
        dest="policy", required=True
    )
    getting = policy.add_parser("get", help="the stored document, its revision and rollout")
    setting = policy.add_parser("set", help="replace the whole document (omitted fields: defaults)")
    patching = policy.add_parser("patch", help="change fields by a merge patch (null: back to the default)")
    history = policy.add_parser("history", help="each revision: who changed which fields, old and new")
    history.add_argument("--limit", type=int, default=20, help="revisions to show (1-100, default 20)")
    for parser in (setting, patching):
        parser.add_argument("file", help="YAML or JSON file ('-': stdin)")
        parser.add_argument("--yes", action="store_true", help="change without asking (the diff is shown)")
        parser.add_argument("--dry-run", action="store_true", help="show the difference; change nothing")
        parser.add_argument(
            "--force",
            action="store_true",
            help="make a change that would refuse your own next requests (would_lock_out)",
        )
    actions: tuple[tuple[argparse.ArgumentParser, Callable[[Session, argparse.Namespace], int]], ...] = (
        (getting, _get),
        (setting, lambda s, a: _change(s, a, merge=False)),
        (patching, lambda s, a: _change(s, a, merge=True)),
        (history, _history),
    )
    for parser, action in actions:
        tenant_command(parser, action, session, failure)
