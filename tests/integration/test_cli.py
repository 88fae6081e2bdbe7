"""`tenant-security bootstrap-admin` against a stack's tables (moto)."""

from __future__ import annotations

import json

import boto3
import pytest

from tenant_security.identity.passwords import verify_password
from tenant_security.identity.users import UserStore
from tenant_security.tenants import TenantStore
from tenant_security_tools.cli import EXIT_ALREADY_DONE, EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tests.support.moto import create_table, mocked_aws
from tests.support.settings import deploy_settings_function, local_settings

pytestmark = pytest.mark.integration


def test_bootstrap_admin_creates_the_platform_tenant_and_admin_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb")
        create_table(ddb, "acme-sec-tenants", "tenant_id")
        create_table(ddb, "acme-sec-users", "tenant_id", "username")
        deploy_settings_function(local_settings(resource_prefix="acme-sec"))  # the CLI reads it
        assert main(["bootstrap-admin", "--prefix", "acme-sec", "--json"]) == EXIT_OK
        result = json.loads(capsys.readouterr().out)
        assert result["platform_tenant"] == "platform"
        assert result["username"] == "admin"
        user = UserStore(ddb, "acme-sec-users").get("platform", "admin")
        assert user is not None
        assert user.roles == ["platform-admin"]
        assert user.password_change_required is True
        assert verify_password(user.password_hash, result["password"])
        tenant = TenantStore(ddb, "acme-sec-tenants").get("platform")
        assert tenant is not None
        assert tenant.status == "ACTIVE"
        assert (
            main(["bootstrap-admin", "--prefix", "acme-sec"]) == EXIT_ALREADY_DONE
        )  # never resets a password
        assert main(["no-such-command"]) == EXIT_USAGE


def test_the_cli_works_with_the_settings_of_the_stack_its_prefix_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17, item 5: the stack's settings are its functions' environment, not the shell's (a
    variable there names no table of the stack) and not defaults; a missing stack is said."""
    with mocked_aws(monkeypatch):
        ddb = boto3.client("dynamodb")
        create_table(ddb, "acme-sec-tenants", "tenant_id")
        create_table(ddb, "acme-sec-users", "tenant_id", "username")
        deploy_settings_function(local_settings(resource_prefix="acme-sec"))
        monkeypatch.setenv("RESOURCE_PREFIX", "acme-sec")  # the stack, when --prefix is not given
        monkeypatch.setenv("TENANTS_TABLE", "not-the-stacks-table")
        assert main(["bootstrap-admin", "--platform-tenant", "operators", "--json"]) == EXIT_OK
        assert json.loads(capsys.readouterr().out)["platform_tenant"] == "operators"
        assert TenantStore(ddb, "acme-sec-tenants").get("operators") is not None
        assert main(["bootstrap-admin", "--prefix", "other-stack"]) == EXIT_FAILED
        assert "no function other-stack-audit-writer" in capsys.readouterr().err
