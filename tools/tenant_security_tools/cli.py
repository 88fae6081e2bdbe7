"""The ``tenant-security`` console script.

Commands: ``bootstrap-admin``, ``audit verify``, ``audit rebuild-tree`` and ``events redrive``
work on the stack's AWS resources directly (platform operator credentials); ``login``,
``logout``, ``status`` and ``onboard --wait`` talk to the REST API as the signed-in user
(``login`` saves the session, 0600; ``login --client-id`` signs in an API client, its secret
read from stdin); ``onboard`` puts the ``Tenant Onboarding Requested`` event on the platform
bus. ``audit bundle`` exports a trail's records and proofs through the API; ``audit verify
--bundle`` checks one offline (audit_cli.py).

Progress goes to stderr, results to stdout (``--json`` for scripts). Exit codes:

====  ==========================================================================
0     done (``audit verify``: VALID; ``status``: the tenant is ACTIVE; ``events redrive``: none kept)
1     failed (onboarding FAILED, the API or AWS answered an error, a dead letter was kept)
2     usage: bad arguments or an invalid input file
3     already done (``bootstrap-admin``: the admin exists)
4     the audit chain is INVALID (``audit rebuild-tree``: refused, the trail does not verify)
5     not signed in, session expired, or the credentials or code were refused
6     no such tenant
7     timed out waiting (``onboard --wait``)
8     the tenant exists but is not ACTIVE (``status``)
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenant_security.errors import Conflict, DomainError, ValidationFailed
from tenant_security.private_files import UnsafeFile, read_private_file
from tenant_security_tools.audit_cli import add_audit_commands
from tenant_security_tools.client import (
    ApiClient,
    ApiError,
    Session,
    check_session_directory,
    checked_api_url,
    load_session,
    save_session,
)
from tenant_security_tools.clients_cli import (
    TokenRefusal,
    add_client_login_arguments,
    add_clients_parser,
    client_sign_in,
    client_tenant,
    looks_like_secret,
)
from tenant_security_tools.policy_cli import add_policy_parser
from tenant_security_tools.roles_cli import add_roles_parser
from tenant_security_tools.settings import CliSettings

if TYPE_CHECKING:
    from tenant_security.config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ALREADY_DONE, EXIT_INVALID = 0, 1, 2, 3, 4
EXIT_AUTH, EXIT_NOT_FOUND, EXIT_TIMEOUT, EXIT_NOT_ACTIVE = 5, 6, 7, 8
EVENT_SOURCE = "tenant-security.cli"


def progress(message: str) -> None:
    """A line of progress for the person watching (stderr, so stdout stays parseable)."""
    print(message, file=sys.stderr, flush=True)


# Prompts: tests replace these. A secret never echoes and is never printed back.
def ask(label: str) -> str:
    return input(label)


def ask_secret(label: str) -> str:
    return getpass.getpass(label)


def _cli_settings() -> CliSettings:
    return CliSettings()


# ---------------------------------------------------------------------- AWS-side commands
def _bootstrap_admin(args: argparse.Namespace) -> int:
    from tenant_security import services
    from tenant_security.bootstrap import bootstrap_platform

    settings = _settings(args)
    try:
        result = bootstrap_platform(
            services.tenant_store(), services.users(), settings.platform_tenant_id, args.username
        )
    except Conflict as exc:
        print(f"already bootstrapped: {exc.message}", file=sys.stderr)
        return EXIT_ALREADY_DONE
    if args.json:
        print(json.dumps(result))
    else:
        print(f"platform tenant : {result['platform_tenant']}")
        print(f"username        : {result['username']}")
        print(f"one-time password (shown once): {result['password']}")
        print(
            "Sign in with `tenant-security login` or the /mfa page: MFA enrolment and a new password follow."
        )
    return EXIT_OK


def _settings(args: argparse.Namespace) -> Settings:
    """The settings the functions of the stack named by ``--prefix`` (else RESOURCE_PREFIX, else
    dcisionai) run with, read from the stack itself (``lambda:GetFunctionConfiguration`` of
    ``<prefix>-audit-writer``), ``--platform-tenant`` over them; the command's services are built
    from them (:func:`tenant_security.services.configure`)."""
    from tenant_security import aws, services
    from tenant_security_tools.stack_settings import deployed_settings

    prefix = getattr(args, "prefix", None) or _cli_settings().resource_prefix
    overrides = {}
    if getattr(args, "platform_tenant", None):
        overrides["platform_tenant_id"] = args.platform_tenant
    settings = deployed_settings(aws.client("lambda"), prefix, **overrides)
    services.configure(settings)
    return settings


def _forget_settings() -> None:
    """Build services from the environment's settings again once a command is done, so a process
    that runs commands one after another (the tests) never builds one from the last command's.
    Loaded by the AWS-side commands only: ``login`` need not import boto3 to forget nothing."""
    services = sys.modules.get("tenant_security.services")
    if services is not None:
        services.configure(None)


def _audit_verify(args: argparse.Namespace) -> int:
    from tenant_security import services
    from tenant_security.tenancy import require_tenant_id

    _settings(args)  # the stack's own: its checkpoint key id and account name what is verified
    tenant_id = require_tenant_id(args.tenant, "--tenant")
    verifier = services.chain_verifier()
    progress(f"verifying the audit chain of {tenant_id} ...")
    report = verifier.verify(
        tenant_id, args.first, args.last, progress=lambda done, last: progress(f"  record {done} of {last}")
    )
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['status']}: records {report['from']}..{report['to']} of {report['head_sequence']}, "
            f"{report['checkpoints_checked']} signed checkpoints"
        )
        for problem in report["problems"]:
            print(f"  sequence {problem['sequence']}: {problem['kind']}: {problem['detail']}")
    return EXIT_OK if report["status"] == "VALID" else EXIT_INVALID


def _audit_rebuild_tree(args: argparse.Namespace) -> int:
    from tenant_security import services
    from tenant_security.audit.rebuild import RebuildReport, RebuildStatus, TrailDoesNotVerify, TreeRebuilder
    from tenant_security.tenancy import require_tenant_id

    tenant_id = None if args.all else require_tenant_id(args.tenant, "--tenant")
    settings = _settings(args)
    rebuilder = TreeRebuilder(
        services.chain_heads(),
        services.audit_objects(),
        services.record_cipher(),
        services.audit_index(),
        settings.audit_bucket,
    )

    def told(step: str, done: int, total: int) -> None:
        progress(f"  {step} {done} of {total} records")

    if tenant_id is None:
        progress("rebuilding the tree of every audit chain without one ...")
        reports = rebuilder.rebuild_all(told)
    else:
        progress(f"rebuilding the tree of the audit chain of {tenant_id} ...")
        try:
            reports = [rebuilder.rebuild(tenant_id, told)]
        except TrailDoesNotVerify as exc:
            reports = [RebuildReport(tenant_id, RebuildStatus.REFUSED, detail=exc.message)]
    if args.json:
        listed = [r.as_dict() for r in reports]
        print(json.dumps(listed if args.all else listed[0]))
    else:
        for r in reports:
            done = f"{r.records} records, {r.nodes_written} nodes, root {r.root_hash}" if r.root_hash else ""
            line = f"{r.tenant_id}: {r.status}" + (f": {done} ({r.seconds:.1f} s)" if done else "")
            print(line + (f"; {r.detail}" if r.detail and r.status is not RebuildStatus.REFUSED else ""))
            if r.status is RebuildStatus.REFUSED:
                print(f"  {r.detail}")
        if args.all and not reports:
            print("every audit chain has its tree")
    if any(r.status is RebuildStatus.REFUSED for r in reports):
        return EXIT_INVALID
    return EXIT_FAILED if any(r.status is RebuildStatus.HEAD_MOVED for r in reports) else EXIT_OK


def _events_redrive(args: argparse.Namespace) -> int:
    from tenant_security import aws
    from tenant_security.redrive import DONE, PlatformTargets, Redriver

    settings = _settings(args)
    sqs = aws.sqs()
    queue = f"{settings.resource_prefix}-event-delivery-dlq"
    redriver = Redriver(
        sqs,
        str(sqs.get_queue_url(QueueName=queue)["QueueUrl"]),
        PlatformTargets.of(
            settings.resource_prefix, settings.partition, settings.region, settings.account_id
        ),
        aws.client("lambda"),
        aws.stepfunctions(),
        aws.client("sns"),
    )
    progress(f"{'looking at' if args.dry_run else 'redriving'} the dead letters of {queue} ...")
    reports = redriver.run(limit=args.limit, dry_run=args.dry_run, progress=progress)
    kept = [r for r in reports if r["result"] not in DONE]
    if args.json:
        print(json.dumps(reports, default=str))
    else:
        done = "redrivable" if args.dry_run else "redriven"
        print(f"{len(reports) - len(kept)} of {len(reports)} dead letters {done}")
        for report in kept:
            print(f"  kept {report['message_id']}: {report['result']} {report.get('reason', '')}".rstrip())
    return EXIT_OK if not kept else EXIT_FAILED


def _onboard(args: argparse.Namespace) -> int:
    import yaml

    from tenant_security import aws
    from tenant_security.onboarding.validation import validate_request

    settings = _settings(args)
    try:
        document = yaml.safe_load(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        progress(f"cannot read {args.file}: {exc}")
        return EXIT_USAGE
    try:
        # whether the deployment has a database is for the API and the validate step to say
        request = validate_request(settings, document, check_database=False)
    except ValidationFailed as exc:
        progress(f"{args.file} is not a valid onboarding request:")
        for field in exc.fields or []:
            progress(f"  {field['field']}: {field['message']}")
        return EXIT_USAGE
    session = _session(required=args.wait)  # fail before putting the event, not after
    if isinstance(session, int):
        return session
    bus = args.bus or settings.event_bus_name
    reply = aws.events().put_events(
        Entries=[
            {
                "Source": EVENT_SOURCE,
                "DetailType": "Tenant Onboarding Requested",
                "Detail": request.model_dump_json(),
                "EventBusName": bus,
            }
        ]
    )
    if reply.get("FailedEntryCount"):
        progress(f"EventBridge refused the event: {reply['Entries'][0].get('ErrorMessage', '')}")
        return EXIT_FAILED
    progress(
        f"onboarding of {request.tenant_id} requested on {bus} (event {reply['Entries'][0].get('EventId')})"
    )
    if not args.wait or session is None:
        if args.json:
            print(json.dumps({"tenant_id": request.tenant_id, "status": "REQUESTED"}))
        return EXIT_OK
    return _wait_for_tenant(session, request.tenant_id, args.timeout, args.json)


def _wait_for_tenant(session: Session, tenant_id: str, timeout: float, as_json: bool) -> int:
    """Poll GET /tenants/{id} until ACTIVE or FAILED, narrating each change of status."""
    api, started, seen, tenant = session.client(), time.monotonic(), None, None
    while time.monotonic() - started < timeout:
        try:
            tenant = api.call("GET", f"/tenants/{tenant_id}")
        except ApiError as exc:
            if exc.status != 404:  # not registered yet: the state machine is on its way
                return _api_failure(exc)
        status = tenant.get("status") if tenant else "REQUESTED"
        if status != seen:
            progress(f"  [{time.monotonic() - started:5.1f}s] {status}")
            seen = status
        if status in ("ACTIVE", "FAILED"):
            break
        time.sleep(1)
    else:
        progress(f"timed out after {timeout:.0f}s; `tenant-security status --tenant {tenant_id}` tells later")
        return EXIT_TIMEOUT
    if as_json:
        print(json.dumps(tenant))
    if seen == "FAILED":
        progress(f"onboarding failed and was rolled back: {(tenant or {}).get('failure_reason', '')}")
        return EXIT_FAILED
    if not as_json:
        print(f"{tenant_id} is ACTIVE")
    return EXIT_OK


# ---------------------------------------------------------------------- API-side commands
def _session(required: bool = True) -> Session | int | None:
    """The saved session, or the exit code that says why there is none."""
    session = load_session(_cli_settings().session_path)
    if session is None or session.expired:
        if not required:
            return None
        if session is not None and session.is_client:  # a client's token is not refreshed
            progress(
                f"the token of API client {session.username} expired: run `tenant-security login "
                f"--client-id {session.username} --client-secret-stdin` again"
            )
        else:
            progress("not signed in (or the session expired): run `tenant-security login`")
        return EXIT_AUTH
    return session


def _api_failure(exc: ApiError) -> int:
    progress(f"refused: {exc.code}: {exc.message}" if exc.status else f"cannot reach the API: {exc.message}")
    if exc.status in (401, 403, 423):
        return EXIT_AUTH
    return EXIT_NOT_FOUND if exc.status == 404 else EXIT_FAILED


class UsageError(Exception):
    """The arguments do not say enough (or say something refused): exit code 2, with the reason."""


def _api_url(args: argparse.Namespace, settings: Any) -> str:
    """The API ``login`` signs in to: ``--api``; the local cloud's with ``--local``; else
    TENANT_SECURITY_API_URL. Never a file found in the working directory without ``--local``:
    a cloned repository can carry one, and the password would go where it says."""
    if args.api:
        return str(args.api)
    if args.local:
        return _local_cloud_url(settings.local_bootstrap_path)
    if settings.api_url:
        return str(settings.api_url)
    raise UsageError(
        "which API? give --api URL (or set TENANT_SECURITY_API_URL), or --local for the local cloud"
    )


def _local_cloud_url(bootstrap: Path) -> str:
    """The running local cloud's ``api_url`` from its bootstrap.json, only if it is this machine."""
    try:
        url = json.loads(read_private_file(bootstrap))["api_url"]
    except FileNotFoundError:
        raise UsageError(
            f"--local: no {bootstrap}: is `make local` running (LOCALCLOUD_STATE_DIR)?"
        ) from None
    except UnsafeFile as exc:
        raise UsageError(f"--local: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--local: cannot read the API URL from {bootstrap}: {exc}") from None
    try:
        return checked_api_url(str(url), loopback_only=True)
    except ValueError as exc:
        raise UsageError(f"--local: refusing {bootstrap}: {exc}") from None


