"""Start the local cloud the way `make local` does (``python -m localcloud``) for a test."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import requests

from localcloud.endpoints import client_environment

ROOT = Path(__file__).resolve().parents[2]
# The platform cloud's sign-in throttles (a minute's steps): above what the suite does from one
# address, low enough for a test to cross (template.yaml's defaults are 30 and 10).
SIGN_IN_PER_ADDRESS = 150
SIGN_IN_PER_ACCOUNT = 40
REAL_TEMPLATE = ROOT / "template.yaml"
FIXTURE_TEMPLATE = ROOT / "tests" / "integration" / "fixtures" / "localcloud" / "template.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningCloud:
    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path
    info: dict[str, Any]

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.info["outputs"])

    def client(self, service: str, region_name: str | None = None) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.info["aws_endpoint_url"],
            region_name=region_name or str(self.info["region"]),
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def aws_environment(self) -> dict[str, str]:
        """Environment that points this process's AWS clients (the Encryption SDK's too) here."""
        return client_environment(self.info, access_key="test")

    def http(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return requests.request(method, self.api_url + path, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGINT (as Ctrl-C would), then wait; kill the group if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return int(self.process.returncode)


def start_cloud(
    template: Path,
    state_dir: Path,
    *,
    database: bool = False,
    extra: tuple[str, ...] = (),
    timeout: float = 120,
) -> RunningCloud:
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "localcloud.log"
    args = [
        sys.executable,
        "-m",
        "localcloud",
        "--template",
        str(template),
        "--api-port",
        str(free_port()),
        "--aws-port",
        str(free_port()),
        "--state-dir",
        str(state_dir),
        "--retry-base-seconds",
        "0.2",
        # Lambda's async retries after 0.5 s and 1 s (AWS: about 1 and 2 minutes); a throttled
        # asynchronous event is tried again when an invocation ends, or after 0.1 s doubling up
        # to 30 s (the back-off is the fallback: short, it keeps a backlog polling)
        *("--async-retry-delays", "0.5,1"),
        *("--async-throttle-seconds", "0.1,30"),
        *extra,
    ]
    if not database:
        args.append("--no-database")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("DATABASE_URL", None)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            args, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    bootstrap = state_dir / "bootstrap.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local cloud exited ({process.returncode}):\n{log_path.read_text()[-4000:]}")
        if bootstrap.exists():
            return RunningCloud(process, state_dir, log_path, json.loads(bootstrap.read_text()))
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise TimeoutError(f"local cloud did not start in {timeout}s:\n{log_path.read_text()[-4000:]}")


class _BoundAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, source_address: str) -> None:
        self.source_address = source_address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source_address, 0)
        super().init_poolmanager(*args, **kwargs)


def from_address(address: str, session: requests.Session | None = None) -> requests.Session:
    """A client whose requests come from ``address`` (any of 127.0.0.0/8 on this machine): the
    API sees it as the caller's source address, as API Gateway would. ``session``: bind this one
    (an OAuth client library's, which is a requests.Session) instead of a new one."""
    session = session if session is not None else requests.Session()
    adapter = _BoundAdapter(address)
    session.mount("http://", adapter)
    return session


def warm_workers(send: Any, count: int) -> None:
    """``count`` warm workers of the function ``send()`` reaches, so the requests that follow race
    each other and not cold starts: the local cloud starts a worker process per concurrent
    invocation, as Lambda starts an execution environment, and many at once on a busy 2-core
    machine outlast the gateway's 29 s. Two more at a time, each wave waiting for the last."""
    for wave in range(2, count + 1, 2):
        with ThreadPoolExecutor(wave) as pool:
            list(pool.map(lambda _: send(), range(wave)))


# A read route of each API function behind the authorizer (admin, auth, data, compliance).
_WARM_ROUTES = ("/tenants/{t}/users", "/tenants/{t}/clients", "/tenants/{t}/files", "/tenants/{t}/audit")


def warm_api_workers(cloud: RunningCloud, token: str, tenant_id: str, count: int) -> None:
    """``count`` warm workers of the authorizer and of each API function, before a burst of
    ``count`` parallel requests across every route (the matrices): what each read answers does not
    matter, only that it reached the function."""
    headers = {"Authorization": f"Bearer {token}"}
    for route in _WARM_ROUTES:
        path = route.format(t=tenant_id)
        warm_workers(lambda path=path: cloud.http("GET", path, headers=headers), count)


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def aws_calls_of(cloud: RunningCloud, *functions: str) -> Counter[str]:
    """The AWS calls the named functions (logical ids) made so far, by operation (the local
    cloud's own count, as the bill would have it)."""
    counts = requests.get(cloud.api_url + "/__localcloud/stats", timeout=10).json()["aws_calls"]
    callers = {f"localcloud-{f}" for f in functions}
    spent: Counter[str] = Counter()
    for key, n in counts.items():
        caller, _, operation = key.partition("|")
        if caller in callers:
            spent[operation] += n
    return spent


def table_reads_of(cloud: RunningCloud, function: str) -> Counter[str]:
    """GetItem calls of one function (by logical id) so far, by table."""
    counts = requests.get(cloud.api_url + "/__localcloud/stats", timeout=10).json()["dynamodb_tables"]
    reads: Counter[str] = Counter()
    for key, n in counts.items():
        caller, operation, table = key.split("|", 2)
        if caller == f"localcloud-{function}" and operation == "GetItem":
            reads[table] += n
    return reads
