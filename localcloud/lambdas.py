"""Lambda functions of the template, run as warm local workers (no Docker).

Each function gets a pool of worker processes (:mod:`localcloud.worker`), each one a Lambda
execution environment: the template's handler, its layers on the path, its environment variables
and nothing else of the local cloud's. A worker is reused while warm; a concurrent invocation gets
another one, up to the function's concurrency. A timed-out invocation kills its worker, as Lambda
does.

As Lambda's own front end does, an invocation is refused before it runs:

- a synchronous one over the function's reserved concurrency: 429 ``TooManyRequestsException``
  (Reason ``ReservedFunctionConcurrentInvocationLimitExceeded``), at once -- never queued. A
  function without reserved concurrency waits for one of the machine's
  :data:`DEFAULT_CONCURRENCY` workers (the account's 1000 cannot run here);
- a request over 6 MB synchronous (1 MB asynchronous): 413 ``RequestEntityTooLargeException``;

and a synchronous response over 6 MB fails the invocation with ``Function.ResponseSizeTooLarge``.
An asynchronous invocation (InvocationType Event, EventBridge, schedules) goes to the function's
queue (:class:`AsyncQueue`): a throttled one waits and is tried again, with back-off, for as long
as the event may age; a function error is retried ``MaximumRetryAttempts`` times (2 by default,
after about 1 and 2 minutes on AWS, configurable here); an event given up on goes to the
EventInvokeConfig's on-failure destination as Lambda's invocation record, or is dropped.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import heapq
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger("localcloud.lambda")

# Variables a Lambda environment gets from the runtime, besides the template's.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
DEFAULT_CONCURRENCY = 8
INIT_TIMEOUT_SECONDS = 60.0
# Lambda's quotas (the error messages name these byte counts, 100 more than 6 MiB).
SYNC_PAYLOAD_LIMIT = 6_291_556
ASYNC_PAYLOAD_LIMIT = 1_048_576
# Lambda's defaults for asynchronous invocations without an EventInvokeConfig.
DEFAULT_ASYNC_RETRIES = 2
DEFAULT_ASYNC_MAX_AGE = 21_600


class InvocationType(StrEnum):
    """Lambda's InvocationType values."""

    REQUEST_RESPONSE = "RequestResponse"
    EVENT = "Event"
    DRY_RUN = "DryRun"


class RefusalCode(StrEnum):
    """Errors of the Invoke API itself: the function did not run."""

    THROTTLED = "TooManyRequestsException"
    TOO_LARGE = "RequestEntityTooLargeException"


class FailureCondition(StrEnum):
    """``requestContext.condition`` of Lambda's record of an asynchronous invocation given up on."""

    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"


@dataclass(frozen=True)
class InvokeRefusal:
    """An Invoke call Lambda refused (HTTP status, error code, message, and a throttle's reason)."""

    status: int
    code: RefusalCode
    message: str
    reason: str | None = None

    def body(self) -> dict[str, Any]:
        """The error body Lambda answers with (``Type`` User, as for a caller's error)."""
        body: dict[str, Any] = {"Type": "User", "message": self.message}
        if self.reason:
            body["Reason"] = self.reason
        return body


def payload_size(event: Any) -> int:
    """Bytes of ``event`` as Lambda receives it (compact JSON, UTF-8)."""
    return len(json.dumps(event, separators=(",", ":"), default=str).encode())


def too_large(size: int, invocation: InvocationType) -> InvokeRefusal | None:
    """The refusal of a request of ``size`` bytes, or None when Lambda takes it."""
    limit = ASYNC_PAYLOAD_LIMIT if invocation is InvocationType.EVENT else SYNC_PAYLOAD_LIMIT
    if size <= limit:
        return None
    operation = "Invoke" if invocation is not InvocationType.EVENT else "Invoke (asynchronous)"
    return InvokeRefusal(
        413,
        RefusalCode.TOO_LARGE,
        f"Request must be smaller than {limit} bytes for the {operation} operation",
    )


