"""Settings come from the environment in one place; boto3 clients are lazy, shared and honour
AWS_ENDPOINT_URL (how the same code talks to moto locally and AWS when deployed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tenant_security import aws
from tenant_security.config import Settings
from tests.support.settings import local_settings, set_local_environment


def test_settings_read_the_template_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    set_local_environment(monkeypatch)
    monkeypatch.setenv("RESOURCE_PREFIX", "acme-sec")
    monkeypatch.setenv("TENANTS_TABLE", "acme-sec-tenants")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("MAX_JSON_BODY_BYTES", "4096")
    settings = Settings()
    assert (settings.resource_prefix, settings.tenants_table, settings.region) == (
        "acme-sec",
        "acme-sec-tenants",
        "eu-west-1",
    )
    assert settings.max_json_body_bytes == 4096


@pytest.mark.parametrize(("name", "value"), [("RESOURCE_PREFIX", "Bad_Prefix"), ("MAX_JSON_BODY_BYTES", "1")])
def test_bad_settings_fail_at_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    set_local_environment(monkeypatch)  # all there: only the bad value fails
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_a_missing_variable_fails_at_the_cold_start_naming_it_and_never_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 17, item 5: no deployment value has a default (the account id was a fake one), so a
    function whose environment lacks one fails as it starts, saying which; a value may be an ARN."""
    import importlib.util

    from tenant_security import config

    set_local_environment(monkeypatch)
    monkeypatch.delenv("ACCOUNT_ID")
    monkeypatch.delenv("TENANTS_TABLE")
    secret = "arn:aws:secretsmanager:us-east-1:210987654321:secret:platform-database-AbCdEf"
    monkeypatch.setenv("DATABASE_SECRET_ARN", secret)
    monkeypatch.setenv("LOCKOUT_SECONDS", "nine-hundred-" + secret)
    # the process's own settings (cached) stay as they are: a cold start reads them afresh
    monkeypatch.setattr(config, "get_settings", config.get_settings.__wrapped__)
    health = Path(__file__).parents[2] / "functions" / "health" / "app.py"
    spec = importlib.util.spec_from_file_location("cold_start_health", health)
    assert spec is not None
    assert spec.loader is not None
    with pytest.raises(config.MissingSettings) as caught:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    message = str(caught.value)
    assert "ACCOUNT_ID: missing" in message
    assert "TENANTS_TABLE: missing" in message
    assert "LOCKOUT_SECONDS: " in message
    for value in (secret, "210987654321", "nine-hundred"):
        assert value not in message
    assert "dcisionai" not in message  # nor the values that were there


@pytest.mark.parametrize("account", ["", "12345678901", "1234567890123", "acme-account"])
def test_an_account_id_that_is_no_account_id_is_refused(
    monkeypatch: pytest.MonkeyPatch, account: str
) -> None:
    from tenant_security import config

    with pytest.raises(ValidationError, match="account_id"):
        local_settings(account_id=account)
    set_local_environment(monkeypatch, ACCOUNT_ID=account)
    with pytest.raises(config.MissingSettings, match=r"ACCOUNT_ID: String should match pattern"):
        config.get_settings.__wrapped__()


def test_clients_are_lazy_shared_and_honour_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4599")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    aws.reset_clients()
    try:
        first = aws.dynamodb()
        assert first is aws.dynamodb()  # one client per service per execution environment
        assert first.meta.endpoint_url == "http://127.0.0.1:4599"
        assert aws.kms().meta.endpoint_url == "http://127.0.0.1:4599"
        assert first.meta.config.retries["mode"] == "standard"
    finally:
        aws.reset_clients()


def test_an_rds_managed_master_secret_is_completed_by_the_stacks_endpoint() -> None:
    from tenant_security.database import DatabaseLogin

    # Aurora's managed secret holds only the user and password; template.yaml passes the rest.
    settings = local_settings(database_host="cluster.example.rds.amazonaws.com", database_name="platform")
    login = DatabaseLogin.from_secret(
        {"username": "platform_admin", "password": "pw"}, **settings.database_location
    )
    assert (login.host, login.port, login.dbname) == ("cluster.example.rds.amazonaws.com", 5432, "platform")
    # A secret that names its cluster wins over the defaults.
    named = DatabaseLogin.from_secret(
        {"host": "db.internal", "port": 6543, "username": "u", "password": "p", "dbname": "tenants"},
        **settings.database_location,
    )
    assert (named.host, named.port, named.dbname) == ("db.internal", 6543, "tenants")
    assert local_settings().database_location == {}


def test_a_timeout_without_a_reply_is_transient_not_a_crash() -> None:
    """Storage helper: botocore's ReadTimeoutError has ``response = None``; error_code crashed on it,
    and so the 503 for an outage became a 500."""
    from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

    from tenant_security.aws import error_code, is_transient

    timeout = ReadTimeoutError(endpoint_url="https://s3.amazonaws.com")
    closed = ConnectionClosedError(endpoint_url="https://s3.amazonaws.com")
    assert (error_code(timeout), error_code(closed)) == ("", "")
    assert is_transient(timeout)
    assert is_transient(closed)
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetItem")
    assert (error_code(throttled), is_transient(throttled)) == ("ThrottlingException", True)


def test_bucket_names_carry_the_deployment_id_and_fit_s3_for_every_tenant_id() -> None:
    """Issue 16, item 11: S3 bucket names are global; ``<prefix>-audit-logs-platform`` in a second
    region, account or stack (or taken by anyone first) failed with BucketAlreadyExists."""
    settings = local_settings(deployment_id="5e3a1b20")
    longest = "t" + "x" * 31
    assert settings.data_bucket("acme") == "dcisionai-5e3a1b20-tenant-acme-data"
    assert settings.audit_bucket("acme") == "dcisionai-5e3a1b20-audit-logs-acme"
    assert max(len(settings.data_bucket(longest)), len(settings.audit_bucket(longest))) <= 63
    with pytest.raises(ValueError, match="deployment_id"):
        local_settings(deployment_id="not-hex!")


def test_the_stack_gives_every_function_its_deployment_id_from_the_stack_id() -> None:
    from localcloud.intrinsics import Resolver
    from localcloud.provision import LOCAL_STACK_UUID
    from localcloud.template import load_template

    cfn = load_template(Path(__file__).parents[2] / "template.yaml")
    expression = cfn["Globals"]["Function"]["Environment"]["Variables"]["DEPLOYMENT_ID"]
    stack_id = f"arn:aws:cloudformation:us-east-1:123456789012:stack/s/{LOCAL_STACK_UUID}"
    resolver = Resolver(cfn, {}, {"AWS::StackId": stack_id}, ref=lambda name: name, get_att=lambda *_: "")
    assert resolver.resolve(expression) == "10ca1000"  # the first 8 hex digits of the stack id
    bucket = cfn["Resources"]["PlatformAuditBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    assert bucket[0] == "${ResourcePrefix}-${DeploymentId}-audit-logs-${PlatformTenantId}"
    assert bucket[1]["DeploymentId"] == expression