def _check_login_arguments(args: argparse.Namespace) -> None:
    """A person (``--tenant``, ``--username``) or an API client (``--client-id``), never both."""
    if args.client_id is None:
        if args.client_secret_stdin or args.scope is not None:
            raise UsageError("--client-secret-stdin and --scope sign in an API client: give --client-id")
        given = (("--tenant", args.tenant), ("--username", args.username))
        missing = [name for name, value in given if not value]
        if missing:
            raise UsageError(f"login needs {' and '.join(missing)} (or --client-id for an API client)")
        return
    if args.username is not None or args.password_stdin:
        raise UsageError("--client-id signs in an API client: not with --username or --password-stdin")
    if looks_like_secret(args.client_id):  # never echoed back: it is a secret
        raise UsageError(
            "--client-id was given a client secret: it is now in your shell history and was visible "
            "to `ps`; rotate it (`tenant-security clients rotate`) and pass secrets on stdin only"
        )
    tenant = client_tenant(args.client_id)
    if tenant is None:
        raise UsageError("--client-id: not a client id (<tenant_id>_<20 hex digits>, from `clients create`)")
    if args.tenant is not None and args.tenant != tenant:
        raise UsageError(f"--tenant {args.tenant}: the client belongs to {tenant} (leave --tenant out)")


