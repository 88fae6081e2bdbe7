"""The environment of the ``tenant-security`` console script, as a pydantic settings model.

The stack's own settings (tables, keys, the bus) are ``tenant_security.config.Settings``; these
are only what the script itself needs: where the session is kept, which API to sign in to and
which stack's settings the AWS-side commands read (tenant_security_tools.stack_settings).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CliSettings(BaseSettings):
    """Environment of the ``tenant-security`` console script (``TENANT_SECURITY_*``, and
    ``LOCALCLOUD_STATE_DIR`` as `make local` reads it)."""

    model_config = SettingsConfigDict(env_prefix="TENANT_SECURITY_", extra="ignore", frozen=True)

    # Where `login` keeps the session (0600); default ~/.config/tenant-security/session.json.
    session: str = ""
    # The API's base URL for `login` when neither --api nor --local is given.
    api_url: str = ""
    # The local cloud's state directory, as `make local` has it; only `login --local` reads its
    # bootstrap.json: a file in the working directory may come with a cloned repository.
    localcloud_state_dir: str = Field(".localcloud", validation_alias="LOCALCLOUD_STATE_DIR")
    # The stack the AWS-side commands work on when --prefix is not given: its ResourcePrefix
    # (template.yaml's default, or RESOURCE_PREFIX as a function of the stack has it).
    # (Not checked here: `login` reads these too, and a bad one names no stack, which says so.)
    resource_prefix: str = Field("dcisionai", validation_alias="RESOURCE_PREFIX")

    @property
    def session_path(self) -> Path:
        """Where `login` keeps the session (TENANT_SECURITY_SESSION, else under ~/.config)."""
        return (
            Path(self.session)
            if self.session
            else Path.home() / ".config" / "tenant-security" / "session.json"
        )

    @property
    def local_bootstrap_path(self) -> Path:
        """The running local cloud's bootstrap.json (its ``api_url`` is what `login --local` uses)."""
        return Path(self.localcloud_state_dir) / "bootstrap.json"
