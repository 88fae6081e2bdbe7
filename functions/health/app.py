"""GET /health: liveness of the API (no authorizer)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenant_security import __version__
from tenant_security.api_reference import ApiTag, reply
from tenant_security.config import get_settings
from tenant_security.http import make_resolver
from tenant_security.models.replies import Health
from tenant_security.observability import logger, tracer

settings = get_settings()
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes)


@app.get(
    "/health",
    summary="Health",
    description="The API answers: its version and stage. No token needed.",
    tags=[ApiTag.SERVICE],
    responses=reply(Health, description="The API is up"),
)
def health() -> dict[str, str]:
    """The API answers; its version and stage."""
    return {"status": "ok", "version": __version__, "stage": settings.stage}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point."""
    return app.resolve(event, context)
