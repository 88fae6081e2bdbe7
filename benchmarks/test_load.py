"""A bounded load through the local cloud: several tenants, concurrent clients, a few minutes.

The mix: sign-ins (password, then TOTP when the user has a fresh code), file writes, record writes
and reads, audit reads. It runs for LOAD_SECONDS (default 150) and stops by itself; then it checks
what the load must not break and prints a report:

- every request's activity event is in its tenant's chain (by request id; sign-in steps, whose
  records carry no request id, by count), and every chain verifies;
- no quota was over-admitted: the rate-limited tenant was admitted at most its per-minute limit in
  each minute window touched, and the storage-limited tenant's counted bytes equal what is stored
  and stay within max_data_size;
- throughput, p50/p95/p99 latency per route and AWS calls per request (what a request costs).
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
import requests

from tests.support.cloud import RunningCloud
from tests.support.identity import Identity, create_user, first_sign_in, mint_token, seed_tenant

LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "150"))
CLIENTS = int(os.environ.get("LOAD_CLIENTS", "6"))
TENANTS = ("load-a", "load-b", "load-c")
RATE_LIMITED, STORAGE_LIMITED = "load-b", "load-c"
PER_MINUTE = 90
MAX_DATA = 120 * 1024
USERS_PER_TENANT = 3
MIX = (("sign-in", 1), ("file-write", 3), ("record-write", 3), ("record-read", 1), ("audit-read", 2))


@dataclass(frozen=True)
class Sample:
    route: str
    tenant: str
    status: int
    seconds: float
    aws_calls: int
    request_id: str
    at: float


class Load:
    """The tenants, their users and tokens, and what every request did."""

    def __init__(self, cloud: RunningCloud) -> None:
        self.cloud = cloud
        self.samples: list[Sample] = []
        self.records: dict[str, list[str]] = defaultdict(list)
        self.users: dict[str, list[Identity]] = {}
        self.last_step: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()
        self.session = requests.Session()
        self.tokens: dict[tuple[str, str], str] = {}

    def set_up(self) -> None:
        for tenant in TENANTS:
            policy: dict[str, Any] = {}
            if tenant == RATE_LIMITED:
                policy["rate_limiting"] = {"requests_per_minute": PER_MINUTE, "burst_size": 10}
            seed_tenant(self.cloud, tenant, database="schema", **policy)
            self.cloud.client("s3").create_bucket(Bucket=f"dcisionai-10ca1000-tenant-{tenant}-data")
            self._set_quotas(tenant)
            for role in ("developer", "auditor", "tenant-admin"):
                self.tokens[(tenant, role)] = mint_token(self.cloud, tenant, f"load-{role}", [role], ttl=900)
            admin = Identity(tenant, "load-tenant-admin", "", self.tokens[(tenant, "tenant-admin")])
            self.users[tenant] = [
                first_sign_in(
                    self.cloud, tenant, name, create_user(self.cloud, admin, tenant, name, ["viewer"])
                )
                for name in (f"user{i}" for i in range(USERS_PER_TENANT))
            ]

    def _set_quotas(self, tenant: str) -> None:
        """Room for the run's cost (US dollars; the seed's $200 a day would do, raised all the
        same); the storage-limited tenant gets a small max_data_size."""
        from tenant_security.models.quotas import parse_resource_quotas
        from tenant_security.tenants import TenantStore

        document: dict[str, Any] = {"cost": {"monthly_budget": 1_000_000, "daily_limit": 100_000}}
        if tenant == STORAGE_LIMITED:
            document["storage"] = {"max_file_size": "8KB", "max_data_size": f"{MAX_DATA}B"}
        TenantStore(self.cloud.client("dynamodb"), "dcisionai-tenants").set_quotas(
            tenant, parse_resource_quotas(document)
        )

    # ------------------------------------------------------------------ one request
    def _send(self, route: str, tenant: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        started = time.perf_counter()
        reply = self.session.request(method, self.cloud.api_url + path, timeout=60, **kwargs)
        sample = Sample(
            route,
            tenant,
            reply.status_code,
            time.perf_counter() - started,
            int(reply.headers.get("x-localcloud-aws-calls", "0")),
            reply.headers.get("x-amzn-RequestId", ""),
            time.time(),
        )
        with self.lock:
            self.samples.append(sample)
        assert reply.status_code < 500, (route, reply.status_code, reply.text[:300])
        return reply

    def _auth(self, tenant: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(tenant, role)]}"}

    def step(self, rng: random.Random) -> None:
        tenant = rng.choice(TENANTS)
        operation = rng.choices([m for m, _ in MIX], [w for _, w in MIX])[0]
        if operation == "sign-in":
            self._sign_in(tenant, rng)
        elif operation == "file-write":
            headers = {**self._auth(tenant, "developer"), "Content-Type": "application/octet-stream"}
            key = f"load/{uuid.uuid4().hex}.bin"
            self._send(
                "PUT file",
                tenant,
                "PUT",
                f"/tenants/{tenant}/files/{key}",
                data=os.urandom(2048),
                headers=headers,
            )
        elif operation == "record-write":
            body = {
                "data": {"n": rng.randint(0, 10**6), "ssn": f"{rng.randint(100, 999)}-00-0000"},
                "sensitive": ["ssn"],
            }
            reply = self._send(
                "POST record",
                tenant,
                "POST",
                f"/tenants/{tenant}/records",
                json=body,
                headers=self._auth(tenant, "developer"),
            )
            if reply.status_code == 201:
                with self.lock:
                    self.records[tenant].append(reply.json()["id"])
        elif operation == "record-read" and self.records[tenant]:
            record_id = rng.choice(self.records[tenant])
            reply = self._send(
                "GET record",
                tenant,
                "GET",
                f"/tenants/{tenant}/records/{record_id}",
                headers=self._auth(tenant, "developer"),
            )
            assert reply.status_code in (200, 429), reply.text
        elif operation == "audit-read":
            self._send(
                "GET audit",
                tenant,
                "GET",
                f"/tenants/{tenant}/audit",
                params={"limit": 20},
                headers=self._auth(tenant, "auditor"),
            )

    def _sign_in(self, tenant: str, rng: random.Random) -> None:
        user = rng.choice(self.users[tenant])
        login = self._send(
            "POST /auth/login",
            tenant,
            "POST",
            "/auth/login",
            json={"tenant_id": tenant, "username": user.username, "password": user.password},
        )
        if login.status_code != 200:
            return
        step = int(time.time() // 30)
        with self.lock:  # a TOTP code is good once: use each user's code at most once per step
            if self.last_step.get((tenant, user.username)) == step:
                return
            self.last_step[(tenant, user.username)] = step
        code = pyotp.TOTP(user.totp_secret).at(step * 30)
        self._send(
            "POST /auth/mfa/verify",
            tenant,
            "POST",
            "/auth/mfa/verify",
            json={"challenge_token": login.json()["challenge_token"], "code": code},
        )

    def run(self) -> float:
        deadline = time.monotonic() + LOAD_SECONDS

        def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                self.step(rng)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            for future in [pool.submit(client, seed) for seed in range(CLIENTS)]:
                future.result()
        return time.monotonic() - started


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _report(load: Load, seconds: float) -> str:
    by_route: dict[str, list[Sample]] = defaultdict(list)
    for sample in load.samples:
        by_route[sample.route].append(sample)
    lines = [
        f"load: {len(load.samples)} requests in {seconds:.0f} s = {len(load.samples) / seconds:.1f}/s "
        f"({CLIENTS} clients, {len(TENANTS)} tenants)",
        f"{'route':<24}{'n':>6}{'ok':>6}{'429':>6}{'413':>6}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'AWS calls':>11}",
    ]
    for route, samples in sorted(by_route.items()):
        times = [s.seconds * 1000 for s in samples]
        ok = [s for s in samples if s.status < 400]
        calls = statistics.mean(s.aws_calls for s in ok) if ok else 0.0
        lines.append(
            f"{route:<24}{len(samples):>6}{len(ok):>6}"
            f"{sum(s.status == 429 for s in samples):>6}{sum(s.status == 413 for s in samples):>6}"
            f"{_percentile(times, 0.5):>9.0f}{_percentile(times, 0.95):>9.0f}{_percentile(times, 0.99):>9.0f}"
            f"{calls:>11.1f}"
        )
    return "\n".join(lines)


def _audit_request_ids(load: Load, tenant: str) -> tuple[set[str], Counter[str]]:
    """The request ids in the tenant's trail, and how many records each action has."""
    ids: set[str] = set()
    actions: Counter[str] = Counter()
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"next": after} if after else {})}
        reply = load.session.get(
            f"{load.cloud.api_url}/tenants/{tenant}/audit",
            params=params,
            headers=load._auth(tenant, "auditor"),
            timeout=60,
        )
        if reply.status_code == 429:  # the rate-limited tenant: wait for the next window
            time.sleep(float(reply.headers.get("Retry-After", "1")))
            continue
        assert reply.status_code == 200, reply.text
        page = reply.json()
        ids |= {str(item.get("request_id")) for item in page["items"] if item.get("request_id")}
        actions.update(str(item.get("action")) for item in page["items"])
        after = page.get("next")
        if not after:
            return ids, actions


