"""A warm Lambda execution environment: imports the handler once, then serves invocations.

Started by :mod:`localcloud.lambdas` with the function's own environment (the template's
variables plus the Lambda runtime's), so functions share neither environment nor module state.
Requests arrive as JSON lines on stdin; results leave as JSON lines on the file descriptor named
by ``LOCALCLOUD_RESULT_FD`` (stdout and stderr stay free for the function's logs).
"""

from __future__ import annotations

import decimal
import importlib
import json
import os
import secrets
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The context object Lambda passes to a Python handler."""

    def __init__(self, request_id: str, deadline: float) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ["LOCALCLOUD_FUNCTION_ARN"]
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[1:],
    }


class _AwsCallCounter:
    """Counts AWS API calls made by the function (what a request costs)."""

    def __init__(self) -> None:
        self.calls = 0

    def install(self) -> None:
        base_client: Any = importlib.import_module("botocore.client").BaseClient
        original = base_client._make_api_call
        counter = self

        def counted(client: Any, operation_name: str, api_params: Any) -> Any:
            counter.calls += 1
            return original(client, operation_name, api_params)

        base_client._make_api_call = counted


class _RuntimeEncoder(json.JSONEncoder):
    """awslambdaric's marshaller for python3.12: a Decimal (what boto3's DynamoDB types give) is
    a JSON number, and nothing else beyond JSON's own types is serialised."""

    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return super().default(o)


def runtime_json(value: Any) -> str:
    """``value`` as Lambda's Python runtime serialises a result (non-ASCII kept, not escaped)."""
    return json.dumps(value, cls=_RuntimeEncoder, ensure_ascii=False)


def _trace_header() -> str:
    """A sampled X-Ray trace header, as Lambda gives each invocation of an active-tracing function."""
    trace = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    return f"Root={trace};Parent={secrets.token_hex(8)};Sampled=1"


def main() -> None:
    """Load the handler named by ``_HANDLER`` and serve invocations until stdin closes."""
    result_out = os.fdopen(int(os.environ["LOCALCLOUD_RESULT_FD"]), "w", buffering=1)
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    layer_paths = [p for p in os.environ.get("LOCALCLOUD_LAYER_PATHS", "").split(os.pathsep) if p]
    sys.path[:0] = [task_root, *layer_paths]
    os.chdir(task_root)
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    counter = _AwsCallCounter()
    counter.install()
    handler = None
    init_error: dict[str, Any] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:
        init_error = _error(exc, "Runtime.ImportModuleError")
        traceback.print_exc()
    result_out.write(json.dumps({"ready": True}) + "\n")  # the init phase is over

    for line in sys.stdin:
        request = json.loads(line)
        counter.calls = 0
        if init_error is not None or handler is None:
            reply: dict[str, Any] = {"ok": False, "error": init_error}
        else:
            context = LambdaContext(request["request_id"], request["deadline"])
            # Lambda sets the invocation's trace header; the X-Ray SDK builds its segment from it.
            os.environ["_X_AMZN_TRACE_ID"] = _trace_header()
            try:
                reply = {"ok": True, "result": handler(request["event"], context)}
            except Exception as exc:
                traceback.print_exc()
                reply = {"ok": False, "error": _error(exc)}
        reply["aws_calls"] = counter.calls
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            # As Lambda's Python runtime: a datetime (or any other object) in a result fails the
            # invocation with Runtime.MarshalError.
            if reply.get("ok"):
                # What Lambda measures against its 6 MB response limit: the serialised payload.
                reply["size"] = len(runtime_json(reply["result"]).encode())
            text = runtime_json(reply)
        except (TypeError, ValueError) as exc:
            text = json.dumps({"ok": False, "error": _error(exc, "Runtime.MarshalError")})
        result_out.write(text + "\n")


if __name__ == "__main__":
    main()
