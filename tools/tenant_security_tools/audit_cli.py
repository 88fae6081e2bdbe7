"""``tenant-security audit bundle`` and ``tenant-security audit verify --bundle``: the auditor's side
of the trail's proofs.

``audit bundle`` fetches, through the API as the signed-in user (an auditor suffices), the audit
keys (JWKS), the tenant's latest signed checkpoint, records ``--from``..``--to`` byte for byte and
each one's RFC 9162 inclusion proof to that checkpoint (and, with ``--since-checkpoint``, the
consistency proof from an older checkpoint the auditor kept), and writes them as one JSON bundle
(:data:`tenant_security.audit.proof_check.BUNDLE_FORMAT`).

``audit verify --bundle`` checks a bundle offline: no network, no AWS, no session. Its verdict is
only as good as the keys: those in the bundle came from the same API as the records, so an
auditor should pass ``--keys`` with the JWKS got independently (GET /.well-known/audit-keys.json
over a channel they trust, or from the operator), and keep each bundle's checkpoint to ask for a
consistency proof next time. Exit codes as the CLI's (0 VALID, 4 INVALID, 2 unreadable files).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from tenant_security_tools.client import ApiClient, ApiError, Session, api_command

T = TypeVar("T")
MAX_BUNDLE_RECORDS = 10_000
_RETRIED = (429, 503)  # the tenant's rate limit, a dependency down for a moment
_TRIES = 8
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID, EXIT_NOT_FOUND = 0, 1, 2, 4, 6
KEYS_PATH = "/.well-known/audit-keys.json"
KEYS_WARNING = (
    "note: checked with the keys inside the bundle, which came from the same API as the records; "
    "for an independent check pass --keys with the JWKS you got yourself (GET "
    f"{KEYS_PATH} over a channel you trust, or from the platform operator)"
)


class BundleUsage(ValueError):
    """Arguments or an input file the bundle commands cannot use (exit code 2, with the reason)."""


def progress(message: str) -> None:
    """A line for the person watching (stderr)."""
    print(message, file=sys.stderr, flush=True)


def _read_json(path: str, option: str) -> Any:
    try:
        return json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise BundleUsage(f"{option} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BundleUsage(f"{option} {path}: not JSON ({exc})") from None


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a new file beside ``path``, then rename it there: never half a bundle."""
    handle, temporary = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------- audit bundle
def _retrying(fetch: Callable[..., T], *args: str) -> T:
    """``fetch(*args)``, again after a back-off while the API answers 429 or 503."""
    for attempt in range(_TRIES):
        try:
            return fetch(*args)
        except ApiError as exc:
            if exc.status not in _RETRIED or attempt == _TRIES - 1:
                raise
            time.sleep(min(30.0, 0.5 * 2**attempt))
    raise AssertionError("unreachable")


def _older_checkpoint(path: str, tenant_id: str) -> dict[str, Any]:
    """The checkpoint a file holds: a checkpoint itself, or an earlier bundle's."""
    from tenant_security.audit.proof_check import BUNDLE_FORMAT

    document = _read_json(path, "--since-checkpoint")
    if isinstance(document, dict) and document.get("format") == BUNDLE_FORMAT:
        document = document.get("checkpoint")
    if not isinstance(document, dict) or not isinstance(document.get("tree_size"), int):
        raise BundleUsage(f"--since-checkpoint {path}: neither a checkpoint nor a bundle")
    if document.get("tenant_id") != tenant_id:
        raise BundleUsage(f"--since-checkpoint {path}: a checkpoint of {document.get('tenant_id')!r}")
    return document


def _range(args: argparse.Namespace, tree_size: int) -> tuple[int, int]:
    first = 1 if args.first is None else args.first
    last = tree_size if args.last is None else args.last
    if not 1 <= first <= last <= tree_size:
        raise BundleUsage(f"--from {first} --to {last}: the latest checkpoint covers records 1..{tree_size}")
    if last - first + 1 > MAX_BUNDLE_RECORDS:
        raise BundleUsage(
            f"records {first}..{last} are {last - first + 1}: a bundle holds at most "
            f"{MAX_BUNDLE_RECORDS}; page with --from/--to (--from {first} --to "
            f"{first + MAX_BUNDLE_RECORDS - 1}, then on from {first + MAX_BUNDLE_RECORDS})"
        )
    return first, last


