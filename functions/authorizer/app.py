"""API Gateway REQUEST authorizer.

Fails closed: any request it cannot positively verify is refused. Token verification, MFA, RBAC
and the tenant policy arrive with the identity issue; until then no token can be verified, so
every request behind the authorizer gets 401.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from tenant_security.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Refuse: API Gateway answers 401 when an authorizer raises ``Unauthorized``."""
    logger.info("denied", extra={"reason": "no token verifier configured", "path": event.get("path")})
    raise Exception("Unauthorized")
