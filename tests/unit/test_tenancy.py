"""The tenant id rule of the API."""

from __future__ import annotations

import pytest

from tenant_security.errors import ValidationFailed
from tenant_security.tenancy import is_valid_tenant_id, is_valid_username, require_tenant_id, require_username


@pytest.mark.parametrize("tenant_id", ["acme", "acme-manufacturing", "a12", "t" + "x" * 31, "a-b-c"])
def test_valid_ids(tenant_id: str) -> None:
    assert is_valid_tenant_id(tenant_id)
    assert require_tenant_id(tenant_id) == tenant_id


@pytest.mark.parametrize(
    "tenant_id",
    [
        "ab",  # too short
        "t" + "x" * 32,  # too long
        "Acme",  # upper case
        "1acme",  # starts with a digit
        "-acme",
        "acme_co",
        "acme.co",
        "acme\n",  # trailing newline must not slip past "$"
        "acme; drop table users",
        "../etc",
        "acmé",
        "",
        None,
        42,
    ],
)
def test_invalid_ids(tenant_id: object) -> None:
    assert not is_valid_tenant_id(tenant_id)
    with pytest.raises(ValidationFailed) as caught:
        require_tenant_id(tenant_id, field="path.tenant_id")
    assert caught.value.fields == [{"field": "path.tenant_id", "message": caught.value.fields[0]["message"]}]


class _CountingStore:
    def __init__(self) -> None:
        self.record: object = None
        self.reads = 0

    def get(self, tenant_id: str) -> object:
        self.reads += 1
        return self.record


def test_the_tenant_cache_keeps_absent_and_provisioning_tenants_only_briefly() -> None:
    from tenant_security.tenant_directory import TRANSITIONAL_CACHE_SECONDS, TenantDirectory
    from tenant_security.tenants import TenantProfile

    now = [0.0]
    store = _CountingStore()
    directory = TenantDirectory(store, ttl=60, clock=lambda: now[0])  # type: ignore[arg-type]
    assert directory.get("acme") is None
    assert directory.get("acme") is None
    assert store.reads == 1  # an unknown id does not cost a read per request
    store.record = TenantProfile(tenant_id="acme", name="Acme", status="PROVISIONING")
    now[0] += TRANSITIONAL_CACHE_SECONDS + 0.1
    assert directory.get("acme").status == "PROVISIONING"  # type: ignore[union-attr]
    store.record = TenantProfile(tenant_id="acme", name="Acme", status="ACTIVE")
    now[0] += TRANSITIONAL_CACHE_SECONDS + 0.1
    assert directory.get("acme").status == "ACTIVE"  # type: ignore[union-attr]
    store.record = TenantProfile(tenant_id="acme", name="Acme", status="SUSPENDED")
    now[0] += 30
    assert directory.get("acme").status == "ACTIVE"  # type: ignore[union-attr]  # an active one: 60 s
    assert store.reads == 3


def test_a_write_acts_on_the_status_of_now_and_a_read_on_one_seconds_old() -> None:
    """Red team B: writes were admitted for a minute after a suspension, from the cached ACTIVE."""
    from tenant_security.tenant_directory import READ_STATUS_MAX_AGE, WRITE_STATUS_MAX_AGE, TenantDirectory
    from tenant_security.tenants import TenantProfile

    now = [0.0]
    store = _CountingStore()
    store.record = TenantProfile(tenant_id="acme", name="Acme", status="ACTIVE")
    directory = TenantDirectory(store, ttl=60, clock=lambda: now[0])  # type: ignore[arg-type]
    assert directory.get("acme", READ_STATUS_MAX_AGE).status == "ACTIVE"  # type: ignore[union-attr]
    store.record = TenantProfile(tenant_id="acme", name="Acme", status="SUSPENDED")
    now[0] += 0.5
    assert directory.get("acme", READ_STATUS_MAX_AGE).status == "ACTIVE"  # type: ignore[union-attr]
    assert directory.get("acme", WRITE_STATUS_MAX_AGE).status == "SUSPENDED"  # type: ignore[union-attr]
    store.record = TenantProfile(tenant_id="acme", name="Acme", status="OFFBOARDING")
    now[0] += READ_STATUS_MAX_AGE
    assert directory.get("acme", READ_STATUS_MAX_AGE).status == "OFFBOARDING"  # type: ignore[union-attr]
    assert directory.get("acme").status == "OFFBOARDING"  # type: ignore[union-attr]  # the freshest read


@pytest.mark.parametrize("username", ["alice", "a1", "ops.bot", "first_last", "ada@example.com", "x" * 64])
def test_valid_usernames(username: str) -> None:
    assert is_valid_username(username)
    assert require_username(username) == username


@pytest.mark.parametrize(
    "username", ["a", "x" * 65, "Alice", ".alice", "al ice", "alice\n", "../etc", "alicé", "", None, 7]
)
def test_invalid_usernames(username: object) -> None:
    assert not is_valid_username(username)
    with pytest.raises(ValidationFailed) as caught:
        require_username(username, field="path.username")
    assert caught.value.fields == [{"field": "path.username", "message": "not a user name"}]