def _client_secret(args: argparse.Namespace) -> str:
    """The client's secret from stdin: piped, or typed at a terminal without echo."""
    piped = args.client_secret_stdin and not sys.stdin.isatty()
    secret = (sys.stdin.readline() if piped else ask_secret("Client secret: ")).strip()
    if not secret:
        raise UsageError("no client secret on stdin")
    return secret


def _client_login(args: argparse.Namespace) -> int:
    settings = _cli_settings()
    api = ApiClient(_api_url(args, settings))
    check_session_directory(settings.session_path)
    progress(f"Signing in to {api.base_url} as API client {args.client_id}")
    secret = _client_secret(args)
    try:
        session = client_sign_in(api, args.client_id, secret, args.scope)
    except ApiError as exc:
        if exc.code in tuple(TokenRefusal):
            progress(f"refused: {exc.code}: {exc.message}")
            return EXIT_AUTH
        return _api_failure(exc)
    save_session(session, settings.session_path)
    minutes = int(session.expires_at - time.time() + 30) // 60
    print(
        f"signed in as API client {session.username} of {session.tenant_id} for {minutes} minutes "
        "(not refreshed: sign in again when it ends)"
    )
    return EXIT_OK


def _login(args: argparse.Namespace) -> int:
    _check_login_arguments(args)
    if args.client_id is not None:
        return _client_login(args)
    settings = _cli_settings()
    api = ApiClient(_api_url(args, settings))
    check_session_directory(settings.session_path)
    # Said before the password is asked for (or read): the person sees where it goes.
    progress(f"Signing in to {api.base_url} as {args.username}@{args.tenant}")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else ask_secret("Password: ")
    try:
        reply = api.call(
            "POST", "/auth/login", {"tenant_id": args.tenant, "username": args.username, "password": password}
        )
        if reply.get("status") == "MFA_ENROLLMENT_REQUIRED":
            tokens = _enrol(api, str(reply["enrollment_token"]))
        else:
            tokens = _second_factor(api, str(reply["challenge_token"]))
        if tokens.get("password_change_required"):
            tokens = _new_password(api, password, str(tokens["access_token"]))
    except ApiError as exc:
        return _api_failure(exc)
    session = Session(
        api.base_url,
        args.tenant,
        args.username,
        str(tokens["access_token"]),
        time.time() + int(tokens["expires_in"]),
    )
    save_session(session, settings.session_path)
    print(f"signed in as {args.username} of {args.tenant} for {int(tokens['expires_in']) // 60} minutes")
    return EXIT_OK


