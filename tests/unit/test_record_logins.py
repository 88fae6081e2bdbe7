"""TenantLogins: when the tenant database secret is read again (a fake Secrets Manager, a fake clock)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenant_security.database import DatabaseLogin
from tenant_security.errors import ServiceUnavailable
from tenant_security.tenant_connections import TenantLogins


class FakeSecrets:
    def __init__(self) -> None:
        self.password = "one"
        self.reads = 0

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.reads += 1
        if SecretId == "missing":
            error = Exception("no such secret")
            error.response = {"Error": {"Code": "ResourceNotFoundException"}}  # type: ignore[attr-defined]
            raise error
        value = {"host": "db", "port": 5432, "username": "tenant_a", "password": self.password, "dbname": "d"}
        return {"SecretString": json.dumps(value)}


@pytest.fixture
def setup() -> tuple[TenantLogins, FakeSecrets, list[float]]:
    now = [1000.0]
    secrets = FakeSecrets()
    logins = TenantLogins(secrets, lambda t: t, max_age=300, min_refresh_seconds=2, clock=lambda: now[0])
    return logins, secrets, now


def test_a_confirmed_login_is_reused_until_it_is_old(setup: Any) -> None:
    logins, secrets, now = setup
    for _ in range(5):
        assert logins.for_connect("a").password == "one"
        logins.confirmed("a")
    assert secrets.reads == 1
    now[0] += 300
    secrets.password = "two"
    assert logins.for_connect("a").password == "two"
    assert secrets.reads == 2


def test_an_attempt_that_was_never_confirmed_makes_the_next_one_read_again(setup: Any) -> None:
    logins, secrets, now = setup
    logins.for_connect("a")  # ... and the connection failed: no confirmed()
    secrets.password = "rotated"
    assert logins.for_connect("a").password == "one"  # too soon: no storm on a dead database
    now[0] += 2
    assert logins.for_connect("a").password == "rotated"
    assert secrets.reads == 2
    logins.confirmed("a")
    now[0] += 100
    logins.for_connect("a")
    assert secrets.reads == 2


def test_the_schema_defaults_to_public_and_the_password_stays_out_of_repr(setup: Any) -> None:
    logins, _, _ = setup
    login = logins.current("a")
    assert login == DatabaseLogin("db", 5432, "tenant_a", "one", "d", "public")
    assert "one" not in repr(login)


def test_a_tenant_without_credentials_is_a_503(setup: Any) -> None:
    logins, _, _ = setup
    with pytest.raises(ServiceUnavailable):
        logins.for_connect("missing")
