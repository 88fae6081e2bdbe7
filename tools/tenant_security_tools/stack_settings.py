"""The settings a stack's functions run with, for tools that run outside a function.

``tenant_security.config.Settings`` has no default for what names a deployment (its prefix,
account, region, tables, keys). A function gets those from template.yaml's
Globals.Function.Environment; a tool gets the same values one of two ways:

- :func:`deployed_settings`: from a deployed stack, the environment of its one named function
  (``<prefix>-audit-writer``, template.yaml's ``AuditWriterFunction``): exactly what the
  functions use. The operator needs ``lambda:GetFunctionConfiguration`` on that function.
- :func:`template_environment`: from template.yaml alone, as the local cloud would deploy it
  with the template's default parameters (for `make openapi` and the tests, which deploy
  nothing); :func:`settings_of` makes the settings of such an environment.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

    from tenant_security.config import Settings

# The one function of the stack with a name of its own (FunctionName in template.yaml): the
# others are named by CloudFormation, so only this one is found from the prefix alone.
SETTINGS_FUNCTION = "{prefix}-audit-writer"
# The local cloud's region (its default), in which its stack id, ARNs and queue URLs are made.
LOCAL_REGION = "us-east-1"


class StackNotFound(LookupError):
    """No stack with that prefix in this account and region (its named function is not there)."""


def deployed_settings(lambda_client: LambdaClient, prefix: str, **overrides: Any) -> Settings:
    """The settings of the stack named by ``prefix``: the environment its functions get (read from
    ``<prefix>-audit-writer``), the region of that function, and ``overrides`` over them.

    Raises :class:`StackNotFound` if the stack has no such function, and
    :class:`tenant_security.config.MissingSettings` (naming variables, never values) if its
    environment lacks what a function needs."""
    from tenant_security.aws import error_code

    name = SETTINGS_FUNCTION.format(prefix=prefix)
    try:
        configuration = lambda_client.get_function_configuration(FunctionName=name)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise StackNotFound(
                f"no function {name} in this account and region: is --prefix {prefix} the stack's "
                "ResourcePrefix, and AWS_REGION its region?"
            ) from None
        raise
    variables = dict(configuration.get("Environment", {}).get("Variables", {}))
    # AWS_REGION is the Lambda runtime's, not the function's configuration: its ARN says it.
    variables["AWS_REGION"] = configuration["FunctionArn"].split(":")[3]
    return _checked_settings(variables, **overrides)


def settings_of(environment: Mapping[str, str], **overrides: Any) -> Settings:
    """``Settings`` from a function's environment alone (not this process's), ``overrides`` (by
    field or variable name) over it; pydantic's ValidationError if a value is missing or bad."""
    values = _by_field(environment)
    values.update(_by_field(overrides, strict=True))
    return _given_only()(**values)


def _checked_settings(environment: Mapping[str, str], **overrides: Any) -> Settings:
    """:func:`settings_of`, or :class:`~tenant_security.config.MissingSettings` naming what is
    missing or bad (never a value)."""
    from pydantic import ValidationError

    from tenant_security.config import MissingSettings, environment_problems

    try:
        return settings_of(environment, **overrides)
    except ValidationError as exc:
        raise MissingSettings(environment_problems(exc)) from None


@cache
def _given_only() -> type[Settings]:
    """``Settings`` read from the values given only: a variable in this process's environment (an
    operator's shell, a test's) must not stand in for one the function does not have."""
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

    from tenant_security.config import Settings

    class GivenSettings(Settings):
        """Settings of another process's environment (``settings_of``)."""

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    return GivenSettings


def template_environment(template: Path, parameters: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Globals.Function.Environment of ``template`` (and AWS_REGION) as the local cloud resolves it
    for its stack (localcloud.provision): its account, its stack id (so DEPLOYMENT_ID), the
    template's default parameters with ``parameters`` over them.

    Names are the resources' own (tables, bus, queue URL); a KMS key, whose id AWS chooses, gets
    a key id made from its logical id, the same on every run."""
    from localcloud.cloud import ACCOUNT
    from localcloud.intrinsics import Resolver, UnresolvedReference
    from localcloud.provision import LOCAL_STACK_UUID
    from localcloud.template import load_template

    cfn = load_template(template)
    values = {name: spec.get("Default") for name, spec in cfn.get("Parameters", {}).items()}
    values.update(parameters or {})
    stack_name = "local"
    stack_id = f"arn:aws:cloudformation:{LOCAL_REGION}:{ACCOUNT}:stack/{stack_name}/{LOCAL_STACK_UUID}"
    resources = cfn["Resources"]

    def ref(logical_id: str) -> str:
        resource = resources.get(logical_id)
        if resource is None:
            raise UnresolvedReference(logical_id)
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::KMS::Key":
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"localcloud:{stack_name}:{logical_id}"))
        if kind == "AWS::SQS::Queue":
            queue = resolver.resolve(properties["QueueName"])
            return f"https://sqs.{LOCAL_REGION}.amazonaws.com/{ACCOUNT}/{queue}"
        for name in ("TableName", "Name", "FunctionName"):
            if name in properties:
                return str(resolver.resolve(properties[name]))
        raise UnresolvedReference(f"{logical_id} ({kind}): no name in the template")

    def get_att(logical_id: str, attribute: str) -> str:
        raise UnresolvedReference(f"{logical_id}.{attribute}: known once deployed")

    resolver = Resolver(
        cfn,
        values,
        {
            "AWS::Region": LOCAL_REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": stack_name,
            "AWS::StackId": stack_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
        ref,
        get_att,
    )
    variables = cfn["Globals"]["Function"]["Environment"]["Variables"]
    environment = {name: str(resolver.resolve(value)) for name, value in variables.items()}
    environment["AWS_REGION"] = LOCAL_REGION
    return environment


@contextmanager
def settings_environment(environment: Mapping[str, str], *, keep_set: bool = False) -> Iterator[None]:
    """This process's environment with the settings variables of ``environment`` (a function's),
    for code that reads :func:`~tenant_security.config.get_settings` (a handler module at import);
    restored afterwards. ``keep_set``: a variable this process already has stays as it is."""
    from tenant_security.config import Settings

    names = {"AWS_REGION", *(name.upper() for name in Settings.model_fields)}
    before = {name: os.environ.get(name) for name in environment if name in names}
    try:
        for name, value in before.items():
            if not (keep_set and value is not None):
                os.environ[name] = environment[name]
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _by_field(values: Mapping[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """Environment names (or field names) as ``Settings`` field names; others left out (a
    function has variables of its own), or with ``strict`` a TypeError (an override's typo)."""
    from tenant_security.config import Settings

    fields = {}
    for name, value in values.items():
        field = "region" if name.upper() == "AWS_REGION" else name.lower()
        if field in Settings.model_fields:
            fields[field] = value
        elif strict:
            raise TypeError(f"Settings has no field {name!r}")
    return fields
