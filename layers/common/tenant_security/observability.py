"""Powertools logger, tracer and metrics, shared by every function.

The logger's formatter redacts secrets (see :mod:`tenant_security.redaction`) from every record,
including exception text, so a password, token or one-time code never reaches a log line.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from tenant_security.redaction import redact, scrub_text

METRICS_NAMESPACE = "DcisionAI/TenantSecurity"
# A request that records no metric is normal; Powertools would warn on every such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with secrets removed from the whole record."""

    def serialize(self, log: Any) -> str:
        cleaned = redact(log)
        return scrub_text(json.dumps(cleaned, default=str, separators=(",", ":")))


def make_logger(service: str | None = None, **kwargs: Any) -> Logger:
    """A Powertools logger that redacts secrets. ``service`` defaults to POWERTOOLS_SERVICE_NAME."""
    return Logger(service=service, logger_formatter=RedactingFormatter(), **kwargs)


logger = make_logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)


def record_metric(
    name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count, **dimensions: str
) -> None:
    """One EMF metric with its own dimensions (a reason, an outcome), written at once.

    The shared ``metrics`` object puts one dimension set on every metric of an invocation; a
    breakdown by reason needs its own. Dimension values must come from a fixed set (never ids):
    each distinct combination is a billed custom metric.
    """
    with single_metric(
        name=name,
        unit=unit,
        value=value,
        namespace=METRICS_NAMESPACE,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def bind_request(tenant_id: str | None, user: str | None) -> None:
    """Put the caller's tenant and user on every following log line of this invocation.

    ``None`` removes a key, so a warm execution environment never carries the previous
    request's caller into the next one.
    """
    logger.append_keys(tenant_id=tenant_id or None, user=user or None)


if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

    tracer: Tracer


def __getattr__(name: str) -> Any:
    # The tracer pulls in the X-Ray SDK (~0.15 s); only the API handlers use it, so the
    # authorizer's cold start does not pay for it.
    if name == "tracer":
        from aws_lambda_powertools import Tracer

        globals()["tracer"] = Tracer()
        return globals()["tracer"]
    raise AttributeError(name)