@pytest.mark.benchmark(group="load")
@pytest.mark.timeout(LOAD_SECONDS + 900)  # the run, then draining the trail and verifying it
def test_bounded_mixed_load(benchmark: Any, platform_cloud: RunningCloud) -> None:
    load = Load(platform_cloud)
    load.set_up()
    seconds = benchmark.pedantic(load.run, rounds=1, iterations=1)
    print("\n" + _report(load, seconds))

    # every request that reached a tenant's routes is in that tenant's chain
    tenant_requests = {
        t: {s.request_id for s in load.samples if s.tenant == t and not s.route.startswith("POST /auth")}
        for t in TENANTS
    }
    # sign-in steps carry no request id in their records: those are counted by action instead
    sign_ins = {
        t: Counter(
            "auth:Login" if s.route == "POST /auth/login" else "auth:MfaVerify"
            for s in load.samples
            if s.tenant == t and s.route.startswith("POST /auth")
        )
        for t in TENANTS
    }
    drain_until = time.monotonic() + 240
    missing: dict[str, Any] = {}
    while time.monotonic() < drain_until:
        missing = {}
        for tenant, ids in tenant_requests.items():
            found, actions = _audit_request_ids(load, tenant)
            short = {a: n - actions[a] for a, n in sign_ins[tenant].items() if actions[a] < n}
            if ids - found or short:
                missing[tenant] = (len(ids - found), short)
        if not missing:
            break
        time.sleep(5)
    assert not missing, missing
    for tenant in TENANTS:
        verdict = load.session.get(
            f"{platform_cloud.api_url}/tenants/{tenant}/audit/verify",
            headers=load._auth(tenant, "auditor"),
            timeout=120,
        )
        while verdict.status_code == 429:
            time.sleep(2)
            verdict = load.session.get(
                f"{platform_cloud.api_url}/tenants/{tenant}/audit/verify",
                headers=load._auth(tenant, "auditor"),
                timeout=120,
            )
        assert verdict.json()["status"] == "VALID", verdict.text

    # the rate-limited tenant: admitted at most PER_MINUTE in any minute window it used
    admitted = defaultdict(int)
    for sample in load.samples:
        if (
            sample.tenant == RATE_LIMITED
            and not sample.route.startswith("POST /auth")
            and sample.status != 429
        ):
            admitted[int(sample.at // 60)] += 1
    assert sum(admitted.values()) <= PER_MINUTE * (len(admitted) + 1), dict(admitted)
    assert any(s.status == 429 for s in load.samples if s.tenant == RATE_LIMITED)

    # the storage-limited tenant: what is counted is what is stored, and within the limit
    usage = load.session.get(
        f"{platform_cloud.api_url}/tenants/{STORAGE_LIMITED}/quotas/usage",
        headers=load._auth(STORAGE_LIMITED, "tenant-admin"),
        timeout=30,
    ).json()["storage"]
    listed = platform_cloud.client("s3").list_objects_v2(
        Bucket=f"dcisionai-10ca1000-tenant-{STORAGE_LIMITED}-data", Prefix="load/"
    )
    assert usage["bytes"] <= MAX_DATA  # files and records together
    assert usage["files"] == listed.get("KeyCount", 0)  # every counted file is stored, and only those
    assert any(s.status == 413 for s in load.samples if s.tenant == STORAGE_LIMITED)
    benchmark.extra_info.update(
        requests=len(load.samples),
        throughput_per_second=round(len(load.samples) / seconds, 1),
        aws_calls_per_request=round(statistics.mean(s.aws_calls for s in load.samples), 2),
    )
