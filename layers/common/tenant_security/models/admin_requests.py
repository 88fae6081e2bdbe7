"""The admin API's request bodies (the reply bodies are :mod:`tenant_security.models.replies`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tenant_security.models.policies import Cidr
from tenant_security.tenancy import Email, Username

Role = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,47}$")]


class NewUser(BaseModel):
    """A user to create: name, e-mail and roles."""

    model_config = ConfigDict(extra="forbid")
    username: Username
    email: Email
    roles: list[Role] = Field(min_length=1, max_length=20)


class Incident(BaseModel):
    """The optional reason of a suspension or reinstatement."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class Roles(BaseModel):
    """A user's roles, all at once."""

    model_config = ConfigDict(extra="forbid")
    roles: list[Role] = Field(min_length=1, max_length=20)


class RoleDefinition(BaseModel):
    """A custom role: action patterns, each judged by the tenant-scoped actions it grants."""

    model_config = ConfigDict(extra="forbid")
    permissions: list[Annotated[str, StringConstraints(max_length=100)]] = Field(min_length=1, max_length=100)


# A label for people: letters, digits, spaces and ._()- (what a list or a log line shows as is).
ClientName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,63}$")]
MAX_CLIENT_DAYS = 365
DEFAULT_CLIENT_DAYS = 90
MAX_GRACE_SECONDS = 86400


class NewClient(BaseModel):
    """An API client to create: a name, its roles (at most what the caller may grant), how many
    days it lives, and optionally an allow-list of its own, narrower than the tenant's."""

    model_config = ConfigDict(extra="forbid")
    name: ClientName
    roles: list[Role] = Field(min_length=1, max_length=20)
    expires_in_days: int = Field(DEFAULT_CLIENT_DAYS, ge=1, le=MAX_CLIENT_DAYS)
    ip_whitelist: list[Cidr] = Field(default_factory=list, max_length=100)


class SecretRotation(BaseModel):
    """How long the secret being replaced keeps working (0, the default: not at all)."""

    model_config = ConfigDict(extra="forbid")
    grace_seconds: int = Field(0, ge=0, le=MAX_GRACE_SECONDS)
