"""EventBridge delivery to Lambda, Step Functions, SNS and SQS targets, as EventBridge does it.

moto matches events against rules; we take over delivery for ``lambda``, ``states``, ``sns`` and
``sqs`` targets:
asynchronously, with the target's input (Input, InputPath, InputTransformer), its RetryPolicy
(MaximumRetryAttempts, MaximumEventAgeInSeconds; exponential back-off) and, when delivery gives
up, its DeadLetterConfig queue with EventBridge's message attributes. As on AWS, a Lambda target is
invoked asynchronously: delivery succeeds once Lambda queued the event, and a function error is
Lambda's to retry (the function's EventInvokeConfig, :mod:`localcloud.lambdas`) -- the rule's
retry policy and dead-letter queue see only what Lambda refused. An SQS target is sent to as
EventBridge's service principal, under the queue's policy and key (:mod:`localcloud.sqs_targets`);
a refusal for missing permissions or a missing queue goes to the dead-letter queue without
retries, as EventBridge's guide says. Scheduled rules with
``rate(...)`` expressions are fired by a timer.

EventBridge delivers at least once: with ``duplicates`` (or the control file
:data:`DUPLICATES_FILE` in the state directory, read per event, so a test can turn it on and
off) each event reaches each target that many extra times, at once, as a duplicate delivery on
AWS would.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localcloud.iam.evaluator import PolicyEvaluator
from localcloud.lambdas import LambdaRuntime
from localcloud.sqs_targets import QueueRefusal, QueueSender
from localcloud.topickeys import EVENTBRIDGE_PRINCIPAL, publish_refusal

log = logging.getLogger("localcloud.events")

DEFAULT_MAX_ATTEMPTS = 185
DEFAULT_MAX_AGE = 86400
# In the state directory: the number of extra deliveries of every event (absent: ``duplicates``).
DUPLICATES_FILE = "duplicate-deliveries"


def _iso(value: Any) -> str:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def normalise_event(event: dict[str, Any]) -> dict[str, Any]:
    """moto's event as EventBridge sends it (ISO time, no moto-internal keys)."""
    out = {k: v for k, v in event.items() if k != "ingestion-time"}
    out["time"] = _iso(out.get("time", time.time()))
    out.setdefault("version", "0")
    return out


def _input_path(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in [p for p in re.split(r"\.", path.removeprefix("$")) if p]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What a target receives for ``event``."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return _input_path(event, target["InputPath"])
    if "InputTransformer" in target:
        parser: Any = importlib.import_module("moto.events.models").EventTemplateParser
        transformer = target["InputTransformer"]
        # moto's parser reads the event's ingestion time, which EventBridge hands no target
        stamped = {"ingestion-time": time.time(), **event}
        return parser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=stamped,
        )
    return event


