"""Read template.yaml and turn it into plain CloudFormation with aws-sam-translator.

The transformed template is the one description everything else reads: the API's swagger body
(routes, integrations, authorizers, gateway responses), the rules with their targets, the
functions with their handlers, layers and environment, the state machines' definitions.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# The managed policies SAM adds on its own (tracing, basic execution, policy templates).
_MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for name, path in {
        "AWSLambdaBasicExecutionRole": "service-role/",
        "AWSXrayWriteOnlyAccess": "",
        "AWSXRayDaemonWriteAccess": "",
        "AWSLambdaRole": "service-role/",
        "AWSLambdaVPCAccessExecutionRole": "service-role/",
    }.items()
}


class _StaticPolicyLoader:
    """Managed-policy names → ARNs without calling IAM (the translator asks only for these)."""

    def load(self) -> dict[str, str]:
        return dict(_MANAGED_POLICIES)


def _inline_code_locations(template: dict[str, Any], base: Path) -> dict[str, Path]:
    """Give the translator placeholders for local paths; return each resource's real code dir."""
    code_dirs: dict[str, Path] = {}
    globals_fn = template.get("Globals", {}).get("Function", {})
    for logical_id, res in template.get("Resources", {}).items():
        props = res.setdefault("Properties", {})
        kind = res.get("Type")
        if kind == "AWS::Serverless::Function":
            uri = props.get("CodeUri", globals_fn.get("CodeUri"))
            if isinstance(uri, str) and not uri.startswith("s3://"):
                code_dirs[logical_id] = (base / uri).resolve()
                props["CodeUri"] = f"s3://localcloud/{logical_id}.zip"
        elif kind == "AWS::Serverless::LayerVersion":
            uri = props.get("ContentUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                code_dirs[logical_id] = (base / uri).resolve()
                props["ContentUri"] = f"s3://localcloud/{logical_id}.zip"
        elif kind == "AWS::Serverless::StateMachine":
            uri = props.pop("DefinitionUri", None)
            if isinstance(uri, str):
                props["Definition"] = json.loads((base / uri).read_text())
    return code_dirs


def load_template(path: Path) -> dict[str, Any]:
    """The template as a dict (short-form intrinsics such as !Sub become their long form)."""
    return yaml_parse(path.read_text())  # type: ignore[no-any-return]


def transform_template(
    path: Path, parameters: dict[str, Any], region: str
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The SAM template at ``path`` as plain CloudFormation, and each function's/layer's code dir."""
    import os

    template = load_template(path)
    source = copy.deepcopy(template)
    code_dirs = _inline_code_locations(source, path.parent)
    # The translator reads the region from the environment (boto's default session).
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        cfn = transform(source, dict(parameters), _StaticPolicyLoader())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    return cfn, code_dirs
