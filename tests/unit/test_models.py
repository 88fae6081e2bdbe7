"""The seed's two documents: defaults exactly as its templates, clear field errors."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_security.errors import ValidationFailed
from tenant_security.models import parse_resource_quotas, parse_security_policies
from tenant_security.models.base import size_in_bytes

SEED_SECURITY_POLICIES = {
    "version": "1.0.0",
    "data_protection": {
        "encryption_level": "AES-256",
        "key_rotation_days": 90,
        "data_locality": ["us-east-1", "us-west-2"],
        "cross_region_encryption": True,
    },
    "access_control": {
        "max_concurrent_sessions": 100,
        "max_sessions_per_user": 10,
        "session_timeout_minutes": 480,
        "ip_whitelist": ["10.0.0.0/8", "172.16.0.0/12"],
        "mfa_required": True,
    },
    "audit_logging": {
        "log_all_operations": True,
        "log_data_access": True,
        "log_admin_actions": True,
        "retention_days": 2555,
    },
    "compliance": {
        "frameworks": ["SOX", "GDPR", "ISO27001"],
        "data_classification": "confidential",
        "pii_handling": "encrypt_and_redact",
    },
    "rate_limiting": {
        "requests_per_minute": 1000,
        "requests_per_hour": 50000,
        "burst_size": 100,
        "cost_threshold": 5000,
    },
}

SEED_RESOURCE_QUOTAS = {
    "compute": {"max_concurrent_requests": 100, "max_request_duration": 300000, "max_memory_usage": "2GB"},
    "storage": {"max_data_size": "100GB", "max_file_count": 10000, "max_file_size": "1GB"},
    "api": {"requests_per_minute": 1000, "requests_per_hour": 50000, "requests_per_day": 1000000},
    "cost": {"monthly_budget": 5000, "daily_limit": 200, "cost_alert_threshold": 0.8},
    "domains": {"manufacturing": True, "finance": False, "pharma": False},
}


def test_security_policy_defaults_are_the_seeds() -> None:
    policies = parse_security_policies({})
    # (segregation_of_duties extends the seed: the SOX report's conflicting role pairs)
    exclude: dict[str, Any] = {"tenant_id": True, "compliance": {"segregation_of_duties"}}
    # API.md v2: the one default that departs from the seed -- its private ranges are a
    # corporate example, and as a default they would refuse every internet caller
    expected = {**SEED_SECURITY_POLICIES, "access_control": {**SEED_SECURITY_POLICIES["access_control"]}}
    expected["access_control"]["ip_whitelist"] = []
    # API.md v2, "API clients": a field the seed does not have (machine access on by default)
    expected["access_control"]["api_clients_allowed"] = True
    assert policies.model_dump(exclude=exclude) == expected
    assert ("security-admin", "auditor") in policies.compliance.segregation_of_duties


def test_resource_quota_defaults_are_the_seeds() -> None:
    assert parse_resource_quotas(None).model_dump(exclude={"tenant_id"}) == SEED_RESOURCE_QUOTAS


def test_the_seeds_yaml_parses_with_its_root_key() -> None:
    text = """
security_policies:
  tenant_id: "acme-manufacturing"
  version: "1.0.0"
  access_control:
    max_concurrent_sessions: 5
    ip_whitelist: ["203.0.113.7"]
  audit_logging:
    retention_days: 2555  # 7 years for compliance
"""
    policy = parse_security_policies(text)
    assert policy.tenant_id == "acme-manufacturing"
    assert policy.access_control.max_concurrent_sessions == 5
    assert policy.access_control.ip_whitelist == ["203.0.113.7/32"]
    assert policy.access_control.session_timeout_minutes == 480  # default kept


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"data_protection": {"key_rotation_days": 30}}, "data_protection.key_rotation_days"),
        ({"data_protection": {"data_locality": ["mars-1"]}}, "data_protection.data_locality.0"),
        ({"data_protection": {"data_locality": []}}, "data_protection.data_locality"),
        ({"access_control": {"ip_whitelist": ["10.0.0.0/33"]}}, "access_control.ip_whitelist.0"),
        ({"access_control": {"max_concurrent_sessions": 0}}, "access_control.max_concurrent_sessions"),
        ({"access_control": {"mfa_required": "sometimes"}}, "access_control.mfa_required"),
        ({"compliance": {"pii_handling": "ignore"}}, "compliance.pii_handling"),
        ({"audit_logging": {"retention_days": -1}}, "audit_logging.retention_days"),
        ({"rate_limiting": {"requests_per_minute": 10, "requests_per_hour": 5}}, "rate_limiting"),
        ({"access_control": {"mfa_requird": True}}, "access_control.mfa_requird"),
        ({"tenant_id": "Bad Tenant"}, "tenant_id"),
    ],
)
def test_invalid_policies_name_the_failing_field(document: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_security_policies(document)
    assert caught.value.status == 400
    assert field in [f["field"] for f in caught.value.fields or []]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"storage": {"max_file_size": "1 parsec"}}, "storage.max_file_size"),
        ({"storage": {"max_file_size": "2TB", "max_data_size": "1TB"}}, "storage"),
        ({"api": {"requests_per_minute": 10, "requests_per_hour": 100, "requests_per_day": 50}}, "api"),
        ({"cost": {"cost_alert_threshold": 1.5}}, "cost.cost_alert_threshold"),
        ({"cost": {"daily_limit": 900, "monthly_budget": 100}}, "cost"),
        ({"compute": {"max_request_duration": 10_000_000}}, "compute.max_request_duration"),
        ({"domains": {"Bad Domain": True}}, "domains"),
    ],
)
def test_invalid_quotas_name_the_failing_field(document: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_resource_quotas(document)
    assert field in [f["field"] for f in caught.value.fields or []]


@pytest.mark.parametrize("text", ["[1, 2", "- just\n- a list", "42"])
def test_documents_that_are_not_objects_are_refused(text: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_security_policies(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2_000_000_000),
        ("100GB", 100 * 10**9),
        ("1GiB", 2**30),
        ("512 MB", 512 * 10**6),
        ("1.5KB", 1500),
    ],
)
def test_sizes_are_read_in_bytes(text: str, size: int) -> None:
    assert size_in_bytes(text) == size


def test_errors_do_not_echo_the_input() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_security_policies({"access_control": {"ip_whitelist": ["secret-value-xyz"]}})
    assert "secret-value-xyz" not in str(caught.value.body())


@pytest.mark.parametrize(
    ("parse", "document"),
    [
        (parse_resource_quotas, {"cost": {"monthly_budget": float("inf")}}),
        (parse_resource_quotas, "cost: {monthly_budget: .inf, daily_limit: .inf}"),  # YAML's infinity
        (parse_resource_quotas, {"cost": {"daily_limit": float("nan")}}),
        (parse_resource_quotas, {"cost": {"monthly_budget": 1e300}}),  # finite, but no budget
        (parse_security_policies, {"rate_limiting": {"cost_threshold": float("inf")}}),
    ],
)
def test_no_document_holds_an_infinite_or_absurd_amount(parse: Any, document: Any) -> None:
    """Red team B: an infinite budget was stored as null and the tenant record never read again."""
    with pytest.raises(ValidationFailed):
        parse(document)
