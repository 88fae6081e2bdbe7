"""Sign-in helpers for end-to-end tests against the local cloud running template.yaml.

Every password, code, TOTP secret, backup code and token these helpers see is recorded in
``SEEN_SECRETS`` so a test can assert that none of them reached the logs.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pyotp
import requests

from localcloud.xray import TRACES_FILE
from tenant_security.config import Settings
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.tokens import ACCESS, SCOPE_FULL, KmsSigner, TokenIssuer
from tenant_security.models import parse_security_policies
from tenant_security.onboarding.key_policy import tenant_key_policy
from tenant_security.tenants import TenantProfile, TenantStore
from tenant_security_tools.stack_settings import settings_of
from tests.support.cloud import RunningCloud

SEEN_SECRETS: list[str] = []
ISSUER, AUDIENCE = "dcisionai-tenant-security", "dcisionai-api"


def seen(*values: str) -> None:
    SEEN_SECRETS.extend(v for v in values if v)


def assert_no_secrets_logged(cloud: RunningCloud) -> None:
    """No password, code, TOTP secret, backup code or token seen so far is in the cloud's log."""
    import re

    log = cloud.log()
    assert '"message":"sign-in step"' in log  # the functions did log what they handled
    traces = (cloud.state_dir / TRACES_FILE).read_text()
    assert '"name":"## lambda_handler"' in traces  # the handlers were traced, as on AWS
    log += traces  # and X-Ray's segments, which AWS keeps where no log redaction reaches
    assert SEEN_SECRETS
    for secret in set(SEEN_SECRETS):
        # A code is six digits: the digits of a number (X-Ray's microsecond times, a metric's
        # fraction) are not one, so a run of digits beside a "." does not count as the code.
        edge = "0-9A-Za-z." if secret.isdigit() else "0-9A-Za-z"
        pattern = rf"(?<![{edge}]){re.escape(secret)}(?![{edge}])"
        assert not re.search(pattern, log), f"a secret ({len(secret)} characters) appears in the log"


@dataclass
class Identity:
    tenant_id: str
    username: str
    password: str
    token: str
    totp_secret: str = ""
    backup_codes: list[str] = field(default_factory=list)
    replies: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def code(self, offset_steps: int = 0) -> str:
        value = pyotp.TOTP(self.totp_secret).at(time.time() + 30 * offset_steps)
        seen(value)
        return value


_TRY_AGAIN = (429, 500, 502, 503, 504)  # a throttled or timed-out step on a loaded machine
_RENEWALS = threading.Lock()


class RenewingIdentity(Identity):
    """An identity that outlives its access token (a session-scoped fixture: the suite runs longer
    than a token's 15 minutes). Its token is renewed as a person would renew it, by signing in
    again (password, then one of its backup codes, so that no TOTP code a test uses is spent),
    once fewer than :data:`RENEW_BEFORE` seconds of it are left."""

    RENEW_BEFORE = 360

    cloud: RunningCloud
    _token: str = ""
    _expires_at: float = 0.0

    @property
    def token(self) -> str:
        # Parallel requests of one test (a thread pool's) share one renewal: without the lock each
        # thread signed in on its own, and their sign-ins together filled the account's throttle.
        with _RENEWALS:
            if time.time() > self._expires_at - self.RENEW_BEFORE and self.backup_codes:
                self._renew()
            return self._token

    @token.setter
    def token(self, value: str) -> None:
        self._token, self._expires_at = value, time.time() + 900

    def _renew(self) -> None:
        # As a person would: try again after a throttled or timed-out step (a loaded machine),
        # each time with a new challenge and the next backup code (a used one is spent).
        for attempt in range(4):
            login = post(
                self.cloud,
                "/auth/login",
                {"tenant_id": self.tenant_id, "username": self.username, "password": self.password},
            )
            verify = login
            if login.status_code == 200:
                challenge = str(login.json()["challenge_token"])
                seen(challenge)
                body = {"challenge_token": challenge, "backup_code": self.backup_codes.pop()}
                verify = post(self.cloud, "/auth/mfa/verify", body)
            if verify.status_code not in _TRY_AGAIN or not self.backup_codes:
                break
            # a throttle's Retry-After is at most its one-minute window: wait all of it
            time.sleep(min(float(verify.headers.get("Retry-After", 2 + 2 * attempt)), 61))
        assert verify.status_code == 200, f"renewing {self.username}'s token: {verify.text}"
        reply = verify.json()
        seen(reply["access_token"])
        self._token, self._expires_at = reply["access_token"], time.time() + int(reply["expires_in"])

    @classmethod
    def of(cls, cloud: RunningCloud, identity: Identity) -> RenewingIdentity:
        """``identity``, renewing its own token on ``cloud`` from now on."""
        renewing = cls(**{name: getattr(identity, name) for name in identity.__dataclass_fields__})
        renewing.cloud = cloud
        return renewing


