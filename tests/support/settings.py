"""The local cloud's settings, for tests that build a ``Settings`` or load a handler.

``Settings`` has no defaults for the deployment: these are the values a function of template.yaml
gets in the local cloud (its account, deployment id ``10ca1000``, the template's default
parameters), resolved from template.yaml's Globals.Function.Environment, not a second copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import pytest

from tenant_security.config import Settings
from tenant_security_tools.stack_settings import settings_environment, settings_of, template_environment
from tests.support.cloud import REAL_TEMPLATE


@cache
def _environment(prefix: str | None = None) -> dict[str, str]:
    return template_environment(REAL_TEMPLATE, {"ResourcePrefix": prefix} if prefix else None)


def local_environment(prefix: str | None = None) -> dict[str, str]:
    """Globals.Function.Environment of template.yaml (and AWS_REGION) as the local cloud sets it;
    with ``prefix``, as it sets it for that ResourcePrefix (the tables and the bus named from it)."""
    return dict(_environment(prefix))


def local_settings(**overrides: Any) -> Settings:
    """The local cloud's settings, ``overrides`` (field or variable names) over them; this process's
    environment plays no part. A ``resource_prefix`` names the tables and the bus as the template
    does; a bad value is pydantic's ValidationError, as ``Settings(...)`` raises it."""
    prefix = overrides.get("resource_prefix")
    return settings_of(_environment(prefix if isinstance(prefix, str) else None), **overrides)


def set_local_environment(monkeypatch: pytest.MonkeyPatch, **overrides: str) -> None:
    """This process's environment as a function's in the local cloud (for code that reads it with
    ``Settings()``); ``overrides`` by variable name over it."""
    for name, value in {**_environment(), **overrides}.items():
        monkeypatch.setenv(name, value)


@contextmanager
def local_function_environment() -> Iterator[None]:
    """This process's environment as a function's in the local cloud while inside (a handler module
    reads its settings at import); a variable the test set itself stays as it is."""
    with settings_environment(_environment(), keep_set=True):
        yield


def deploy_settings_function(settings: Settings) -> None:
    """In moto (its region the settings' own): the stack's ``<prefix>-audit-writer`` with
    ``settings`` as its environment, which is where the CLI reads a stack's settings
    (tenant_security_tools.stack_settings). A test that gives the CLI a stack of a few tables
    gives it this function too."""
    import io
    import json
    import zipfile

    import boto3

    from tenant_security_tools.stack_settings import SETTINGS_FUNCTION

    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    name = SETTINGS_FUNCTION.format(prefix=settings.resource_prefix)
    role = boto3.client("iam").create_role(
        RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust)
    )
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "")  # never invoked: only its configuration is read
    # AWS_REGION is the Lambda runtime's, not the configuration's
    environment = {k.upper(): str(v) for k, v in settings.model_dump().items() if k != "region"}
    boto3.client("lambda", region_name=settings.region).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="app.lambda_handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": environment},
    )
