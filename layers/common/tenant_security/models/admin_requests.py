"""The admin API's request bodies (the reply bodies are :mod:`tenant_security.models.replies`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
