"""The ``tenant-security`` console script.

Exit codes: 0 success, 1 failure, 2 usage, 3 already done (e.g. the admin exists).
"""

from __future__ import annotations

import argparse
import json
import sys

from tenant_security.errors import Conflict

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ALREADY_DONE = 0, 1, 2, 3


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
