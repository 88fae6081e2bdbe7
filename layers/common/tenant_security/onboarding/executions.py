"""Whether an onboarding execution may still change a tenant (Step Functions asked)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenant_security.aws import error_code
from tenant_security.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

STEP_TIMEOUT_MARGIN_SECONDS = 10


def execution_checker(
    stepfunctions: SFNClient, step_timeout_seconds: float, clock: Callable[[], float] = time.time
) -> Callable[[str], bool]:
    """``at_work(arn)``: whether an execution may still change a tenant -- RUNNING, or ended less
    than a step's timeout ago (stopping an execution does not stop a Lambda step already
    running: a compensation in flight would otherwise destroy what a takeover builds). True when
    unsure: a registration is taken over only from an execution known to be over for good."""

    def at_work(arn: str) -> bool:
        try:
            described = stepfunctions.describe_execution(executionArn=arn)
        except Exception as exc:
            if error_code(exc) == "ExecutionDoesNotExist":
                return False
            logger.warning("execution state unknown", extra={"error_type": type(exc).__name__})
            return True
        if str(described["status"]) == "RUNNING":
            return True
        # a datetime from botocore; a number is read as epoch seconds
        stopped: Any = described.get("stopDate")
        if stopped is None:
            return True
        ended = stopped.timestamp() if hasattr(stopped, "timestamp") else float(stopped)
        return clock() - ended < step_timeout_seconds + STEP_TIMEOUT_MARGIN_SECONDS

    return at_work
