"""Where the local cloud plugs into moto (running in this process).

- Lambda ``Invoke`` (from boto3 clients, Step Functions tasks and anything else) runs the
  function in :class:`~localcloud.lambdas.LambdaRuntime` instead of moto's Docker path.
- EventBridge rules hand their ``lambda`` and ``states`` targets to
  :class:`~localcloud.eventbridge.EventDelivery`; other targets (SQS, logs, buses) stay moto's.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from localcloud.eventbridge import EventDelivery
from localcloud.lambdas import LambdaRuntime

_OURS = ("lambda", "states")


def install(runtime: LambdaRuntime, delivery: EventDelivery) -> None:
    """Patch moto's Lambda invoke and EventBridge rule delivery (idempotent per process)."""
    from moto.awslambda.models import LambdaFunction
    from moto.events.models import Rule

    def invoke(self: Any, body: str, request_headers: Any, response_headers: dict[str, str]) -> bytes:
        event = json.loads(body) if body else {}
        headers = {k.lower(): v for k, v in dict(request_headers).items()}
        if headers.get("x-amz-invocation-type") == "Event":
            runtime.invoke_async(self.function_arn, event)
            return b""
        if headers.get("x-amz-invocation-type") == "DryRun":
            return b""
        result = runtime.invoke(self.function_arn, event)
        if result.failed:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(result.error).encode()
        return json.dumps(result.payload).encode()

    original_send = getattr(Rule, "_localcloud_original_send", Rule.send_to_targets)

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if getattr(self, "state", "ENABLED") != "ENABLED":
            return
        if not self.event_pattern.matches_event(original_event):
            return
        theirs = []
        for target in self.targets:
            if target["Arn"].split(":")[2] in _OURS:
                delivery.submit(self.arn, target, original_event)
            else:
                theirs.append(target)
        if theirs:
            clone = copy.copy(self)
            clone.targets = theirs
            original_send(clone, original_event, transform_input)

    LambdaFunction.invoke = invoke
    Rule._localcloud_original_send = original_send
    Rule.send_to_targets = send_to_targets


def enable_step_functions_execution(aws_endpoint: str) -> None:
    """Turn on moto's ASL interpreter (before any state machine is created)."""
    import requests

    requests.post(
        f"{aws_endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()
