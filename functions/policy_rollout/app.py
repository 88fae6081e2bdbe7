"""Step Functions tasks of the tenant policy rollout: ``{"step": NAME, "tenant_id", "revision"}``.

``apply`` converges the tenant's keys and audit bucket to its stored policy
(:class:`tenant_security.policy.rollout.PolicyRollout`); ``fail`` records a failure that
outlasted the state machine's retries. Errors keep their class name as Step Functions' error
name: ``TransientError`` (an AWS outage or throttle, a replica KMS is still creating, a policy
that kept changing) is retried with back-off, ``RolloutFailed`` (recorded and alerted already)
ends the execution failed, anything else goes to ``fail``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from tenant_security import services
from tenant_security.aws import is_transient
from tenant_security.errors import ServiceUnavailable
from tenant_security.observability import logger, record_metric
from tenant_security.onboarding.errors import TransientError
from tenant_security.policy.rollout import RolloutFailed

STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "apply": lambda e: services.policy_rollout().apply(str(e["tenant_id"]), int(e["revision"])),
    "fail": lambda e: services.policy_rollout().fail(str(e["tenant_id"]), int(e["revision"]), e.get("error")),
}

# The fields of each step's result that the state machine reads (its ResultSelector paths): a
# result without one fails here, as the step's own error -- never as States.Runtime, which no
# Catch takes (tests/unit/test_policy_rollout_machine.py checks the machine against this).
STEP_OUTPUT_FIELDS: dict[str, frozenset[str]] = {
    "apply": frozenset({"status", "revision"}),
    "fail": frozenset({"status"}),
}


class MalformedStepResult(Exception):
    """A step's result lacks a field the state machine reads (a bug)."""


def _checked(step: str, result: Any) -> Any:
    missing = sorted(STEP_OUTPUT_FIELDS[step] - set(result if isinstance(result, dict) else ()))
    if missing:
        raise MalformedStepResult(f"{step}: the result lacks {', '.join(missing)}")
    return result


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    """Run one step."""
    step = str(event.get("step"))
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}")
    tenant_id = str(event.get("tenant_id") or "")
    logger.append_keys(tenant_id=tenant_id, step=step, revision=event.get("revision"))
    faults = services.faults()
    faults.check("policy_rollout", tenant_id, step)
    try:
        with faults.aws_faults(tenant_id):
            result = _checked(step, STEPS[step](event))
    except RolloutFailed:
        record_metric("PolicyRolloutOutcome", outcome="failed")
        raise
    except Exception as exc:
        if is_transient(exc) or isinstance(exc, ServiceUnavailable):
            raise TransientError(f"{step}: {type(exc).__name__}") from exc
        raise
    logger.info("step done", extra={"outcome": result.get("status")})
    record_metric("PolicyRolloutOutcome", outcome=str(result.get("status")))
    return result
