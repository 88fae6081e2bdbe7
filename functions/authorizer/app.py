"""API Gateway REQUEST authorizer: token, tenant status, session, MFA, IP allow-list, RBAC.

Fails closed: an invalid token, a dead session or any unexpected error is 401 (``Unauthorized``,
not cached by API Gateway); a refusal is an explicit Deny (403). The decision itself lives in
``tenant_security.authz.decision``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenant_security import services
from tenant_security.errors import Unauthorized
from tenant_security.observability import logger, metrics


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Allow the caller's routes, deny, or raise ``Unauthorized`` (API Gateway answers 401)."""
    try:
        decision = services.request_authorizer().authorize(event)
    except Unauthorized as exc:
        logger.info("unauthorized", extra={"reason": exc.message, "resource": event.get("resource")})
        metrics.add_metric(name="AuthorizerUnauthorized", unit=MetricUnit.Count, value=1)
        raise Exception("Unauthorized") from None
    except Exception:
        logger.exception("authorizer error; denying")
        metrics.add_metric(name="AuthorizerError", unit=MetricUnit.Count, value=1)
        raise Exception("Unauthorized") from None
    reason = (decision.get("context") or {}).get("deny_reason")
    if reason:
        logger.info("denied", extra={"reason": reason, "resource": event.get("resource")})
        metrics.add_metric(name="AuthorizerDenied", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="AuthorizerAllowed", unit=MetricUnit.Count, value=1)
    return decision
