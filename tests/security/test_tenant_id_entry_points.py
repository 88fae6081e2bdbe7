"""Injection strings never pass the tenant id rule, wherever a document carries one."""

from __future__ import annotations

import pytest

from tenant_security.errors import ValidationFailed
from tenant_security.models import parse_resource_quotas, parse_security_policies
from tenant_security.tenancy import is_valid_tenant_id

PROBES = [
    "acme'; DROP SCHEMA public CASCADE; --",
    'acme" OR "1"="1',
    "../../etc/passwd",
    "acme\r\nX-Injected: 1",
    "acme%00",
    "acme\x00",
    "${jndi:ldap://x}",
    "a" * 10_000,
    "ACME",
    "acme\u202e",
]


@pytest.mark.parametrize("probe", PROBES)
def test_injection_strings_are_not_tenant_ids(probe: str) -> None:
    assert not is_valid_tenant_id(probe)
    with pytest.raises(ValidationFailed):
        parse_security_policies({"tenant_id": probe})
    with pytest.raises(ValidationFailed):
        parse_resource_quotas({"tenant_id": probe})
