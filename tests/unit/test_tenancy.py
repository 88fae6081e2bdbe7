"""The tenant id rule of API.md."""

from __future__ import annotations

import pytest

from tenant_security.errors import ValidationFailed
from tenant_security.tenancy import is_valid_tenant_id, require_tenant_id


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