@dataclass(frozen=True)
class AsyncConfig:
    """A function's EventInvokeConfig: retries, event age and the on-failure destination ARN."""

    maximum_retry_attempts: int = DEFAULT_ASYNC_RETRIES
    maximum_event_age_seconds: int = DEFAULT_ASYNC_MAX_AGE
    on_failure: str | None = None


@dataclass(frozen=True)
class AsyncTiming:
    """How long the asynchronous queue waits: before each retry of a function error (AWS: about
    1 and 2 minutes), and between tries of a throttled event (doubling from ``throttle_base`` to
    ``throttle_cap``). Tests shorten them; the semantics stay."""

    retry_delays: tuple[float, ...] = (60.0, 120.0)
    throttle_base: float = 1.0
    throttle_cap: float = 300.0

    def retry_delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1-based) of a function error."""
        return self.retry_delays[min(retry, len(self.retry_delays)) - 1] if self.retry_delays else 0.0


@dataclass(frozen=True)
class FunctionSpec:
    """What the template says about one function, resolved."""

    logical_id: str
    name: str
    arn: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: Mapping[str, str]
    timeout: int = 3
    memory_mb: int = 128
    reserved_concurrency: int | None = None


@dataclass
class InvokeResult:
    """The outcome of one invocation: a payload, or a function error (Lambda's error shape)."""

    payload: Any = None
    error: dict[str, Any] | None = None
    aws_calls: int = 0  # AWS API calls the function made during this invocation
    # Set when Lambda refused the call (throttled, too large): the function did not run.
    refusal: InvokeRefusal | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def throttled(self) -> bool:
        return self.refusal is not None and self.refusal.code is RefusalCode.THROTTLED

    @classmethod
    def refused(cls, refusal: InvokeRefusal) -> InvokeResult:
        """The result of a call Lambda refused (``error`` in the shape a caller logs)."""
        return cls(error={"errorType": str(refusal.code), "errorMessage": refusal.message}, refusal=refusal)


_ROOT = Path(__file__).resolve().parent.parent


def function_environment(spec: FunctionSpec, base_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of the function's execution environment (and nothing of ours)."""
    env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
    env.update(base_env)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"localcloud/{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "LOCALCLOUD_FUNCTION_ARN": spec.arn,
            "LOCALCLOUD_LAYER_PATHS": os.pathsep.join(str(p) for p in spec.layer_dirs),
            "_HANDLER": spec.handler,
            # Each function calls AWS with its own access key, so the AWS calls the local cloud
            # counts (GET /__localcloud/stats) are billed to the function that made them.
            "AWS_ACCESS_KEY_ID": f"{base_env.get('AWS_ACCESS_KEY_ID', 'localcloud')}-{spec.logical_id}",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(spec.environment)
    return env


class _Worker:
    """One execution environment: a child process and the pipe its results come back on."""

    def __init__(self, spec: FunctionSpec, base_env: Mapping[str, str]) -> None:
        self.spec = spec
        read_fd, write_fd = os.pipe()
        env = function_environment(spec, base_env)
        env["LOCALCLOUD_RESULT_FD"] = str(write_fd)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localcloud.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(_ROOT),
            pass_fds=(write_fd,),
            text=True,
            start_new_session=False,
        )
        os.close(write_fd)
        self._results = read_fd
        self._buffer = b""
        self._initialised = False
        threading.Thread(target=self._forward_logs, daemon=True).start()

    def _forward_logs(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        for line in stream:
            sys.stdout.write(f"[{self.spec.logical_id}] {line}")
        sys.stdout.flush()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _read_line(self, deadline: float) -> dict[str, Any] | None:
        """The worker's next reply line, or None when ``deadline`` passes first."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.time()
            ready, _, _ = select.select([self._results], [], [], max(0.0, remaining))
            if not ready:
                return None
            chunk = os.read(self._results, 1 << 20)
            if not chunk:
                return {
                    "ok": False,
                    "error": {
                        "errorType": "Runtime.ExitError",
                        "errorMessage": "the execution environment exited",
                    },
                }
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)  # type: ignore[no-any-return]

    def invoke(self, event: Any, request_id: str, timeout: float) -> dict[str, Any]:
        # As in Lambda, the init phase (imports, module-level set-up) is not part of the function
        # timeout; it has its own, generous here because a loaded test machine starts slowly.
        if not self._initialised:
            announced = self._read_line(time.time() + INIT_TIMEOUT_SECONDS)
            if announced is None or not announced.get("ready"):
                self.kill()
                return (
                    announced
                    if announced is not None and "error" in announced
                    else {
                        "ok": False,
                        "error": {
                            "errorType": "Runtime.InitTimeout",
                            "errorMessage": f"init did not finish in {INIT_TIMEOUT_SECONDS} seconds",
                        },
                    }
                )
            self._initialised = True
        deadline = time.time() + timeout
        assert self.process.stdin is not None
        self.process.stdin.write(
            json.dumps({"event": event, "request_id": request_id, "deadline": deadline}) + "\n"
        )
        self.process.stdin.flush()
        reply = self._read_line(deadline)
        if reply is None:
            self.kill()
            return {
                "ok": False,
                "error": {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {timeout:.2f} seconds",
                },
            }
        if not reply.get("ok") and (reply.get("error") or {}).get("errorType") == "Runtime.ExitError":
            self.kill()
        return reply

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("worker of %s did not exit", self.spec.logical_id)
        for stream in (self.process.stdin,):
            if stream is not None and not stream.closed:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(OSError):
            os.close(self._results)

    def close_input(self) -> None:
        """Close stdin: the worker's loop ends and it exits."""
        try:
            if self.process.stdin is not None and not self.process.stdin.closed:
                self.process.stdin.close()
        except OSError:
            pass

    def stop(self) -> None:
        """Close stdin (the worker's loop ends) and wait briefly; kill if it lingers."""
        try:
            self.close_input()
            self.process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


@dataclass
class _Pool:
    spec: FunctionSpec
    base_env: Mapping[str, str]
    idle: list[_Worker] = field(default_factory=list)
    busy: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def reserved(self) -> bool:
        return self.spec.reserved_concurrency is not None

    @property
    def limit(self) -> int:
        reserved = self.spec.reserved_concurrency
        return DEFAULT_CONCURRENCY if reserved is None else reserved

    def acquire(self) -> _Worker | None:
        """A worker for one invocation; None (throttled) when the function's reserved concurrency
        is in use. Without reserved concurrency, wait for one of this machine's workers."""
        with self.lock:
            while self.busy >= self.limit:
                if self.reserved:
                    return None
                self.lock.wait()
            self.busy += 1
            while self.idle:
                worker = self.idle.pop()
                if worker.alive:
                    return worker
        try:
            return _Worker(self.spec, self.base_env)
        except Exception:
            with self.lock:
                self.busy -= 1
                self.lock.notify()
            raise

    def release(self, worker: _Worker) -> None:
        with self.lock:
            self.busy -= 1
            if worker.alive:
                self.idle.append(worker)
            self.lock.notify()

    def close(self) -> list[_Worker]:
        """Hand over the idle workers (the runtime stops them all together)."""
        with self.lock:
            workers, self.idle = self.idle, []
        return workers


@dataclass(eq=False)  # one event is itself, however alike two may be
class _Queued:
    """One asynchronous invocation in the queue."""

    function_arn: str
    event: Any
    request_id: str
    queued_at: float
    invokes: int = 0  # times the function ran with it
    retries: int = 0  # retries after function errors
    throttles: int = 0
    last_error: dict[str, Any] | None = None
    # Bumped each time the event is scheduled: a timer of an earlier scheduling is stale.
    generation: int = 0


class AsyncQueue:
    """Lambda's queue of asynchronous invocations, per function (see the module's docstring).

    A scheduler thread hands each event to the pool when it is due, so an event waiting out a
    retry delay or a throttle holds no thread. A throttled event waits for the function to have
    capacity: it is tried again as soon as one of its invocations ends (first in, first out), or
    after its back-off, whichever comes first -- the back-off also ages it out when the function
    never has capacity (reserved concurrency 0).
    """

    def __init__(self, runtime: LambdaRuntime, timing: AsyncTiming) -> None:
        self._runtime = runtime
        self.timing = timing
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="lambda-async")
        self._due: list[tuple[float, int, int, _Queued]] = []
        self._sequence = 0
        self._throttled: dict[str, collections.deque[_Queued]] = {}
        self._wake = threading.Condition()
        self._stopping = False
        threading.Thread(target=self._schedule, daemon=True, name="lambda-async-scheduler").start()

    def put(self, function_arn: str, event: Any) -> None:
        """Queue ``event`` for the function (now)."""
        self._at(time.time(), _Queued(function_arn, copy.deepcopy(event), str(uuid.uuid4()), time.time()))

    def _at(self, when: float, item: _Queued) -> None:
        with self._wake:
            if self._stopping:
                return
            self._sequence += 1
            item.generation += 1
            heapq.heappush(self._due, (when, self._sequence, item.generation, item))
            self._wake.notify()

    def capacity(self, function_arn: str) -> None:
        """An invocation of the function ended: its longest-throttled event is tried now."""
        with self._wake:
            waiting = self._throttled.get(function_arn)
            item = waiting.popleft() if waiting else None
        if item is not None:
            self._at(time.time(), item)

    def _schedule(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (not self._due or self._due[0][0] > time.time()):
                    self._wake.wait(None if not self._due else max(0.0, self._due[0][0] - time.time()))
                if self._stopping:
                    return
                _, _, generation, item = heapq.heappop(self._due)
                if generation != item.generation:
                    continue  # scheduled again since (a throttled event woken by capacity)
                waiting = self._throttled.get(item.function_arn)
                if waiting and item in waiting:
                    waiting.remove(item)
            try:
                self._pool.submit(self._attempt, item)
            except RuntimeError:  # shut down meanwhile
                return

    def _attempt(self, item: _Queued) -> None:
        config = self._runtime.async_config(item.function_arn)
        if time.time() - item.queued_at > config.maximum_event_age_seconds:
            self._give_up(item, config, FailureCondition.EVENT_AGE_EXCEEDED)
            return
        result = self._runtime._run(self._runtime._pool(item.function_arn), item.event)
        if result.throttled:
            # Throttles do not count as retries: Lambda keeps trying while the event may age.
            item.throttles += 1
            delay = min(self.timing.throttle_cap, self.timing.throttle_base * 2 ** (item.throttles - 1))
            with self._wake:
                self._throttled.setdefault(item.function_arn, collections.deque()).append(item)
            self._at(time.time() + delay, item)
            return
        item.invokes += 1
        if not result.failed:
            return
        item.last_error = result.error
        log.warning(
            "async invocation of %s failed (invoke %d): %s", item.function_arn, item.invokes, result.error
        )
        if item.retries >= config.maximum_retry_attempts:
            self._give_up(item, config, FailureCondition.RETRIES_EXHAUSTED)
            return
        item.retries += 1
        due = time.time() + self.timing.retry_delay(item.retries)
        if due - item.queued_at > config.maximum_event_age_seconds:
            self._give_up(item, config, FailureCondition.EVENT_AGE_EXCEEDED)
            return
        self._at(due, item)

    def record(self, item: _Queued, condition: FailureCondition) -> dict[str, Any]:
        """Lambda's invocation record of an event it gave up on (what a destination receives)."""
        now = datetime.now(UTC)
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "requestContext": {
                "requestId": item.request_id,
                "functionArn": f"{item.function_arn}:$LATEST",
                "condition": str(condition),
                "approximateInvokeCount": item.invokes,
            },
            "requestPayload": item.event,
        }
        if item.invokes:
            record["responseContext"] = {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            }
            record["responsePayload"] = item.last_error
        return record

    def _give_up(self, item: _Queued, config: AsyncConfig, condition: FailureCondition) -> None:
        if config.on_failure is None:
            # As on AWS: with no destination (or dead-letter queue) the event is gone.
            log.error(
                "async invocation of %s dropped (%s): no on-failure destination", item.function_arn, condition
            )
            return
        try:
            self._runtime.send_to_destination(
                item.function_arn, config.on_failure, self.record(item, condition)
            )
        except Exception:
            log.exception("async invocation of %s: the on-failure destination refused it", item.function_arn)
            return
        log.error("async invocation of %s sent to %s (%s)", item.function_arn, config.on_failure, condition)

    def close(self) -> None:
        """Stop: queued events are dropped (the local cloud is going away)."""
        with self._wake:
            self._stopping = True
            self._due.clear()
            self._throttled.clear()
            self._wake.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)


