"""Lambda functions of the template, run as warm local workers (no Docker).

Each function gets a pool of worker processes (:mod:`localcloud.worker`), each one a Lambda
execution environment: the template's handler, its layers on the path, its environment variables
and nothing else of the local cloud's. A worker is reused while warm; a concurrent invocation gets
another one, up to the function's concurrency. A timed-out invocation kills its worker, as Lambda
does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("localcloud.lambda")

# Variables a Lambda environment gets from the runtime, besides the template's.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
DEFAULT_CONCURRENCY = 8
INIT_TIMEOUT_SECONDS = 60.0


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

    @property
    def failed(self) -> bool:
        return self.error is not None


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
            # Like `sam local`: tells Powertools there is no X-Ray daemon to send traces to.
            "AWS_SAM_LOCAL": "true",
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
    def limit(self) -> int:
        return self.spec.reserved_concurrency or DEFAULT_CONCURRENCY

    def acquire(self) -> _Worker:
        with self.lock:
            while not self.idle and self.busy >= self.limit:
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


class LambdaRuntime:
    """Every function of the template, invocable by name or ARN."""

    def __init__(self, base_env: Mapping[str, str]) -> None:
        self._base_env = dict(base_env)
        self._pools: dict[str, _Pool] = {}
        self._by_name: dict[str, str] = {}
        self._async = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lambda-async")

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

    def run_module(self, name_or_arn: str, argv: list[str], timeout: float = 120) -> str:
        """``python -m argv[0] argv[1:]`` with the function's environment and layers; its stdout."""
        spec = self.spec(name_or_arn)
        env = function_environment(spec, self._base_env)
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
        """Invoke synchronously (RequestResponse)."""
        pool = self._pool(name_or_arn)
        request_id = str(uuid.uuid4())
        worker = pool.acquire()
        try:
            reply = worker.invoke(event, request_id, pool.spec.timeout)
        finally:
            pool.release(worker)
        calls = int(reply.get("aws_calls", 0))
        if reply.get("ok"):
            return InvokeResult(payload=reply.get("result"), aws_calls=calls)
        error = reply.get("error") or {"errorType": "Unknown"}
        return InvokeResult(error=error, aws_calls=calls)

    def invoke_async(self, name_or_arn: str, event: Any) -> None:
        """Invoke without waiting (InvocationType Event); a failure is logged."""
        self._pool(name_or_arn)  # fail now for an unknown function

        def run() -> None:
            result = self.invoke(name_or_arn, event)
            if result.failed:
                log.error("async invocation of %s failed: %s", name_or_arn, result.error)

        self._async.submit(run)

    def close(self) -> None:
        """Stop every worker: all are told at once (stdin closed), then awaited."""
        self._async.shutdown(wait=False, cancel_futures=True)
        workers = [w for pool in self._pools.values() for w in pool.close()]
        for worker in workers:
            worker.close_input()
        for worker in workers:
            worker.stop()