def _second_factor(api: ApiClient, challenge: str) -> dict[str, Any]:
    code = ask("Authenticator code (or a backup code): ").strip()
    body = {"challenge_token": challenge}
    body["backup_code" if "-" in code else "code"] = code
    return api.call("POST", "/auth/mfa/verify", body)


def _enrol(api: ApiClient, enrollment_token: str) -> dict[str, Any]:
    import segno

    enrolment = api.call("POST", "/auth/mfa/enroll", token=enrollment_token)
    progress("Two-factor sign-in must be set up first. Scan this with your authenticator app:")
    segno.make(str(enrolment["otpauth_uri"]), error="m").terminal(out=sys.stderr, compact=True)
    progress(f"or enter the key by hand: {enrolment['secret']}")
    progress("Backup codes (each works once; shown only now): " + "  ".join(enrolment["backup_codes"]))
    code = ask("Code from the app: ").strip()
    return api.call("POST", "/auth/mfa/activate", {"enrollment_token": enrollment_token, "code": code})


def _new_password(api: ApiClient, current: str, limited_token: str) -> dict[str, Any]:
    progress("Your password was a one-time password: choose your own (12 characters or more).")
    while True:
        new = ask_secret("New password: ")
        if new == ask_secret("Again: "):
            break
        progress("the two do not match")
    return api.call(
        "POST", "/auth/password", {"current_password": current, "new_password": new}, token=limited_token
    )


