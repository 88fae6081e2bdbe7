"""Rules template.yaml must keep (checked on the SAM-transformed template)."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.template import transform_template
from tests.support.cloud import REAL_TEMPLATE


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return transform_template(REAL_TEMPLATE, {}, "us-east-1")[0]


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _all_policy_documents(cfn: dict[str, Any]) -> list[dict[str, Any]]:
    docs = []
    for res in cfn["Resources"].values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            docs += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for key in ("KeyPolicy", "PolicyDocument"):
            if key in props:
                docs.append(props[key])
    return docs


def test_no_statement_allows_every_action(cfn: dict[str, Any]) -> None:
    for document in _all_policy_documents(cfn):
        for statement in _statements(document):
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            assert "*" not in actions, statement
            assert not any(a.endswith(":*") for a in actions), statement


def test_each_function_has_its_own_role(cfn: dict[str, Any]) -> None:
    roles = [
        r["Properties"]["Role"] for r in cfn["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    ]
    assert len(roles) == len({str(r) for r in roles})


def test_functions_run_python_3_12_with_tracing(cfn: dict[str, Any]) -> None:
    for res in cfn["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function":
            assert res["Properties"]["Runtime"] == "python3.12"
            assert res["Properties"]["TracingConfig"] == {"Mode": "Active"}
            env = res["Properties"]["Environment"]["Variables"]
            assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"  # events carry tokens


def test_tables_have_point_in_time_recovery_and_encryption(cfn: dict[str, Any]) -> None:
    tables = {k: r for k, r in cfn["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert set(tables) == {
        "TenantsTable",
        "UsersTable",
        "SessionsTable",
        "CountersTable",
        "AuditHeadsTable",
        "IdempotencyTable",
    }
    for table in tables.values():
        props = table["Properties"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
    for name in ("SessionsTable", "CountersTable", "IdempotencyTable"):
        assert tables[name]["Properties"]["TimeToLiveSpecification"]["Enabled"] is True


def test_platform_keys(cfn: dict[str, Any]) -> None:
    res = cfn["Resources"]
    assert res["TokenSigningKey"]["Properties"]["KeySpec"] == "ECC_NIST_P256"
    assert res["TokenSigningKey"]["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    for name in ("AuditLogKey", "PlatformMasterKey"):
        assert res[name]["Properties"]["EnableKeyRotation"] is True


def test_the_authorizer_is_keyed_on_token_and_source_ip(cfn: dict[str, Any]) -> None:
    (api,) = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    (scheme,) = api["Properties"]["Body"]["securityDefinitions"].values()
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == "method.request.header.Authorization, context.identity.sourceIp"
    responses = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX"):
        assert '"error"' in responses[kind]["responseTemplates"]["application/json"]
