"""`make demo`: a narrated tour of the platform on the running local cloud (`make local`).

A platform operator of its own is created (``tenant-security bootstrap-admin``) and signs in with
MFA; two tenants are onboarded (one through the API, one through an EventBridge event put by
``tenant-security onboard``); the first tenant's admin signs in with MFA, stores a file and a
record, is refused another tenant's data, has its audit chain verified and a SOX report printed,
and trips the tenant's rate limit. Every step is a real request; nothing is mocked. The demo
plays the authenticator app with pyotp. It leaves the bootstrap admin of `make local` alone and
can run again: each run has its own operator and tenant ids.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pyotp
import requests

from localcloud.endpoints import client_environment
from tenant_security.private_files import UnsafeFile, read_private_file
from tenant_security_tools.client import Session, checked_api_url, save_session

STATE_DIR = Path(".localcloud")


class DemoFailed(RuntimeError):
    """A step did not do what the tour says it does."""


@dataclass
class Account:
    """Who the demo signs in as (kept between runs for the platform admin)."""

    tenant_id: str
    username: str
    password: str
    totp_secret: str = ""
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Tour:
    """The steps, each narrated before it runs and checked after."""

    def __init__(self, info: dict[str, Any], state_dir: Path, out: Callable[[str], None] = print) -> None:
        self.info, self.state_dir, self.say = info, state_dir, out
        self.api = str(info["api_url"]).rstrip("/")
        self.http = requests.Session()
        self.step_number = 0
        self.run_id = secrets.token_hex(2)
        self.started = time.monotonic()

    # ------------------------------------------------------------------ plumbing
    def step(self, title: str) -> None:
        self.step_number += 1
        self.say(f"\n== {self.step_number}. {title}  [{time.monotonic() - self.started:.0f}s]")

    def call(
        self, method: str, path: str, account: Account | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = kwargs.pop("headers", {}) | (account.headers if account else {})
        return self.http.request(method, self.api + path, headers=headers, timeout=60, **kwargs)

    def expect(self, reply: requests.Response, status: int, what: str) -> dict[str, Any]:
        if reply.status_code != status:
            raise DemoFailed(f"{what}: expected {status}, got {reply.status_code} {reply.text[:300]}")
        return reply.json() if reply.content and "json" in reply.headers.get("Content-Type", "") else {}

    def secrets_manager(self) -> Any:
        environment = client_environment(self.info)
        return boto3.client(
            "secretsmanager",
            endpoint_url=environment["AWS_ENDPOINT_URL"],
            region_name=environment["AWS_DEFAULT_REGION"],
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        )

    # ------------------------------------------------------------------ sign-in
    def first_sign_in(self, account: Account) -> Account:
        """Password → MFA enrolment → first code → a password of one's own."""
        login = self.password_step(account)
        if login["status"] != "MFA_ENROLLMENT_REQUIRED":
            raise DemoFailed(f"{account.username} has enrolled already")
        enrolment = self.expect(
            self.call(
                "POST", "/auth/mfa/enroll", headers={"Authorization": f"Bearer {login['enrollment_token']}"}
            ),
            200,
            "MFA enrolment",
        )
        self.say(
            f"   enrolment: an authenticator app scans {enrolment['otpauth_uri'].split('?')[0]}?... "
            f"(the QR code is on {self.api}/mfa); 10 backup codes issued"
        )
        account.totp_secret = enrolment["secret"]
        limited = self.expect(
            self.call(
                "POST",
                "/auth/mfa/activate",
                json={
                    "enrollment_token": login["enrollment_token"],
                    "code": pyotp.TOTP(account.totp_secret).now(),
                },
            ),
            200,
            "the first code confirms enrolment",
        )
        self.say(f"   first code accepted; password_change_required={limited['password_change_required']}")
        new_password = "Demo-" + secrets.token_urlsafe(18)
        tokens = self.expect(
            self.call(
                "POST",
                "/auth/password",
                headers={"Authorization": f"Bearer {limited['access_token']}"},
                json={"current_password": account.password, "new_password": new_password},
            ),
            200,
            "password change",
        )
        account.password, account.token = new_password, tokens["access_token"]
        self.say(f"   {account.username}@{account.tenant_id} now has MFA and a password of its own")
        return account

    def password_step(self, account: Account) -> dict[str, Any]:
        """POST /auth/login with the account's password: the challenge or enrolment token."""
        credentials = {
            "tenant_id": account.tenant_id,
            "username": account.username,
            "password": account.password,
        }
        return self.expect(self.call("POST", "/auth/login", json=credentials), 200, "sign-in")

    def tenant_security(self, *arguments: str, session: Account | None = None) -> str:
        """Run the console script against the local cloud, narrating it; its stdout."""
        environment = os.environ | client_environment(self.info)
        self.say(f"   $ tenant-security {' '.join(arguments)}")
        # The session lives in a 0700 directory of its own: the CLI refuses one others can write,
        # which .localcloud may be (it is made with the user's umask).
        with tempfile.TemporaryDirectory(prefix="demo-session-") as private:
            if session is not None:  # e.g. `onboard --wait` follows the tenant as this account
                session_file = Path(private) / "session.json"
                expires = time.time() + 600
                save_session(
                    Session(self.api, session.tenant_id, session.username, session.token, expires),
                    session_file,
                )
                environment["TENANT_SECURITY_SESSION"] = str(session_file)
            done = subprocess.run(  # noqa: S603 - our own interpreter and module, arguments we built
                [sys.executable, "-m", "tenant_security_tools.cli", *arguments],
                env=environment,
                capture_output=True,
                text=True,
                timeout=360,
                check=False,
            )
        for line in done.stderr.strip().splitlines():
            self.say(f"   | {line}")
        if done.returncode != 0:
            raise DemoFailed(f"tenant-security {arguments[0]} exited {done.returncode}: {done.stdout[-300:]}")
        return done.stdout

    def platform_operator(self) -> Account:
        """A platform-admin of the demo's own, through its first sign-in."""
        created = json.loads(
            self.tenant_security("bootstrap-admin", "--username", f"demo-{self.run_id}", "--json")
        )
        self.say(
            f"   {created['username']}@{created['platform_tenant']} gets a one-time password (shown once)"
        )
        return self.first_sign_in(
            Account(created["platform_tenant"], created["username"], created["password"])
        )

    def wait_active(self, admin: Account, tenant_id: str) -> dict[str, Any]:
        started, last = time.monotonic(), None
        while time.monotonic() - started < 300:
            reply = self.call("GET", f"/tenants/{tenant_id}", admin)
            status = reply.json().get("status") if reply.status_code == 200 else "REQUESTED"
            if status != last:
                self.say(f"   [{time.monotonic() - started:5.1f}s] {tenant_id}: {status}")
                last = status
            if status in ("ACTIVE", "FAILED"):
                if status == "FAILED":
                    raise DemoFailed(f"{tenant_id} failed: {reply.json().get('failure_reason')}")
                return dict(reply.json())
            time.sleep(1)
        raise DemoFailed(f"{tenant_id} was not ACTIVE within 300 s")

    def initial_password(self, tenant_id: str) -> str:
        secret = self.secrets_manager().get_secret_value(
            SecretId=f"dcisionai/tenants/{tenant_id}/admin-initial-password"
        )
        return str(json.loads(secret["SecretString"])["password"])

    # ------------------------------------------------------------------ the tour
    def run(self) -> dict[str, Any]:
        """Every step in order; raises :class:`DemoFailed` at the first that does not hold."""
        tenant_a, tenant_b = f"acme-{self.run_id}", f"globex-{self.run_id}"
        self.step("A platform operator is created and signs in for the first time (MFA is mandatory)")
        admin = self.platform_operator()
        self.onboard_through_the_api(admin, tenant_a)
        self.onboard_through_an_event(admin, tenant_b)
        self.step(
            f"{tenant_a}'s first admin signs in: one-time password from Secrets Manager, MFA, new password"
        )
        owner = self.first_sign_in(Account(tenant_a, "owner", self.initial_password(tenant_a)))
        record_id = self.files_and_records(owner)
        self.cross_tenant_attempt(owner, tenant_b, record_id)
        audit = self.verify_the_audit_chain(owner)
        sox = self.sox_report(owner)
        self.trip_the_rate_limit(owner)  # last: the tenant is refused for the rest of the minute
        self.say(f"\nDone. Browse the API at {self.api}/docs; enrol users at {self.api}/mfa.")
        return {"tenants": [tenant_a, tenant_b], "audit": audit, "sox": sox}

    def onboard_through_the_api(self, admin: Account, tenant_id: str) -> None:
        self.step(f"Onboard {tenant_id} through the API (POST /tenants)")
        body = {
            "tenant_id": tenant_id,
            "name": "Acme Corp",
            "isolation": "database",
            "admin": {"username": "owner", "email": "owner@acme.example"},
            # Small allowances, so that the last step can show a 429.
            "security_policies": {
                "rate_limiting": {"requests_per_minute": 30, "burst_size": 10},
                "access_control": {"ip_whitelist": []},
            },
        }
        self.expect(self.call("POST", "/tenants", admin, json=body), 202, "onboarding request")
        self.say("   Step Functions: validate, register, KMS keys, S3 buckets, PostgreSQL database, admin")
        self.wait_active(admin, tenant_id)

    def onboard_through_an_event(self, admin: Account, tenant_id: str) -> None:
        self.step(f"Onboard {tenant_id} through an EventBridge event (tenant-security onboard --file)")
        request_file = self.state_dir / f"{tenant_id}.yaml"
        request_file.write_text(
            f"tenant_id: {tenant_id}\nname: Globex\nisolation: schema\n"
            "admin:\n  username: owner\n  email: owner@globex.example\n"
        )
        bus = self.info["event_bus_name"]
        self.tenant_security("onboard", "--file", str(request_file), "--bus", bus, "--wait", session=admin)

    def files_and_records(self, owner: Account) -> str:
        self.step("Files and records, encrypted with the tenant's own keys")
        tenant_id, content = owner.tenant_id, b"Q3 revenue forecast - confidential\n"
        path = f"/tenants/{tenant_id}/files/reports/q3.txt"
        octets = {"Content-Type": "application/octet-stream"}
        self.expect(self.call("PUT", path, owner, data=content, headers=octets), 200, "file upload")
        if self.call("GET", path, owner, headers={"Accept": "application/octet-stream"}).content != content:
            raise DemoFailed("the file did not come back as it was stored")
        self.say(f"   PUT + GET {path}: {len(content)} bytes, envelope-encrypted (AWS Encryption SDK)")
        body = {"data": {"customer": "Initech", "ssn": "078-05-1120"}, "sensitive": ["ssn"]}
        record = self.expect(
            self.call("POST", f"/tenants/{tenant_id}/records", owner, json=body), 201, "record"
        )
        fetched = self.expect(
            self.call("GET", f"/tenants/{tenant_id}/records/{record['id']}", owner), 200, "get"
        )
        self.say(
            f"   record {record['id']} in {tenant_id}'s own PostgreSQL database (its own role), "
            f"field {record['sensitive']} sealed with the tenant's key; read back: {fetched['data']}"
        )
        return str(record["id"])

    def cross_tenant_attempt(self, owner: Account, other: str, record_id: str) -> None:
        self.step(f"{owner.tenant_id}'s admin tries {other}'s data")
        for path in (f"/tenants/{other}/files", f"/tenants/{other}/records/{record_id}"):
            refused = self.call("GET", path, owner)
            if refused.status_code != 403:
                raise DemoFailed(f"cross-tenant GET {path} answered {refused.status_code}")
            self.say(f"   GET {path} → 403 {refused.json().get('error')} (and a Security Alert)")

    def trip_the_rate_limit(self, owner: Account) -> None:
        self.step(f"{owner.tenant_id} exceeds its rate limit (10 requests a second, 30 a minute)")
        path, admitted, limited = f"/tenants/{owner.tenant_id}/files", 0, None
        with ThreadPoolExecutor(max_workers=6) as pool:
            # At most 72 requests: even split by a minute boundary, one side holds more than 30.
            for _ in range(12):
                replies = list(pool.map(lambda _: self.call("GET", path, owner), range(6)))
                admitted += sum(r.status_code == 200 for r in replies)
                limited = next((r for r in replies if r.status_code == 429), None)
                if limited is not None:
                    break
        if limited is None:
            raise DemoFailed("the tenant's rate limit never refused a request")
        refusal = limited.json()
        self.say(
            f"   {admitted} admitted, then 429 {refusal.get('error')}: {refusal.get('message')} "
            f"(Retry-After: {limited.headers.get('Retry-After')}, "
            f"X-RateLimit-Limit: {limited.headers.get('X-RateLimit-Limit')})"
        )

    def verify_the_audit_chain(self, owner: Account) -> str:
        self.step(f"Verify {owner.tenant_id}'s audit chain (hash-chained, object-locked S3)")
        time.sleep(2)  # the audit writer is asynchronous (EventBridge)
        path = f"/tenants/{owner.tenant_id}/audit/verify"
        verify = self.expect(self.call("GET", path, owner), 200, "verification")
        if verify["status"] != "VALID":
            raise DemoFailed(f"the chain is {verify['status']}: {verify['problems'][:3]}")
        self.say(
            f"   {verify['status']}: {verify['checked']} records checked, "
            f"{verify.get('checkpoints_checked', 0)} signed checkpoints"
        )
        return str(verify["status"])

    def sox_report(self, owner: Account) -> str:
        self.step(f"SOX report for {owner.tenant_id}")
        today = datetime.now(UTC)
        quarter = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
        path = f"/tenants/{owner.tenant_id}/reports/sox?period={quarter}"
        report = self.expect(self.call("GET", path, owner), 200, "SOX report")
        self.say(
            f"   {report['framework']} {report['period']['id']}: overall {report['status']}, "
            f"{report['records_examined']} audit records examined"
        )
        for control in report["controls"]:
            self.say(f"   - {control['id']:<10} {control['status']:<8} {control['title']}")
        return str(report["status"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--state-dir", type=Path, default=STATE_DIR, help="the local cloud's state (.localcloud)"
    )
    args = parser.parse_args(argv)
    info_file = args.state_dir / "bootstrap.json"
    if not info_file.exists():
        print(f"{info_file} not found: start the local cloud first (`make local` in another terminal)")
        return 2
    try:
        info = json.loads(read_private_file(info_file))
        # The tour creates accounts and sends their passwords there: only to this machine.
        info["api_url"] = checked_api_url(str(info["api_url"]), loopback_only=True)
    except (UnsafeFile, ValueError, KeyError) as exc:
        print(f"refusing {info_file}: {exc}")
        return 2
    try:
        requests.get(f"{info['api_url']}/health", timeout=5).raise_for_status()
    except requests.RequestException:
        print(f"the local cloud does not answer at {info['api_url']}: is `make local` running?")
        return 2
    tour = Tour(info, args.state_dir)
    try:
        tour.run()
    except DemoFailed as exc:
        print(f"\nDEMO FAILED at step {tour.step_number}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
