"""`tenant-security bootstrap-admin` against a stack's tables (moto)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from tenant_security import aws
from tenant_security.cli import EXIT_ALREADY_DONE, EXIT_OK, EXIT_USAGE, main
from tenant_security.identity.passwords import verify_password
from tenant_security.identity.users import UserStore
from tenant_security.tenants import TenantStore

pytestmark = pytest.mark.integration


def test_bootstrap_admin_creates_the_platform_tenant_and_admin_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        aws.reset_clients()
        ddb = boto3.client("dynamodb")
        ddb.create_table(
            TableName="acme-sec-tenants",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "tenant_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "tenant_id", "KeyType": "HASH"}],
        )
        ddb.create_table(
            TableName="acme-sec-users",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "tenant_id", "AttributeType": "S"},
                {"AttributeName": "username", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "tenant_id", "KeyType": "HASH"},
                {"AttributeName": "username", "KeyType": "RANGE"},
            ],
        )
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
        aws.reset_clients()
