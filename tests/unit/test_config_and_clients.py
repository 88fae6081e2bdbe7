"""Settings come from the environment in one place; boto3 clients are lazy, shared and honour
AWS_ENDPOINT_URL (how the same code talks to moto locally and AWS when deployed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tenant_security import aws
from tenant_security.config import Settings


def test_settings_read_the_template_environment(monkeypatch: pytest.MonkeyPatch) -> None:
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
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


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
    from tenant_security.config import Settings
    from tenant_security.database import DatabaseLogin

    # Aurora's managed secret holds only the user and password; template.yaml passes the rest.
    settings = Settings(database_host="cluster.example.rds.amazonaws.com", database_name="platform")
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
    assert Settings().database_location == {}


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
    settings = Settings(deployment_id="5e3a1b20")
    longest = "t" + "x" * 31
    assert settings.data_bucket("acme") == "dcisionai-5e3a1b20-tenant-acme-data"
    assert settings.audit_bucket("acme") == "dcisionai-5e3a1b20-audit-logs-acme"
    assert max(len(settings.data_bucket(longest)), len(settings.audit_bucket(longest))) <= 63
    with pytest.raises(ValueError, match="deployment_id"):
        Settings(deployment_id="not-hex!")


def test_the_stack_gives_every_function_its_deployment_id_from_the_stack_id() -> None:
    from localcloud.intrinsics import Resolver
    from localcloud.provision import LOCAL_STACK_UUID
    from localcloud.template import load_template

    cfn = load_template(Path(__file__).parents[2] / "template.yaml")
    expression = cfn["Globals"]["Function"]["Environment"]["Variables"]["DEPLOYMENT_ID"]
    stack_id = f"arn:aws:cloudformation:us-east-1:123456789012:stack/s/{LOCAL_STACK_UUID}"
    resolver = Resolver(cfn, {}, {"AWS::StackId": stack_id}, ref=lambda name: name, get_att=lambda *_: "")
    assert resolver.resolve(expression) == Settings().deployment_id
    bucket = cfn["Resources"]["PlatformAuditBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    assert bucket[0] == "${ResourcePrefix}-${DeploymentId}-audit-logs-${PlatformTenantId}"
    assert bucket[1]["DeploymentId"] == expression
