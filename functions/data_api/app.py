"""Tenant data routes behind the authorizer: secrets (files and records follow)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, StringConstraints

from tenant_security import services
from tenant_security.context import protected_middleware
from tenant_security.http import make_resolver
from tenant_security.observability import logger, metrics, tracer
from tenant_security.tenancy import require_tenant_id
from tenant_security.tenant_secrets import MAX_VALUE_BYTES

settings = services.settings()
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes)
app.use(
    [
        protected_middleware(
            services.tenants().get,
            services.sessions().is_live,
            settings.platform_tenant_id,
            services.quota_guard,
            services.publisher,
        )
    ]
)


class SecretValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VALUE_BYTES)]


@app.put("/tenants/<tenant_id>/secrets/<name>")
def put_secret(tenant_id: str, name: str, body: SecretValue) -> dict[str, Any]:
    return services.tenant_secrets().put(require_tenant_id(tenant_id, "path.tenant_id"), name, body.value)


@app.get("/tenants/<tenant_id>/secrets/<name>")
def get_secret(tenant_id: str, name: str) -> dict[str, Any]:
    return services.tenant_secrets().get(require_tenant_id(tenant_id, "path.tenant_id"), name)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point."""
    return app.resolve(event, context)
