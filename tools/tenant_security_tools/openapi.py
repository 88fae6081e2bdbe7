"""The OpenAPI 3 document of the whole API, generated from the handlers.

Each API function's Powertools resolver (validation on) describes its own routes from their type
annotations and pydantic models; this module loads every function of template.yaml that has one,
merges the documents, and makes them say what the API really does:

- greedy routes (Powertools' ``.+``) are named as the template names them (``{key+}`` → ``{key}``);
- Powertools' 422 is replaced by the errors every route can answer, all with the one error body
  ``{"error", "message", "fields"?}`` (tenant_security.errors / the gateway responses);
- routes behind the REQUEST authorizer carry the bearer-token security scheme.

``python -m tenant_security_tools.openapi [template.yaml]`` prints it (`make openapi`); the docs
function serves the committed copy at ``/openapi.json``; a test checks that its routes and the
template's are the same.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from localcloud.template import load_template, transform_template
from tenant_security_tools.stack_settings import settings_environment, template_environment

TITLE = "DcisionAI Tenant Security API"
VERSION = "1.0.0"
CLIENT_CREDENTIALS = "clientCredentials"


def client_credentials_scheme() -> dict[str, Any]:
    """The OAuth 2.0 client credentials flow of the token endpoint; its scopes are the roles (a
    token may be narrowed to some of its client's). The token URL is relative to the API's."""
    from tenant_security.authz.rbac import BUILTIN_ROLES
    from tenant_security.identity.client_credentials import TOKEN_PATH

    return {
        "type": "oauth2",
        "description": "An API client of a tenant (POST /tenants/{tenant_id}/clients): its client_id "
        "and client_secret get a 15-minute token. Leave the scopes empty for every role of the client.",
        "flows": {
            "clientCredentials": {
                "tokenUrl": TOKEN_PATH.lstrip("/"),
                "scopes": {role: f"the {role} role (if the client holds it)" for role in BUILTIN_ROLES},
            }
        },
    }


ERROR_STATUSES = {
    "400": "Malformed JSON, wrong types or values (validation_error lists the fields)",
    "401": "No token, or a bad, expired or revoked one",
    "403": "Not allowed: another tenant, a missing permission, the tenant's policy",
    "404": "No such route or resource",
    "409": "Conflicts with the current state",
    "413": "Body or file over the limit, or the storage quota used up",
    "415": "Unsupported content type",
    "423": "Locked out after failed attempts",
    "429": "Rate or cost quota reached (Retry-After, X-RateLimit-* headers)",
    "503": "A dependency is unavailable; try again",
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "object"}},
    },
}
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_GREEDY = re.compile(r"/\.\+$")


def _load_app(name: str, app_file: Path) -> Any:
    """A function's ``app`` resolver, its module loaded under a name of its own."""
    spec = importlib.util.spec_from_file_location(name, app_file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {app_file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return getattr(module, "app", None)


def _template_routes(cfn: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """(method, path) → behind the authorizer, from the transformed template's API body."""
    (api,) = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    routes = {}
    for path, methods in api["Properties"]["Body"]["paths"].items():
        for method, spec in methods.items():
            routes[(method.upper(), path.replace("+}", "}"))] = spec.get("security") != [{"NONE": []}]
    return routes


def _normalise(path: str, operation: dict[str, Any], greedy_name: str) -> str:
    if not _GREEDY.search(path):
        return path
    operation.setdefault("parameters", []).append(
        {"name": greedy_name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    )
    return _GREEDY.sub("/{" + greedy_name + "}", path)


def _greedy_names(routes: dict[tuple[str, str], bool]) -> dict[str, str]:
    """Prefix → the template's name of the greedy parameter that follows it."""
    names = {}
    for _, path in routes:
        head, _, last = path.rpartition("/")
        if last.startswith("{") and last.endswith("}"):
            names[head] = last[1:-1]
    return names


def build_openapi(template: Path, region: str = "us-east-1") -> dict[str, Any]:
    """The merged OpenAPI document of every API function in ``template``."""
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    cfn, code_dirs = transform_template(template, {}, region)
    routes = _template_routes(cfn)
    greedy = _greedy_names(routes)
    resources = load_template(template)["Resources"]
    layer_dirs = [str(d) for lid, d in code_dirs.items() if resources[lid]["Type"].endswith("LayerVersion")]
    for layer in layer_dirs:
        if layer not in sys.path:
            sys.path.insert(0, layer)
    from tenant_security.api_reference import TAG_DESCRIPTIONS  # the layer, on sys.path now

    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    environment = template_environment(template)
    for logical_id, code_dir in sorted(code_dirs.items()):
        app_file = code_dir / "app.py"
        if not app_file.is_file():
            continue
        # A handler reads its settings at import: the ones it gets in the local cloud.
        with settings_environment(environment):
            app = _load_app(f"tenant_security_tools_openapi_{logical_id}", app_file)
        if app is None or not hasattr(app, "get_openapi_json_schema"):
            continue
        doc = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            if name in ("HTTPValidationError", "ValidationError"):
                continue
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"two different schemas named {name}: rename one model in {logical_id}")
            schemas[name] = schema
        for path, operations in doc.get("paths", {}).items():
            for method, operation in operations.items():
                head = _GREEDY.sub("", path)
                normal = _normalise(path, operation, greedy.get(head, "key"))
                responses = operation["responses"]
                if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                    responses.pop("422")  # Powertools' own; the API answers 400 validation_error
                # Powertools gives every response a JSON body; a 204 has none.
                responses.get("204", {}).pop("content", None)
                for status, description in ERROR_STATUSES.items():
                    responses.setdefault(status, {"description": description, "content": _ERROR_CONTENT})
                if routes.get((method.upper(), normal)):
                    # a person's token or an API client's (Swagger UI's Authorize gets one)
                    operation["security"] = [{"bearerToken": []}, {CLIENT_CREDENTIALS: []}]
                if not operation.get("tags"):
                    raise ValueError(f"{method.upper()} {normal} ({logical_id}) has no tags=[ApiTag...]")
                paths.setdefault(normal, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Generated from the handlers (Powertools event handler): `make openapi`. "
            "Served at /openapi.json and, in Swagger UI, at /docs; README.md explains the flows.",
        },
        "tags": [{"name": tag.value, "description": text} for tag, text in TAG_DESCRIPTIONS.items()],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                CLIENT_CREDENTIALS: client_credentials_scheme(),
            },
        },
    }


def routes_of(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in an OpenAPI document."""
    return {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}


def main() -> None:
    template = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("template.yaml")
    print(json.dumps(build_openapi(template), indent=2))


if __name__ == "__main__":
    main()
