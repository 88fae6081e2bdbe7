"""``python -m localcloud`` (``make local``): run template.yaml on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from localcloud.cloud import LocalCloud, LocalCloudConfig


def _parameters(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--parameter takes Name=Value, not {pair!r}")
        out[key] = value
    return out


def _seconds(text: str) -> tuple[float, ...]:
    """``"60,120"`` → ``(60.0, 120.0)``."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise SystemExit(f"expected seconds separated by commas, not {text!r}") from exc


def main(argv: list[str] | None = None) -> int:
    """Start the local cloud, print its endpoints, wait for SIGINT/SIGTERM, stop cleanly."""
    parser = argparse.ArgumentParser(prog="localcloud", description=__doc__)
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", "3000")))
    parser.add_argument("--aws-port", type=int, default=int(os.environ.get("AWS_PORT", "4566")))
    parser.add_argument("--region", default=os.environ.get("LOCALCLOUD_REGION", "us-east-1"))
    parser.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("LOCALCLOUD_STATE_DIR", ".localcloud"))
    )
    parser.add_argument("--stack-name", default="dcisionai-local")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--no-database", action="store_true", help="start no PostgreSQL")
    parser.add_argument(
        "--retry-base-seconds",
        type=float,
        default=1.0,
        help="first EventBridge retry delay (doubles per attempt)",
    )
    parser.add_argument(
        "--async-retry-delays",
        default="60,120",
        help="seconds before Lambda's retries of a failed asynchronous invocation (AWS: about 60,120)",
    )
    parser.add_argument(
        "--async-throttle-seconds",
        default="1,300",
        help="first and longest wait before a throttled asynchronous invocation is tried again",
    )
    parser.add_argument(
        "--duplicate-deliveries",
        type=int,
        default=0,
        help="deliver every EventBridge event this many extra times (at-least-once delivery)",
    )
    parser.add_argument("--log-level", default=os.environ.get("LOCALCLOUD_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("werkzeug", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    database = None if args.no_database else os.environ.get("DATABASE_URL") or "embedded"
    cloud = LocalCloud(
        LocalCloudConfig(
            template=args.template,
            api_port=args.api_port,
            aws_port=args.aws_port,
            region=args.region,
            state_dir=args.state_dir,
            stack_name=args.stack_name,
            parameters=_parameters(args.parameter),
            database=database,
            retry_base_seconds=args.retry_base_seconds,
            async_retry_delays=_seconds(args.async_retry_delays),
            async_throttle_base=_seconds(args.async_throttle_seconds)[0],
            async_throttle_cap=_seconds(args.async_throttle_seconds)[-1],
            duplicate_deliveries=args.duplicate_deliveries,
        )
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        cloud.start()
        info = cloud.bootstrap()
        print("local cloud is up", flush=True)
        print(f"  API            {info['api_url']}", flush=True)
        print(f"  AWS (moto)     {info['aws_endpoint_url']}  region {info['region']}", flush=True)
        print(f"  event bus      {info['event_bus_name']}", flush=True)
        if cloud.database is not None:
            print(f"  PostgreSQL     {cloud.database.host}:{cloud.database.port}", flush=True)
        print(f"  bootstrap      {args.state_dir / 'bootstrap.json'}", flush=True)
        print(json.dumps({"ready": True, "api_url": info["api_url"]}), flush=True)
        print("Ctrl-C stops it.", flush=True)
        stop.wait()
    except Exception as exc:
        logging.getLogger("localcloud").exception("local cloud failed to start: %s", exc)
        return 1
    finally:
        print("stopping the local cloud ...", flush=True)
        cloud.stop()
    return 0


if __name__ == "__main__":
    code = main()
    # Everything was stopped explicitly above; skip tearing down moto's in-memory state
    # (over a second) so Ctrl-C returns at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
