"""What the ``policy`` and ``roles`` command groups share: a tenant-scoped command run as the
signed-in user (``--tenant``, ``--json``), and a document printed as YAML or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import yaml

from tenant_security_tools.client import ApiError, Session, api_command


def print_document(document: Any, as_json: bool) -> None:
    """``document`` on stdout: YAML, or one line of JSON."""
    if as_json:
        print(json.dumps(document))
    else:
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False))


def tenant_command(
    parser: argparse.ArgumentParser,
    action: Callable[[Session, argparse.Namespace], int],
    session: Callable[[], Session | int | None],
    failure: Callable[[ApiError], int],
) -> None:
    """Make ``parser`` run ``action`` as the signed-in user, with ``--tenant`` and ``--json``."""
    parser.add_argument("--tenant", help="tenant id (default: your own)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    parser.set_defaults(run=api_command(session, failure, action))
