"""services.configure: a process that chooses its settings (the console script) gets every service
built from them, and nothing built from the settings before."""

from __future__ import annotations

import pytest

from tenant_security import services
from tenant_security.config import Settings


def test_configured_settings_are_what_every_builder_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    first = Settings.model_construct(users_table="first-users", tenants_table="first-tenants")
    second = Settings.model_construct(users_table="second-users", tenants_table="second-tenants")
    try:
        services.configure(first)
        assert services.settings() is first
        assert services.users().table == "first-users"
        assert services.tenant_store().table == "first-tenants"

        services.configure(second)  # nothing built from the first settings is kept
        assert services.settings() is second
        assert services.users().table == "second-users"
        assert services.tenant_store().table == "second-tenants"
    finally:
        services.configure(None)
    # back to the environment's settings, and nothing built from the chosen ones is left
    assert services.users.cache_info().currsize == 0
    assert services.settings.cache_info().currsize == 0


def test_the_cli_hands_the_services_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from tenant_security_tools import cli, stack_settings

    chosen: list[Settings | None] = []
    monkeypatch.setattr(services, "configure", chosen.append)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the operator's region (make test sets one)

    # the stack's settings without a stack (the CLI reads them from its function)
    def deployed(_lambda: object, prefix: str) -> Settings:
        return Settings.model_construct(resource_prefix=prefix)

    monkeypatch.setattr(stack_settings, "deployed_settings", deployed)
    # a refused tenant id: the command stops after choosing its settings
    assert cli.main(["audit", "verify", "--tenant", "Not A Tenant", "--prefix", "tst"]) == cli.EXIT_USAGE
    assert chosen[0] is not None
    assert chosen[0].resource_prefix == "tst"
    assert chosen[-1] is None