def _logout(args: argparse.Namespace) -> int:
    path = _cli_settings().session_path
    session = load_session(path)
    # a client's token has no session to end: it lapses by itself (delete the client to end it now)
    if session is not None and not session.expired and not session.is_client:
        try:
            session.client().call("POST", "/auth/logout", {})
        except ApiError as exc:
            progress(f"the API did not end the session ({exc.code}); forgetting it here anyway")
    path.unlink(missing_ok=True)
    print("signed out")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    session = _session()
    if isinstance(session, int) or session is None:
        return session or EXIT_AUTH
    tenant_id = args.tenant or session.tenant_id
    try:
        tenant = session.client().call("GET", f"/tenants/{tenant_id}")
    except ApiError as exc:
        return _api_failure(exc)
    if args.json:
        print(json.dumps(tenant))
    else:
        left = max(0, int(session.expires_at - time.time())) // 60
        who = "API client, not refreshed" if session.is_client else "person"
        print(f"{'signed in as':<15} {session.username} ({who}; {left} minutes left)")
        for name in (
            "tenant_id",
            "name",
            "status",
            "isolation",
            "created_at",
            "updated_at",
            "failure_reason",
        ):
            if tenant.get(name):
                print(f"{name:<15} {tenant[name]}")
    return EXIT_OK if tenant.get("status") == "ACTIVE" else EXIT_NOT_ACTIVE