def post(
    cloud: RunningCloud, path: str, body: dict[str, Any] | None = None, token: str | None = None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return cloud.http("POST", path, json=body, headers=headers)


def seed_tenant(
    cloud: RunningCloud, tenant_id: str, status: str = "ACTIVE", database: str | None = None, **policy: Any
) -> None:
    """A tenant as onboarding leaves it (record, data, secrets and api-keys keys, object-locked audit bucket;
    with ``database`` = "database" or "schema" also its PostgreSQL and login secret), with policy
    sections overridden."""
    document: dict[str, Any] = {"access_control": {"ip_whitelist": []}}
    for section, values in policy.items():
        document.setdefault(section, {}).update(values)
    record = TenantProfile(
        tenant_id=tenant_id, name=tenant_id.title(), status=status, policies=parse_security_policies(document)
    )
    TenantStore(cloud.client("dynamodb"), "dcisionai-tenants").create(record)
    kms = cloud.client("kms")
    settings = onboarding_settings(cloud)
    for purpose in ("data", "secrets", "api-keys"):
        # the key policy onboarding gives a tenant key: the local cloud enforces it
        key_id = kms.create_key(
            Description=f"{tenant_id} {purpose}", Policy=json.dumps(tenant_key_policy(settings, purpose))
        )["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=f"alias/dcisionai-tenant-{tenant_id}-{purpose}", TargetKeyId=key_id)
    cloud.client("s3").create_bucket(
        Bucket=f"dcisionai-10ca1000-audit-logs-{tenant_id}", ObjectLockEnabledForBucket=True
    )
    if database is not None:
        from tests.support.tenants import databases

        login = databases(cloud).create(tenant_id, database)
        seen(login["password"])  # a database password must never reach the logs either
        cloud.client("secretsmanager").create_secret(
            Name=f"dcisionai/tenants/{tenant_id}/database", SecretString=json.dumps(login)
        )


_ONBOARDING_SETTINGS: dict[str, Settings] = {}


def onboarding_settings(cloud: RunningCloud) -> Settings:
    """The onboarding function's settings (its environment in the running cloud): the tenant key
    users and administrators its key policies name."""
    endpoint = str(cloud.info["aws_endpoint_url"])
    if endpoint not in _ONBOARDING_SETTINGS:
        functions = cloud.client("lambda").list_functions()["Functions"]
        onboarding = next(f for f in functions if "-OnboardingFunction-" in f["FunctionName"])
        # its region is the Lambda runtime's (AWS_REGION), not its configuration's: the ARN says it
        region = onboarding["FunctionArn"].split(":")[3]
        _ONBOARDING_SETTINGS[endpoint] = settings_of(onboarding["Environment"]["Variables"], region=region)
    return _ONBOARDING_SETTINGS[endpoint]


def signing_key_id(cloud: RunningCloud) -> str:
    aliases = cloud.client("kms").list_aliases()["Aliases"]
    return str(next(a["TargetKeyId"] for a in aliases if a["AliasName"] == "alias/dcisionai-token-signing"))


def mint_token(
    cloud: RunningCloud,
    tenant_id: str,
    username: str,
    roles: list[str],
    *,
    amr: tuple[str, ...] = ("pwd", "otp"),
    scope: str = SCOPE_FULL,
    issuer: str = ISSUER,
    ttl: int = 600,
    clock: float | None = None,
) -> str:
    """A token as sign-in would issue it, with a live session (the test plays the auth API)."""
    ddb = cloud.client("dynamodb")
    session = SessionStore(ddb, "dcisionai-sessions", "dcisionai-counters").create(
        tenant_id, username, list(amr), scope, timeout_minutes=60, max_sessions=1000
    )
    token_issuer = TokenIssuer(
        KmsSigner(cloud.client("kms"), signing_key_id(cloud)),
        issuer,
        AUDIENCE,
        clock=(lambda: clock) if clock else time.time,
    )
    token, _ = token_issuer.issue(
        subject=username,
        tenant_id=tenant_id,
        token_use=ACCESS,
        ttl=ttl,
        roles=roles,
        amr=list(amr),
        sid=session.session_id,
        scope=scope,
    )
    seen(token)
    return token


def first_sign_in(cloud: RunningCloud, tenant_id: str, username: str, one_time_password: str) -> Identity:
    """Password → forced MFA enrolment → first code → password change; the full-rights identity."""
    seen(one_time_password)
    replies: dict[str, Any] = {}
    login = post(
        cloud, "/auth/login", {"tenant_id": tenant_id, "username": username, "password": one_time_password}
    )
    replies["login"] = login
    enrollment_token = login.json()["enrollment_token"]
    seen(enrollment_token)
    enroll = post(cloud, "/auth/mfa/enroll", token=enrollment_token)
    replies["enroll"] = enroll
    secret, codes = enroll.json()["secret"], enroll.json()["backup_codes"]
    seen(secret, *codes)
    code = pyotp.TOTP(secret).now()
    seen(code)
    activate = post(cloud, "/auth/mfa/activate", {"enrollment_token": enrollment_token, "code": code})
    replies["activate"] = activate
    limited = activate.json()["access_token"]
    seen(limited)
    replies["limited_token"] = limited
    replies["limited_probe"] = cloud.http(
        "GET", f"/tenants/{tenant_id}/users", headers={"Authorization": f"Bearer {limited}"}
    )
    new_password = "Pw-" + secrets.token_urlsafe(18)
    seen(new_password)
    change = post(
        cloud,
        "/auth/password",
        {"current_password": one_time_password, "new_password": new_password},
        token=limited,
    )
    replies["password"] = change
    token = change.json()["access_token"]
    seen(token)
    return Identity(tenant_id, username, new_password, token, secret, codes, replies)


def create_user(cloud: RunningCloud, admin: Identity, tenant_id: str, username: str, roles: list[str]) -> str:
    """A new user's one-time password."""
    reply = cloud.http(
        "POST",
        f"/tenants/{tenant_id}/users",
        headers=admin.headers,
        json={"username": username, "email": f"{username}@{tenant_id}.example", "roles": roles},
    )
    assert reply.status_code == 201, reply.text
    password = str(reply.json()["temporary_password"])
    seen(password)
    return password


def new_signed_in_user(
    cloud: RunningCloud, admin: Identity, tenant_id: str, username: str, roles: list[str], **policy: Any
) -> Identity:
    """A new tenant (as onboarding leaves it) with one user who has completed the first sign-in."""
    seed_tenant(cloud, tenant_id, **policy)
    return first_sign_in(cloud, tenant_id, username, create_user(cloud, admin, tenant_id, username, roles))


def challenge_for(cloud: RunningCloud, identity: Identity) -> str:
    """Sign in with the password again; the MFA challenge token."""
    login = post(
        cloud,
        "/auth/login",
        {"tenant_id": identity.tenant_id, "username": identity.username, "password": identity.password},
    )
    token = str(login.json()["challenge_token"])
    seen(token)
    return token