class EventDelivery:
    """Delivers matched events to Lambda, Step Functions, SNS and SQS targets.

    ``evaluator``: the IAM evaluator for the SQS targets' queue and key policies (without one, the
    first SQS delivery starts one of its own)."""

    def __init__(
        self,
        runtime: LambdaRuntime,
        clients: Callable[[str], Any],
        retry_base_seconds: float = 1.0,
        retry_cap_seconds: float = 60.0,
        duplicates: int = 0,
        state_dir: Path | None = None,
        evaluator: PolicyEvaluator | None = None,
    ) -> None:
        self.runtime = runtime
        self._client = clients
        self._queues = QueueSender(clients, evaluator)
        self.retry_base = retry_base_seconds
        self.retry_cap = retry_cap_seconds
        self.duplicates = duplicates
        self._duplicates_file = state_dir / DUPLICATES_FILE if state_dir is not None else None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eventbridge")
        self._stopping = threading.Event()
        self._timers: list[threading.Thread] = []

    # ------------------------------------------------------------------ delivery
    def submit(self, rule_arn: str, target: dict[str, Any], event: dict[str, Any]) -> None:
        """Deliver ``event`` to ``target`` in the background."""
        if self._stopping.is_set():
            return
        normalised = normalise_event(event)
        for _copy in range(1 + self.extra_deliveries()):
            self._pool.submit(self._deliver, rule_arn, copy.deepcopy(target), copy.deepcopy(normalised))

    def extra_deliveries(self) -> int:
        """How many times each event is delivered again (the control file wins when present)."""
        if self._duplicates_file is not None:
            try:
                return max(0, int(self._duplicates_file.read_text().strip() or "0"))
            except FileNotFoundError:
                pass
            except ValueError:
                log.warning("%s does not hold a number; delivering once", self._duplicates_file)
                return 0
        return self.duplicates

    def _send(self, rule_arn: str, target: dict[str, Any], payload: Any) -> None:
        arn: str = target["Arn"]
        service = arn.split(":")[2]
        if service == "lambda":
            # Asynchronous, as EventBridge invokes Lambda: delivered once Lambda queued it.
            refused = self.runtime.invoke_async(arn, payload)
            if refused is not None:
                raise DeliveryError(str(refused.code), refused.message)
        elif service == "states":
            self._client("stepfunctions").start_execution(stateMachineArn=arn, input=json.dumps(payload))
        elif service == "sns":
            refusal = publish_refusal(self._client("kms"), self._client("sns"), arn, EVENTBRIDGE_PRINCIPAL)
            if refusal:  # AWS retries, then dead-letters the event: KMS refuses EventBridge
                raise DeliveryError("KMS.AccessDeniedException", refusal)
            self._client("sns").publish(TopicArn=arn, Message=json.dumps(payload))
        elif service == "sqs":
            # the body EventBridge sends: a constant Input as written, anything else compact JSON
            body = target["Input"] if "Input" in target else json.dumps(payload, separators=(",", ":"))
            try:
                self._queues.send(rule_arn, target, body)
            except QueueRefusal as refused:
                raise DeliveryError(refused.code, refused.message, retriable=refused.retriable) from refused
        else:  # pragma: no cover - only the targets of motohooks._OURS are routed here
            raise DeliveryError("UnsupportedTarget", arn)

    def _deliver(self, rule_arn: str, target: dict[str, Any], event: dict[str, Any]) -> None:
        policy = target.get("RetryPolicy") or {}
        max_attempts = 1 + int(policy.get("MaximumRetryAttempts", DEFAULT_MAX_ATTEMPTS))
        max_age = float(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE))
        started = time.time()
        attempt = 0
        error = DeliveryError("NotAttempted", "")
        while attempt < max_attempts and not self._stopping.is_set():
            attempt += 1
            try:
                self._send(rule_arn, target, target_input(target, event))
            except Exception as exc:
                error = exc if isinstance(exc, DeliveryError) else DeliveryError(type(exc).__name__, str(exc))
                log.warning("delivery to %s failed (attempt %d): %s", target["Arn"], attempt, error)
            else:
                return
            if not error.retriable:  # EventBridge dead-letters these at once
                break
            delay = min(self.retry_cap, self.retry_base * 2 ** (attempt - 1))
            if attempt >= max_attempts or time.time() + delay - started > max_age:
                break
            self._stopping.wait(delay)
        self._dead_letter(rule_arn, target, event, error, attempt - 1)

    def _dead_letter(
        self, rule_arn: str, target: dict[str, Any], event: dict[str, Any], error: DeliveryError, retries: int
    ) -> None:
        dlq_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
        if not dlq_arn:
            log.error("event %s to %s dropped: no dead-letter queue", event.get("id"), target["Arn"])
            return
        _, _, _, _region, account, name = dlq_arn.split(":", 5)
        sqs = self._client("sqs")
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]

        def attribute(value: str) -> dict[str, str]:
            return {"DataType": "String", "StringValue": value or "-"}

        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps(event),
            MessageAttributes={
                "ERROR_CODE": attribute(error.code),
                "ERROR_MESSAGE": attribute(error.message[:1000]),
                "RULE_ARN": attribute(rule_arn),
                "TARGET_ARN": attribute(target["Arn"]),
                "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": str(retries)},
            },
        )
        log.error("event %s to %s sent to dead-letter queue %s", event.get("id"), target["Arn"], name)

    # ------------------------------------------------------------------ schedules
    def schedule(self, rule_arn: str, expression: str, fire: Callable[[], None]) -> None:
        """Fire a ``rate(N unit)`` rule every period until stopped (cron is not emulated). A rate
        EventBridge refuses (``rate(1 minutes)``, ``rate(5 minute)``, ``rate(0 hours)``) is
        refused here too (``ValueError``: the stack does not come up, as PutRule fails)."""
        if expression.strip().startswith("cron("):
            log.warning("schedule %s of %s is not emulated (only rate(...))", expression, rule_arn)
            return
        period = rate_seconds(expression)

        def loop() -> None:
            while not self._stopping.wait(period):
                fire()

        thread = threading.Thread(target=loop, daemon=True, name=f"schedule-{rule_arn}")
        thread.start()
        self._timers.append(thread)

    def close(self) -> None:
        """Stop retries and timers."""
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._queues.close()


class DeliveryError(Exception):
    """A failed delivery: EventBridge's error code and message, and whether it retries."""

    def __init__(self, code: str, message: str, *, retriable: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retriable = retriable


def rate_seconds(expression: str) -> int:
    """The period of an EventBridge ``rate(value unit)`` expression, refused as EventBridge
    refuses it: a positive value, the unit singular for 1 and plural otherwise."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise ValueError(f"{expression!r} is not a valid rate expression")
    value, unit = int(match.group(1)), match.group(2)
    if value < 1 or (value == 1) != (not unit.endswith("s")):
        raise ValueError(f"{expression!r} is not a valid rate expression (rate(1 minute), rate(5 minutes))")
    return value * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
