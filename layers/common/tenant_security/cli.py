"""The ``tenant-security`` console script.

Exit codes: 0 success (VALID for ``audit verify``), 1 failure, 2 usage, 3 already done (e.g. the
admin exists), 4 the audit chain is INVALID.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tenant_security.errors import Conflict

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ALREADY_DONE, EXIT_INVALID = 0, 1, 2, 3, 4


def _bootstrap_admin(args: argparse.Namespace) -> int:
    from tenant_security import aws
    from tenant_security.bootstrap import bootstrap_platform
    from tenant_security.config import Settings
    from tenant_security.identity.users import UserStore
    from tenant_security.tenants import TenantStore

    overrides = {"resource_prefix": args.prefix} if args.prefix else {}
    if args.platform_tenant:
        overrides["platform_tenant_id"] = args.platform_tenant
    settings = Settings(**overrides)
    try:
        result = bootstrap_platform(
            TenantStore(aws.dynamodb(), settings.tenants_table),
            UserStore(aws.dynamodb(), settings.users_table),
            settings.platform_tenant_id,
            args.username,
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
        print("Sign in with POST /auth/login; MFA enrolment and a new password are required.")
    return EXIT_OK


def _settings(args: argparse.Namespace) -> Any:
    from tenant_security.config import Settings

    overrides = {"resource_prefix": args.prefix} if args.prefix else {}
    return Settings(**overrides)


def _audit_verify(args: argparse.Namespace) -> int:
    from tenant_security import aws
    from tenant_security.audit.checkpoints import Checkpoints
    from tenant_security.audit.cipher import RecordCipher
    from tenant_security.audit.store import ChainHeads, LockedObjects
    from tenant_security.audit.verify import ChainVerifier
    from tenant_security.tenancy import require_tenant_id

    settings = _settings(args)
    tenant_id = require_tenant_id(args.tenant, "--tenant")
    # Outside a function the key ids come from their aliases and the account from STS.
    checkpoint_key = settings.audit_checkpoint_key_id or str(
        aws.kms().describe_key(KeyId=f"alias/{settings.resource_prefix}-audit-checkpoints")["KeyMetadata"][
            "KeyId"
        ]
    )
    account = str(aws.client("sts").get_caller_identity()["Account"])
    objects = LockedObjects(aws.s3(), "")
    verifier = ChainVerifier(
        ChainHeads(aws.dynamodb(), settings.audit_heads_table),
        objects,
        Checkpoints(aws.kms(), checkpoint_key, objects),
        RecordCipher("", account, settings.partition).decode,
        settings.audit_bucket,
    )
    print(f"verifying the audit chain of {tenant_id} ...", file=sys.stderr)
    report = verifier.verify(tenant_id, args.first, args.last)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``tenant-security``."""
    parser = argparse.ArgumentParser(prog="tenant-security", description="DcisionAI Tenant Security")
    commands = parser.add_subparsers(dest="command", required=True)
    boot = commands.add_parser(
        "bootstrap-admin", help="create the platform tenant and its first platform-admin"
    )
    boot.add_argument("--prefix", help="ResourcePrefix of the stack (default: RESOURCE_PREFIX or dcisionai)")
    boot.add_argument("--platform-tenant", help="PlatformTenantId of the stack (default: platform)")
    boot.add_argument("--username", default="admin")
    boot.add_argument("--json", action="store_true", help="print the result as JSON")
    boot.set_defaults(run=_bootstrap_admin)
    audit = commands.add_parser("audit", help="the tenant audit trail").add_subparsers(
        dest="audit", required=True
    )
    verify = audit.add_parser("verify", help="walk a tenant's hash chain and signed checkpoints")
    verify.add_argument("--tenant", required=True, help="tenant id")
    verify.add_argument("--from", dest="first", type=int, default=1, help="first sequence (default 1)")
    verify.add_argument("--to", dest="last", type=int, default=None, help="last sequence (default: the head)")
    verify.add_argument(
        "--prefix", help="ResourcePrefix of the stack (default: RESOURCE_PREFIX or dcisionai)"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(run=_audit_verify)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        return int(args.run(args))
    except Exception as exc:
        print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
