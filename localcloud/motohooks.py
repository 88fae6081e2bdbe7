"""Where the local cloud plugs into moto (running in this process).

- Lambda ``Invoke`` (from boto3 clients, Step Functions tasks and anything else) runs the
  function in :class:`~localcloud.lambdas.LambdaRuntime` instead of moto's Docker path.
- EventBridge rules hand their ``lambda`` and ``states`` targets to
  :class:`~localcloud.eventbridge.EventDelivery`; other targets (SQS, logs, buses) stay moto's,
  and a DISABLED rule delivers nothing (moto ignores the state).
- Step Functions executions started without a name get a UUID, as in AWS (moto's interpreter
  names them "None", so a second unnamed execution would clash).
- DynamoDB writes are serialised: moto's TransactWriteItems deep-copies a table for rollback and
  fails when another thread writes to it meanwhile (real DynamoDB has no such limit).
"""

from __future__ import annotations

import copy
import importlib
import json
import threading
import uuid
from typing import Any

import requests

from localcloud.eventbridge import EventDelivery
from localcloud.lambdas import LambdaRuntime

_OURS = ("lambda", "states")


def _moto_class(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _patch(cls: Any, attribute: str, make: Any) -> None:
    """Replace ``cls.attribute`` by ``make(original)``, once per process (re-installs rebind)."""
    marker = f"_localcloud_original_{attribute}"
    original = getattr(cls, marker, None) or getattr(cls, attribute)
    setattr(cls, marker, original)
    setattr(cls, attribute, make(original))


_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_dynamodb_lock = threading.RLock()


def serialize_dynamodb_writes() -> None:
    """Run moto's DynamoDB writes one at a time (idempotent)."""

    def make_locked(original: Any) -> Any:
        def locked(*args: Any, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return original(*args, **kwargs)

        return locked

    backend = _moto_class("moto.dynamodb.models", "DynamoDBBackend")
    for name in _DYNAMODB_WRITES:
        _patch(backend, name, make_locked)


def install(runtime: LambdaRuntime, delivery: EventDelivery) -> None:
    """Patch moto's Lambda invoke, EventBridge rule delivery and unnamed executions."""

    def make_invoke(_original: Any) -> Any:
        def invoke(self: Any, body: str, request_headers: Any, response_headers: dict[str, str]) -> bytes:
            event = json.loads(body) if body else {}
            headers = {k.lower(): v for k, v in dict(request_headers).items()}
            invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
            if invocation_type == "Event":
                runtime.invoke_async(self.function_arn, event)
                return b""
            if invocation_type == "DryRun":
                return b""
            result = runtime.invoke(self.function_arn, event)
            if result.failed:
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(result.error).encode()
            return json.dumps(result.payload).encode()

        return invoke

    def make_send(original: Any) -> Any:
        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
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
                original(clone, original_event, transform_input)

        return send_to_targets

    def make_start(original: Any) -> Any:
        def start_execution(
            self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any
        ) -> Any:
            return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

        return start_execution

    serialize_dynamodb_writes()
    _patch(_moto_class("moto.awslambda.models", "LambdaFunction"), "invoke", make_invoke)
    _patch(_moto_class("moto.events.models", "Rule"), "send_to_targets", make_send)
    _patch(
        _moto_class("moto.stepfunctions.parser.models", "StepFunctionsParserBackend"),
        "start_execution",
        make_start,
    )


def enable_step_functions_execution(aws_endpoint: str) -> None:
    """Turn on moto's ASL interpreter (before any state machine is created)."""
    requests.post(
        f"{aws_endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()
