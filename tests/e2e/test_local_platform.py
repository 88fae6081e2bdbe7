"""template.yaml on the local cloud: provisions completely, serves /health, stops cleanly."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import psutil
import psycopg
import pytest

from localcloud.template import transform_template
from tests.support.cloud import REAL_TEMPLATE, RunningCloud, start_cloud

pytestmark = pytest.mark.e2e


def test_health_answers(platform_cloud: RunningCloud) -> None:
    response = platform_cloud.http("GET", "/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["Content-Type"] == "application/json"


def test_the_openapi_document_is_served(platform_cloud: RunningCloud) -> None:
    reply = platform_cloud.http("GET", "/openapi.json")
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    document = reply.json()
    assert document["openapi"].startswith("3.")
    assert "/tenants/{tenant_id}/records" in document["paths"]
    assert document["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


def test_bootstrap_file_follows_the_contract(platform_cloud: RunningCloud) -> None:
    path = platform_cloud.state_dir / "bootstrap.json"
    info = json.loads(path.read_text())
    for key in (
        "api_url",
        "aws_endpoint_url",
        "region",
        "event_bus_name",
        "platform_tenant",
        "username",
        "password",
    ):
        assert key in info
    assert info["event_bus_name"] == "dcisionai-platform"
    assert info["platform_tenant"] == "platform"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it will carry a one-time password


def test_every_resource_of_the_template_is_provisioned(platform_cloud: RunningCloud) -> None:
    cfn, _ = transform_template(REAL_TEMPLATE, {}, "us-east-1")
    kinds = {r["Type"] for r in cfn["Resources"].values()}
    assert {
        "AWS::DynamoDB::Table",
        "AWS::KMS::Key",
        "AWS::Lambda::Function",
        "AWS::ApiGateway::RestApi",
    } <= kinds

    ddb = platform_cloud.client("dynamodb")
    tables = {
        r["Properties"]["TableName"]["Fn::Sub"].replace("${ResourcePrefix}", "dcisionai"): r
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::Table"
    }
    assert set(tables) <= set(ddb.list_tables()["TableNames"])
    for name, resource in tables.items():
        backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED", name
        ttl = resource["Properties"].get("TimeToLiveSpecification")
        if ttl:
            described = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            assert described == {"TimeToLiveStatus": "ENABLED", "AttributeName": ttl["AttributeName"]}

    kms = platform_cloud.client("kms")
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    signing = kms.describe_key(KeyId=aliases["alias/dcisionai-token-signing"])["KeyMetadata"]
    assert (signing["KeySpec"], signing["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    for alias in ("alias/dcisionai-audit-log", "alias/dcisionai-platform-master"):
        assert kms.get_key_rotation_status(KeyId=aliases[alias])["KeyRotationEnabled"] is True

    buses = [b["Name"] for b in platform_cloud.client("events").list_event_buses()["EventBuses"]]
    assert "dcisionai-platform" in buses
    assert platform_cloud.client("sqs").get_queue_url(QueueName="dcisionai-event-delivery-dlq")["QueueUrl"]

    functions = platform_cloud.client("lambda").list_functions()["Functions"]
    declared = sum(1 for r in cfn["Resources"].values() if r["Type"] == "AWS::Lambda::Function")
    assert len(functions) == declared
    assert all(f["Runtime"] == "python3.12" for f in functions)
    assert platform_cloud.outputs["EventBusName"] == "dcisionai-platform"


def test_functions_reach_the_database_through_the_secret(platform_cloud: RunningCloud) -> None:
    secrets = platform_cloud.client("secretsmanager")
    (secret,) = [s for s in secrets.list_secrets()["SecretList"] if s["Name"].endswith("/platform-database")]
    value = json.loads(secrets.get_secret_value(SecretId=secret["ARN"])["SecretString"])
    assert value["engine"] == "postgres"
    with psycopg.connect(
        host=value["host"],
        port=value["port"],
        user=value["username"],
        password=value["password"],
        dbname=value["dbname"],
        connect_timeout=10,
    ) as conn:
        assert conn.execute("select current_setting('server_version_num')::int").fetchone()[0] >= 140000


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/no/such/route", None, 404, "not_found"),
        ("POST", "/health", b"{not json", 404, "not_found"),
        ("PATCH", "/tenants/acme", None, 404, "not_found"),
        ("DELETE", "/tenants/acme", None, 401, "unauthorized"),
        ("POST", "/health", b"x" * (10 * 1024 * 1024 + 10), 413, "payload_too_large"),
    ],
)
def test_bad_requests_get_json_errors(
    platform_cloud: RunningCloud, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    response = platform_cloud.http(method, path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"] == code


def test_ctrl_c_stops_everything_it_started(tmp_path: Path) -> None:
    cloud = start_cloud(REAL_TEMPLATE, tmp_path, database=True)
    assert cloud.http("GET", "/health").status_code == 200  # a warm Lambda worker now exists
    parent = psutil.Process(cloud.process.pid)
    started = parent.children(recursive=True)
    postmaster = psutil.Process(int((tmp_path / "pgdata" / "postmaster.pid").read_text().split()[0]))
    assert started, "expected Lambda worker processes"
    code = cloud.stop()
    assert code == 0, f"exit {code}:\n{cloud.log()[-3000:]}"
    _gone, alive = psutil.wait_procs([*started, postmaster], timeout=10)
    assert not alive, f"left behind: {alive}\n{cloud.log()[-3000:]}"
    assert not os.path.exists(tmp_path / "pgdata" / "postmaster.pid")
