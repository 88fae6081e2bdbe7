"""Step Functions tasks of onboarding and offboarding: ``{"step": NAME, ...}`` → the step's result.

Errors keep their class name as Step Functions' error name: ``ValidationFailed`` and ``Conflict``
end an execution without compensation, ``NotOwner`` ends one that does not own the tenant's
provisioning (it changes nothing), ``TransientError`` is retried with back-off, anything else
leads to compensation. Every onboarding step receives the execution's id (``$$.Execution.Id``):
only the execution that registered a tenant may create or undo its resources.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenant_security import services
from tenant_security.aws import is_transient
from tenant_security.config import KEY_PURPOSES
from tenant_security.errors import Conflict, ValidationFailed
from tenant_security.observability import logger, record_metric
from tenant_security.onboarding.errors import TransientError

# The step whose success ends an onboarding, and the outcome it stands for.
OUTCOME_OF_STEP = {"activate": "onboarded", "compensate": "rolled_back"}


def _request(event: dict[str, Any]) -> Any:
    return services.provisioner().validate(event["request"])


def _execution(event: dict[str, Any]) -> str:
    return str(event.get("execution") or "")


STEPS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "validate": lambda e: {"request": _request(e).model_dump(mode="json")},
    "register": lambda e: services.provisioner().register(_request(e), _execution(e)),
    "keys": lambda e: services.provisioner().create_keys(_request(e), _execution(e)),
    "buckets": lambda e: services.provisioner().create_buckets(_request(e), e["keys"], _execution(e)),
    "database": lambda e: services.provisioner().create_database(_request(e), _execution(e)),
    "admin": lambda e: services.provisioner().create_admin(_request(e), _execution(e)),
    "activate": lambda e: services.provisioner().activate(_request(e), _execution(e)),
    "compensate": lambda e: services.provisioner().compensate(
        e["tenant_id"], _execution(e), _reason(e.get("error"))
    ),
    "begin_offboarding": lambda e: services.provisioner().begin_offboarding(e["tenant_id"]),
    "offboard": lambda e: services.provisioner().offboard(e["tenant_id"]),
}


# The fields of each step's result that the state machines read (ResultSelector paths, and
# later states' paths into a stored result). A result without one fails here, as an error of the
# step that Catch takes to compensation -- never as the state machine's States.Runtime, which no
# Catch takes (tests/unit/test_onboarding_steps.py checks both state machines against this).
STEP_OUTPUT_FIELDS: dict[str, frozenset[str]] = {
    "validate": frozenset({"request"}),
    "register": frozenset({"status", "proceed"}),
    "keys": frozenset(KEY_PURPOSES),
    "buckets": frozenset(),
    "database": frozenset(),
    "admin": frozenset({"initial_password_secret"}),
    "activate": frozenset({"status"}),
    "compensate": frozenset({"compensated"}),
    "begin_offboarding": frozenset(),
    "offboard": frozenset({"keys_pending_deletion"}),
}


class MalformedStepResult(Exception):
    """A step's result lacks a field the state machine reads (a bug; compensated)."""


def _checked(step: str, result: Any) -> Any:
    missing = sorted(STEP_OUTPUT_FIELDS[step] - set(result if isinstance(result, dict) else ()))
    if missing:
        raise MalformedStepResult(f"{step}: the result lacks {', '.join(missing)}")
    return result


def _reason(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('Error', 'Error')}: {error.get('Cause', '')}"[:2000]
    return str(error or "unknown")[:2000]


def _tenant_of(event: dict[str, Any]) -> str:
    request = event.get("request")
    return str(
        event.get("tenant_id") or (request.get("tenant_id") if isinstance(request, dict) else "") or ""
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    """Run one step."""
    step = str(event.get("step"))
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}")
    tenant_id = _tenant_of(event)
    logger.append_keys(tenant_id=tenant_id, step=step)
    flow = "offboarding" if step in ("begin_offboarding", "offboard") else "onboarding"
    services.faults().check(flow, tenant_id, step)
    try:
        result = _checked(step, STEPS[step](event))
    except (ValidationFailed, Conflict):
        if step in ("validate", "register"):
            record_metric("OnboardingOutcome", outcome="rejected")
        raise
    except Exception as exc:
        if is_transient(exc) or type(exc).__name__ == "OperationalError":
            raise TransientError(f"{step}: {exc}") from exc
        raise
    logger.info("step done", extra={"outcome": "ok"})
    if step in OUTCOME_OF_STEP and (step != "compensate" or result.get("compensated")):
        _record_outcome(tenant_id, OUTCOME_OF_STEP[step])
    return result


def _record_outcome(tenant_id: str, outcome: str) -> None:
    """Onboarding outcome and duration (registration to the last step) as metrics."""
    record_metric("OnboardingOutcome", outcome=outcome)
    seconds = services.provisioner().seconds_since_registered(tenant_id)
    if seconds is not None:
        record_metric("OnboardingDuration", seconds, MetricUnit.Seconds, outcome=outcome)
    logger.info("onboarding finished", extra={"outcome": outcome, "seconds": seconds})