# ---------------------------------------------------------------------- arguments
def _audit_parsers(commands: Any, prefix_help: str) -> Any:
    """``audit``'s subcommands, with ``rebuild-tree`` (``verify`` and the rest are added after)."""
    audit = commands.add_parser("audit", help="the tenant audit trail").add_subparsers(
        dest="audit", required=True
    )
    rebuild = audit.add_parser(
        "rebuild-tree",
        help="build the Merkle tree of a chain begun before the tree (after an upgrade) from its "
        "stored records; refused (exit 4) when the trail does not verify",
    )
    chains = rebuild.add_mutually_exclusive_group(required=True)
    chains.add_argument("--tenant", help="tenant id")
    chains.add_argument("--all", action="store_true", help="every chain whose head has no tree")
    rebuild.add_argument("--prefix", help=prefix_help)
    rebuild.add_argument("--json", action="store_true", help="print the report as JSON")
    rebuild.set_defaults(run=_audit_rebuild_tree)
    return audit


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenant-security",
        description="DcisionAI Tenant Security: sign in, onboard tenants, check them, verify audit chains.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage, 3 already done, 4 audit chain INVALID, "
        "5 not signed in or refused, 6 no such tenant, 7 timed out, 8 tenant not ACTIVE.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prefix_help = (
        "ResourcePrefix of the stack, whose settings are read from its <prefix>-audit-writer "
        "function (default: RESOURCE_PREFIX or dcisionai)"
    )

    boot = commands.add_parser(
        "bootstrap-admin", help="create the platform tenant and its first platform-admin"
    )
    boot.add_argument("--prefix", help=prefix_help)
    boot.add_argument("--platform-tenant", help="PlatformTenantId (default: the stack's)")
    boot.add_argument("--username", default="admin")
    boot.add_argument("--json", action="store_true", help="print the result as JSON")
    boot.set_defaults(run=_bootstrap_admin)

    login = commands.add_parser(
        "login",
        help="sign in (password, then the authenticator code) and keep the session; or, with "
        "--client-id, as an API client (its secret on stdin)",
    )
    target = login.add_mutually_exclusive_group()
    target.add_argument("--api", help="API base URL (default: TENANT_SECURITY_API_URL)")
    target.add_argument(
        "--local",
        action="store_true",
        help="the running local cloud's API (from $LOCALCLOUD_STATE_DIR/bootstrap.json, "
        "default .localcloud/; only a URL on this machine)",
    )
    # required for a person only (checked by hand): a client id names its tenant
    login.add_argument("--tenant", help="tenant id (a person's sign-in)")
    login.add_argument("--username", help="a person's sign-in")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add_client_login_arguments(login)
    login.set_defaults(run=_login)

    logout = commands.add_parser("logout", help="end the saved session")
    logout.set_defaults(run=_logout)

    onboard = commands.add_parser("onboard", help="request a tenant's onboarding (an EventBridge event)")
    onboard.add_argument(
        "--file", required=True, help="the onboarding request (YAML or JSON, as events/tenant.yaml)"
    )
    onboard.add_argument("--bus", help="event bus name (default: <prefix>-platform)")
    onboard.add_argument("--prefix", help=prefix_help)
    onboard.add_argument("--wait", action="store_true", help="follow it until ACTIVE or FAILED (needs login)")
    onboard.add_argument("--timeout", type=float, default=600, help="seconds --wait waits (default 600)")
    onboard.add_argument("--json", action="store_true", help="print the tenant as JSON")
    onboard.set_defaults(run=_onboard)

    status = commands.add_parser("status", help="a tenant's status (default: your own tenant)")
    status.add_argument("--tenant", help="tenant id")
    status.add_argument("--json", action="store_true", help="print the tenant as JSON")
    status.set_defaults(run=_status)

    audit = _audit_parsers(commands, prefix_help)
    verify = audit.add_parser("verify", help="walk a tenant's hash chain and signed checkpoints")
    verify.add_argument("--tenant", help="tenant id (required without --bundle)")
    verify.add_argument("--from", dest="first", type=int, default=1, help="first sequence (default 1)")
    verify.add_argument("--to", dest="last", type=int, default=None, help="last sequence (default: the head)")
    verify.add_argument("--prefix", help=prefix_help)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    # runs _audit_verify, or with --bundle the offline verification (audit_cli.py)
    add_audit_commands(audit, verify, _audit_verify, _session, _api_failure, UsageError)

    events = commands.add_parser("events", help="the platform's events").add_subparsers(
        dest="events", required=True
    )
    redrive = events.add_parser(
        "redrive",
        help="hand the dead-lettered events to their targets (the audit writer, the workflows, the "
        "alert topic) once the cause is fixed; a message leaves the queue only once taken",
    )
    redrive.add_argument("--prefix", help=prefix_help)
    redrive.add_argument("--limit", type=int, default=1000, help="at most this many messages (default 1000)")
    redrive.add_argument("--dry-run", action="store_true", help="say what would be redriven; change nothing")
    redrive.add_argument("--json", action="store_true", help="print one report per message as JSON")
    redrive.set_defaults(run=_events_redrive)
    add_roles_parser(commands, _session, _api_failure)
    add_policy_parser(commands, _session, _api_failure)
    add_clients_parser(commands, _session, _api_failure)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``tenant-security``."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        progress("interrupted")
        return EXIT_FAILED
    except UsageError as exc:
        progress(str(exc))
        return EXIT_USAGE
    except UnsafeFile as exc:  # a session file or directory someone else could read or swap
        progress(f"refused: {exc}")
        return EXIT_FAILED
    except ValueError as exc:  # a bad --api URL, ...
        progress(f"invalid input: {exc}")
        return EXIT_USAGE
    except DomainError as exc:  # a bad tenant id (400), ...
        progress(f"{exc.code}: {exc.message}")
        return EXIT_USAGE if exc.status == 400 else EXIT_FAILED
    except Exception as exc:
        progress(f"failed: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    finally:
        _forget_settings()


if __name__ == "__main__":
    sys.exit(main())