def fetch_bundle(api: ApiClient, tenant_id: str, args: argparse.Namespace) -> dict[str, Any]:
    """The bundle of ``tenant_id``'s records ``args.first``..``args.last`` under its latest
    checkpoint, fetched through ``api`` (see the module's docstring)."""
    from tenant_security.audit.proof_check import BUNDLE_FORMAT

    older = _older_checkpoint(args.since_checkpoint, tenant_id) if args.since_checkpoint else None
    base = f"/tenants/{quote(tenant_id, safe='')}/audit"
    keys = _retrying(api.call, "GET", KEYS_PATH)
    checkpoint = _retrying(api.call, "GET", f"{base}/checkpoint")
    size = int(checkpoint["tree_size"])
    first, last = _range(args, size)
    progress(f"bundling records {first}..{last} of {tenant_id}'s checkpoint of {size} records ...")
    records = []
    for sequence in range(first, last + 1):
        stored = _retrying(api.get_bytes, f"{base}/records/{sequence}")
        query = f"sequence={sequence}&tree_size={size}"
        proof = _retrying(api.call, "GET", f"{base}/proofs/inclusion?{query}")
        records.append(
            {
                "sequence": sequence,
                "stored": base64.b64encode(stored).decode(),
                "audit_path": proof["audit_path"],
            }
        )
        if (sequence - first + 1) % 100 == 0:
            progress(f"  record {sequence} of {last}")
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "tenant_id": tenant_id,
        "keys": keys,
        "checkpoint": checkpoint,
        "records": records,
    }
    if older is not None:
        if older["tree_size"] > size:
            raise BundleUsage(
                f"--since-checkpoint: its {older['tree_size']} records are more than the latest "
                f"checkpoint's {size}"
            )
        query = f"first={older['tree_size']}&second={size}"
        proof = _retrying(api.call, "GET", f"{base}/proofs/consistency?{query}")
        bundle["consistency"] = {
            "first": older["tree_size"],
            "second": size,
            "proof": proof["proof"],
            "checkpoint": older,
        }
    return bundle


def _bundle(session: Session, args: argparse.Namespace) -> int:
    from tenant_security.audit.proof_check import verify_bundle
    from tenant_security.tenancy import require_tenant_id

    tenant_id = require_tenant_id(args.tenant or session.tenant_id, "--tenant")
    try:
        bundle = fetch_bundle(session.client(), tenant_id, args)
    except ApiError as exc:
        if exc.status == 404 and exc.message.startswith("the trail has no signed checkpoint"):
            progress(
                f"{tenant_id}'s trail has no signed checkpoint yet (one comes every N records, and hourly)"
            )
            return EXIT_NOT_FOUND
        raise
    out = Path(args.out)
    _write_atomically(out, json.dumps(bundle, indent=1) + "\n")
    report = verify_bundle(bundle)  # as the auditor will: a problem is told now, the bundle kept
    summary = {"out": str(out), **report}
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"wrote {out}: records {report['from']}..{report['to']} of {tenant_id}'s checkpoint of "
            f"{report['tree_size']} records ({bundle['checkpoint'].get('timestamp')}); "
            f"verify it offline with `tenant-security audit verify --bundle {out} --keys KEYS.json`"
        )
        _print_problems(report)
    return EXIT_OK if report["status"] == "VALID" else EXIT_INVALID


# ---------------------------------------------------------------------- audit verify --bundle
def _print_problems(report: dict[str, Any]) -> None:
    for found in report["problems"]:
        where = f"sequence {found['sequence']}" if found["sequence"] is not None else "bundle"
        print(f"  {where}: {found['kind']}: {found['detail']}")


def _keys(path: str) -> Any:
    keys = _read_json(path, "--keys")
    if isinstance(keys, dict) and "kty" in keys:  # one JWK: a set of one
        keys = {"keys": [keys]}
    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
        raise BundleUsage(f"--keys {path}: not a JWKS ({{'keys': [...]}})")
    return keys


