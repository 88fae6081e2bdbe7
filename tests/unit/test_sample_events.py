"""The sample events under events/ (for `sam local invoke -e`) drive the real handlers."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tenant_security.models import parse_security_policies
from tenant_security.tenancy import is_valid_tenant_id
from tests.support.settings import local_function_environment, local_settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeContext:
    function_name: str = "test"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def load_function(name: str) -> ModuleType:
    """A handler module, loaded with its function's settings in the local cloud (what the test set
    itself stays): read at its cold start and kept for the process, as an execution environment
    keeps them."""
    from tenant_security import services

    spec = importlib.util.spec_from_file_location(f"fn_{name}", ROOT / "functions" / name / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with local_function_environment():
        spec.loader.exec_module(module)
        services.settings()
    return module


def sample(name: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "events" / name).read_text()))


def test_health_event() -> None:
    reply = load_function("health").lambda_handler(sample("health_get.json"), FakeContext())
    assert reply["statusCode"] == 200
    assert json.loads(reply["body"])["status"] == "ok"


def test_the_authorizer_fails_closed_on_the_sample_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_SIGNING_KEY_ID", "k1")  # a key id, but the sample token is not a JWT
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        load_function("authorizer").lambda_handler(sample("authorizer_request.json"), FakeContext())


def test_the_onboarding_sample_is_a_valid_request_for_the_platform_bus() -> None:
    (event,) = json.loads((ROOT / "events" / "tenant_onboarding_requested.json").read_text())
    assert event["DetailType"] == "Tenant Onboarding Requested"
    assert event["EventBusName"] == "dcisionai-platform"
    detail = json.loads(event["Detail"])
    assert is_valid_tenant_id(detail["tenant_id"])
    assert detail["isolation"] in ("database", "schema")
    assert parse_security_policies(detail["security_policies"]).access_control.ip_whitelist == []


def test_the_cli_sample_request_is_valid() -> None:
    import yaml

    from tenant_security.onboarding.provisioner import TenantProvisioner

    document = yaml.safe_load((ROOT / "events" / "tenant.yaml").read_text())
    database = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
    with_database = local_settings(database_secret_arn=database)
    request = TenantProvisioner.validate_with(with_database, document)
    assert (request.tenant_id, request.isolation) == ("initech", "schema")
    assert request.security_policies.rate_limiting.requests_per_minute == 600