class LambdaRuntime:
    """Every function of the template, invocable by name or ARN."""

    def __init__(self, base_env: Mapping[str, str], timing: AsyncTiming | None = None) -> None:
        self._base_env = dict(base_env)
        self._pools: dict[str, _Pool] = {}
        self._by_name: dict[str, str] = {}
        self._async_configs: dict[str, AsyncConfig] = {}
        self._clients: Callable[[str, FunctionSpec], Any] | None = None
        self._queue = AsyncQueue(self, timing or AsyncTiming())

    def register(self, spec: FunctionSpec) -> None:
        """Make ``spec`` invocable (its workers start on first use)."""
        self._pools[spec.arn] = _Pool(spec, self._base_env)
        self._by_name[spec.name] = spec.arn
        self._by_name[spec.logical_id] = spec.arn

    def spec(self, name_or_arn: str) -> FunctionSpec:
        """The function named by a name, logical id, ARN or qualified ARN."""
        return self._pool(name_or_arn).spec

    def _pool(self, name_or_arn: str) -> _Pool:
        key = name_or_arn
        if key.startswith("arn:") and key.count(":") > 6:
            key = key.rsplit(":", 1)[0]  # drop a qualifier such as :$LATEST
        arn = key if key in self._pools else self._by_name.get(key)
        if arn is None:
            raise KeyError(f"no function {name_or_arn!r}")
        return self._pools[arn]

    def run_module(
        self, name_or_arn: str, argv: list[str], timeout: float = 120, as_operator: bool = False
    ) -> str:
        """``python -m argv[0] argv[1:]`` with the function's environment and layers; its stdout.

        ``as_operator``: signed with the local cloud's own key (an operator's command, such as the
        first admin's bootstrap, run with the function's settings), not the function's: IAM
        authorizes it as an administrator's, not as the function's role."""
        spec = self.spec(name_or_arn)
        env = function_environment(spec, self._base_env)
        if as_operator:
            env["AWS_ACCESS_KEY_ID"] = self._base_env.get("AWS_ACCESS_KEY_ID", "localcloud")
        env["PYTHONPATH"] = os.pathsep.join([str(spec.code_dir), *(str(p) for p in spec.layer_dirs)])
        done = subprocess.run(  # noqa: S603 - our own interpreter and a module the template names
            [sys.executable, "-m", *argv],
            env=env,
            cwd=str(_ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout

    def invoke(self, name_or_arn: str, event: Any) -> InvokeResult:
        """Invoke synchronously (RequestResponse), or be refused as Lambda refuses (throttled over
        reserved concurrency, a request over 6 MB)."""
        pool = self._pool(name_or_arn)
        refusal = too_large(payload_size(event), InvocationType.REQUEST_RESPONSE)
        if refusal is not None:
            return InvokeResult.refused(refusal)
        return self._run(pool, event)

    def _run(self, pool: _Pool, event: Any) -> InvokeResult:
        request_id = str(uuid.uuid4())
        worker = pool.acquire()
        if worker is None:
            return InvokeResult.refused(
                InvokeRefusal(
                    429,
                    RefusalCode.THROTTLED,
                    "Rate Exceeded.",
                    reason="ReservedFunctionConcurrentInvocationLimitExceeded",
                )
            )
        try:
            reply = worker.invoke(event, request_id, pool.spec.timeout)
        finally:
            pool.release(worker)
            if pool.reserved:
                self._queue.capacity(pool.spec.arn)
        calls = int(reply.get("aws_calls", 0))
        if reply.get("ok"):
            if reply.get("size", 0) > SYNC_PAYLOAD_LIMIT:
                # Lambda answers 200 with a function error: the function ran, its answer is lost.
                error = {
                    "errorMessage": "Response payload size exceeded maximum allowed payload size "
                    f"({SYNC_PAYLOAD_LIMIT} bytes).",
                    "errorType": "Function.ResponseSizeTooLarge",
                }
                return InvokeResult(error=error, aws_calls=calls)
            return InvokeResult(payload=reply.get("result"), aws_calls=calls)
        error = reply.get("error") or {"errorType": "Unknown"}
        return InvokeResult(error=error, aws_calls=calls)

    def use_clients(self, factory: Callable[[str, FunctionSpec], Any]) -> None:
        """How to get a boto3 client that calls AWS as a function's role (for its destinations)."""
        self._clients = factory

    def send_to_destination(self, function_arn: str, destination: str, record: dict[str, Any]) -> None:
        """Hand Lambda's invocation ``record`` to ``destination`` (SQS, SNS, Lambda or a bus), as
        the function's execution role: the role must allow it, as on AWS."""
        if self._clients is None:
            raise RuntimeError("no AWS clients for destinations")
        spec = self.spec(function_arn)
        service = destination.split(":")[2]
        body = json.dumps(record)
        if service == "sqs":
            _, _, _, _region, account, name = destination.split(":", 5)
            sqs = self._clients("sqs", spec)
            # Lambda sends by ARN (sqs:SendMessage only); the local endpoint's URL of the queue
            url = f"{sqs.meta.endpoint_url}/{account}/{name}"
            sqs.send_message(QueueUrl=url, MessageBody=body)
        elif service == "sns":
            self._clients("sns", spec).publish(TopicArn=destination, Message=body)
        elif service == "lambda":
            self.invoke_async(destination, record)
        elif service == "events":
            self._clients("events", spec).put_events(
                Entries=[
                    {
                        "Source": "lambda",
                        "DetailType": "Lambda Function Invocation Result - Failure",
                        "Detail": body,
                        "EventBusName": destination,
                    }
                ]
            )
        else:
            raise ValueError(f"unsupported destination {destination}")

    def configure_async(self, name_or_arn: str, config: AsyncConfig) -> None:
        """Apply a function's EventInvokeConfig (retries, event age, on-failure destination)."""
        self._async_configs[self._pool(name_or_arn).spec.arn] = config

    def async_config(self, name_or_arn: str) -> AsyncConfig:
        """The function's EventInvokeConfig, or Lambda's defaults."""
        return self._async_configs.get(self._pool(name_or_arn).spec.arn, AsyncConfig())

    def invoke_async(self, name_or_arn: str, event: Any) -> InvokeRefusal | None:
        """Queue an asynchronous invocation (InvocationType Event), as Lambda's 202 does; the
        refusal instead when Lambda would refuse it (over 1 MB)."""
        pool = self._pool(name_or_arn)  # fail now for an unknown function
        refusal = too_large(payload_size(event), InvocationType.EVENT)
        if refusal is not None:
            return refusal
        self._queue.put(pool.spec.arn, event)
        return None

    def close(self) -> None:
        """Stop every worker: all are told at once (stdin closed), then awaited."""
        self._queue.close()
        workers = [w for pool in self._pools.values() for w in pool.close()]
        for worker in workers:
            worker.close_input()
        for worker in workers:
            worker.stop()