def verify_offline(args: argparse.Namespace) -> int:
    """``audit verify --bundle FILE [--keys FILE]``: no network, no AWS, no session."""
    from tenant_security.audit.proof_check import ProofError, verify_bundle

    bundle = _read_json(args.bundle, "--bundle")
    keys = _keys(args.keys) if args.keys else None
    try:
        report = verify_bundle(bundle, keys)
    except ProofError as exc:
        raise BundleUsage(f"--bundle {args.bundle}: {exc}") from None
    if args.tenant and report["tenant_id"] != args.tenant:
        raise BundleUsage(
            f"--bundle {args.bundle} holds the trail of {report['tenant_id']!r}, not of {args.tenant!r}"
        )
    if keys is None:
        progress(KEYS_WARNING)
    if args.json:
        print(json.dumps(report))
    else:
        checked = f"records {report['from']}..{report['to']}" if report["checked"] else "no records"
        consistency = ", consistency with an older checkpoint" if report["consistency_checked"] else ""
        print(
            f"{report['status']}: {checked} of {report['tenant_id']}'s checkpoint of "
            f"{report['tree_size']} records, its signature{consistency} (offline, keys from "
            f"{args.keys or 'the bundle'})"
        )
        _print_problems(report)
    return EXIT_OK if report["status"] == "VALID" else EXIT_INVALID


def add_audit_commands(
    audit: Any,
    verify: argparse.ArgumentParser,
    online: Callable[[argparse.Namespace], int],
    session: Callable[[], Session | int | None],
    failure: Callable[[ApiError], int],
    usage: Callable[[str], Exception],
) -> None:
    """``audit bundle``, and ``--bundle``/``--keys`` on ``audit verify``, which runs ``online``
    (the operator's verification, with the stack's credentials) without them. ``usage(message)``
    is the CLI's usage error (exit code 2)."""

    def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        def runner(args: argparse.Namespace) -> int:
            try:
                return run(args)
            except BundleUsage as exc:
                raise usage(str(exc)) from None

        return runner

    bundle = audit.add_parser(
        "bundle",
        help="export records, their inclusion proofs, the latest signed checkpoint and the audit "
        "keys as one file to verify offline (as the signed-in user: an auditor suffices)",
    )
    bundle.add_argument("--tenant", help="tenant id (default: your own)")
    bundle.add_argument("--from", dest="first", type=int, help="first sequence (default 1)")
    bundle.add_argument(
        "--to", dest="last", type=int, help="last sequence (default: the latest checkpoint's tree size)"
    )
    bundle.add_argument("--out", required=True, help="the bundle file to write (JSON)")
    bundle.add_argument(
        "--since-checkpoint",
        metavar="FILE",
        help="an older checkpoint you kept (a checkpoint's JSON, or an earlier bundle): adds the "
        "RFC 9162 consistency proof from it to the latest",
    )
    bundle.add_argument("--json", action="store_true", help="print the summary as JSON")
    bundle.set_defaults(run=guarded(api_command(session, failure, _bundle)))

    verify.add_argument(
        "--bundle",
        metavar="FILE",
        help="verify an exported bundle OFFLINE instead (no network, no AWS credentials): the "
        "checkpoint's signature, each record's inclusion, content and chain, the consistency proof",
    )
    verify.add_argument(
        "--keys",
        metavar="FILE",
        help="with --bundle: the JWKS to check the checkpoint against (default: the bundle's own). "
        "Get it independently of the bundle (GET /.well-known/audit-keys.json over a channel you "
        "trust, or from the operator): keys from the same source as the records prove nothing",
    )

    def either(args: argparse.Namespace) -> int:
        if args.bundle:
            return guarded(verify_offline)(args)
        if args.keys:
            raise usage("--keys goes with --bundle")
        if not args.tenant:
            raise usage("audit verify needs --tenant (online, stack credentials) or --bundle FILE (offline)")
        return int(online(args))

    verify.set_defaults(run=either)
