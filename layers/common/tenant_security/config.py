"""The one place that reads the environment: every setting as a pydantic settings model.

Domain code receives a ``Settings`` (or the values it needs) as a parameter; only handlers and
the local cloud call :func:`get_settings`.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tenant_security.tenancy import PREFIX_PATTERN


class Settings(BaseSettings):
    """Environment of a function, as template.yaml sets it (see Globals.Function.Environment)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    resource_prefix: str = Field("dcisionai", pattern=PREFIX_PATTERN)
    region: str = Field("us-east-1", validation_alias="AWS_REGION")
    stage: str = "dev"
    platform_tenant_id: str = "platform"
    event_bus_name: str = "dcisionai-platform"
    event_source: str = "dcisionai.tenant-security"

    tenants_table: str = "dcisionai-tenants"
    users_table: str = "dcisionai-users"
    sessions_table: str = "dcisionai-sessions"
    counters_table: str = "dcisionai-counters"
    audit_heads_table: str = "dcisionai-audit-heads"
    idempotency_table: str = "dcisionai-idempotency"

    token_signing_key_id: str = ""
    audit_log_key_id: str = ""
    platform_master_key_id: str = ""
    event_dlq_url: str = ""
    database_secret_arn: str = ""

    # Largest JSON request body a handler accepts; API Gateway itself stops at 10 MB.
    max_json_body_bytes: int = Field(256 * 1024, ge=1024, le=10 * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once per execution environment)."""
    return Settings()
