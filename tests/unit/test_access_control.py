"""The source-address rule of a tenant's policy (``AccessControl.allows``), which the authorizer
and sign-in both apply."""

from __future__ import annotations

import pytest

from tenant_security.models.policies import AccessControl


def access(*cidrs: str) -> AccessControl:
    return AccessControl.model_validate({"ip_whitelist": list(cidrs)})


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.1", "203.0.113.9", "::1", "", None, "not-an-ip"])
def test_an_empty_list_allows_every_source(address: str | None) -> None:
    assert access().allows(address)


@pytest.mark.parametrize("address", ["10.0.0.1", "10.255.255.255", "2001:db8::7"])
def test_an_address_inside_a_block_is_allowed(address: str) -> None:
    assert access("10.0.0.0/8", "2001:db8::/32").allows(address)


@pytest.mark.parametrize("address", ["11.0.0.1", "192.168.0.1", "2001:db9::1", "", None, "10.0.0.1/8", "ten"])
def test_any_other_source_is_refused(address: str | None) -> None:
    assert not access("10.0.0.0/8", "2001:db8::/32").allows(address)


def test_a_single_address_is_a_block_of_one() -> None:
    policy = access("203.0.113.9")
    assert policy.allows("203.0.113.9")
    assert not policy.allows("203.0.113.10")


def test_the_default_admits_every_address_so_a_deployed_stack_is_reachable() -> None:
    # API.md v2: the private ranges are a corporate example, not a default for a public API
    policy = AccessControl()
    assert policy.ip_whitelist == []
    for address in ("10.0.0.1", "172.31.255.254", "8.8.8.8", "2001:db8::1"):
        assert policy.allows(address)


def test_the_corporate_example_admits_private_networks_only() -> None:
    policy = access("10.0.0.0/8", "172.16.0.0/12")
    assert policy.allows("10.0.0.1")
    assert policy.allows("172.31.255.254")
    assert not policy.allows("8.8.8.8")
