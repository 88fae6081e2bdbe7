"""TOTP MFA (RFC 6238 via pyotp): enrolment, verification, backup codes and lockout.

- 30-second steps, 6 digits, a window of at most one step either side;
- each time step is accepted once per user (the last accepted timecode is stored and only a later
  one is accepted, by a conditional write): a replayed code is refused and raises a Security Alert;
- backup codes are random, shown once, stored as salted SHA-256 and spent by a conditional write;
- every attempt is admitted to evaluation only by one conditional write that counts it while the
  user is not locked (a check of a copy read earlier would let N parallel attempts make N
  guesses): at most five are evaluated per lockout, the fifth failure locks the user (423) for a
  configurable time and raises a Security Alert, and while locked even the right code is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import pyotp

from tenant_security import crypto
from tenant_security.activity import EventPublisher
from tenant_security.alerts import AlertKind
from tenant_security.errors import DomainError, Locked, Unauthorized
from tenant_security.identity.tokens import AMR_BACKUP_CODE, AMR_TOTP
from tenant_security.identity.users import User, UserStore
from tenant_security.observability import logger

if TYPE_CHECKING:
    from tenant_security.config import Settings

STEP_SECONDS = 30
DIGITS = 6
MAX_WINDOW = 1
BACKUP_CODE_COUNT = 10
MAX_FAILURES = 5
DEFAULT_LOCKOUT_SECONDS = 15 * 60


class SecretCipher(Protocol):
    """Encrypts a user's MFA secret under its tenant's key (see :mod:`tenant_security.crypto`)."""

    def encrypt(self, tenant_id: str, username: str, secret: bytes) -> bytes: ...

    def decrypt(self, tenant_id: str, username: str, ciphertext: bytes) -> bytes: ...


class KmsSecretCipher:
    """:class:`SecretCipher` under the tenant secrets key (the platform master key for the
    platform tenant), with tenant, user and purpose in the encryption context."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _context(self, tenant_id: str, username: str) -> dict[str, str]:
        return crypto.encryption_context(tenant_id, crypto.PURPOSE_MFA_SECRET, username=username)

    def encrypt(self, tenant_id: str, username: str, secret: bytes) -> bytes:
        """The secret encrypted under the tenant's secrets key."""
        return crypto.encrypt(
            secret, self.settings.secrets_key_arn(tenant_id), self._context(tenant_id, username)
        )

    def decrypt(self, tenant_id: str, username: str, ciphertext: bytes) -> bytes:
        """The secret back, refused unless it was encrypted for this tenant and user."""
        return crypto.decrypt(
            ciphertext, self._context(tenant_id, username), self.settings.account_id, self.settings.partition
        )


@dataclass(frozen=True)
class Enrollment:
    """Shown to the user once."""

    secret: str
    otpauth_uri: str
    qr_svg: str
    backup_codes: list[str]


def matching_timecode(
    secret: str, code: str, now: float, window: int = MAX_WINDOW, digits: int = DIGITS, digest: str = "sha1"
) -> int | None:
    """The time step (counter) within ``window`` steps of ``now`` whose code is ``code``, or None."""
    window = max(0, min(window, MAX_WINDOW))
    totp = pyotp.TOTP(secret, digits=digits, interval=STEP_SECONDS, digest=getattr(hashlib, digest))
    current = totp.timecode(_utc(now))
    found = None
    for counter in range(current - window, current + window + 1):
        # Compare every candidate (no early exit): the time taken does not tell which matched.
        if hmac.compare_digest(totp.generate_otp(counter), code.strip()):
            found = counter
    return found


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def backup_code_hash(tenant_id: str, username: str, code: str) -> str:
    """Salted (tenant and user) SHA-256 of a normalised backup code."""
    normalised = code.replace("-", "").replace(" ", "").upper()
    return hashlib.sha256(f"{tenant_id}\x00{username}\x00{normalised}".encode()).hexdigest()


def new_backup_codes(count: int = BACKUP_CODE_COUNT) -> list[str]:
    """Random codes like ``K7Q2-M9XD-4PTR`` (60 bits each)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = ["".join(secrets.choice(alphabet) for _ in range(12)) for _ in range(count)]
    return [f"{c[:4]}-{c[4:8]}-{c[8:]}" for c in raw]


def qr_svg(uri: str) -> str:
    """The otpauth URI as an SVG QR code."""
    import segno

    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=4, border=2, xmldecl=False)
    return out.getvalue().decode()


class MfaService:
    """Enrolment and verification of a user's second factor."""

    def __init__(
        self,
        users: UserStore,
        cipher: SecretCipher,
        publisher: EventPublisher,
        *,
        lockout_seconds: int = DEFAULT_LOCKOUT_SECONDS,
        max_failures: int = MAX_FAILURES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = users
        self.cipher = cipher
        self.publisher = publisher
        self.lockout_seconds = lockout_seconds
        self.max_failures = max_failures
        self.clock = clock

    # -------------------------------------------------------------- lockout
    def admit(self, user: User, source_ip: str | None = None) -> int:
        """Admit one attempt of ``user`` to evaluation (counted as a failure until it succeeds);
        423 while locked. The attempt's number in the current series."""
        now = int(self.clock())
        attempt = self.users.admit_attempt(user.tenant_id, user.username, now, self.max_failures)
        if attempt.admitted:
            return attempt.count
        if attempt.locked_until > now:
            raise Locked(
                "too many failed attempts; try again later",
                headers={"Retry-After": str(attempt.locked_until - now)},
            )
        # The series is full but unlocked: the last admitted attempt's lock is not written yet
        # (or its writer died). Lock now; the attempt is refused either way.
        raise self._lock(user, "too many attempts", source_ip, attempt.count)

    def _lock(self, user: User, reason: str, source_ip: str | None, failures: int) -> Locked:
        now = int(self.clock())
        until = now + self.lockout_seconds
        if self.users.lock(user.tenant_id, user.username, until, self.max_failures, now):
            self.publisher.security_alert(
                user.tenant_id,
                AlertKind.USER_LOCKED_OUT,
                user=user.username,
                reason=reason,
                failures=failures,
                locked_until=until,
                source_ip=source_ip,
            )
        return Locked(
            "too many failed attempts; try again later", headers={"Retry-After": str(self.lockout_seconds)}
        )

    def fail(self, user: User, reason: str, source_ip: str | None, attempt: int) -> DomainError:
        """The admitted ``attempt`` failed (it is counted already): the 401, or the 423 of the lock
        it completes."""
        logger.warning(
            "sign-in step failed",
            extra={"tenant_id": user.tenant_id, "user": user.username, "reason": reason, "failures": attempt},
        )
        if attempt >= self.max_failures:
            return self._lock(user, reason, source_ip, attempt)
        return Unauthorized("invalid credentials")

    def succeeded(self, user: User) -> None:
        """An admitted attempt that was right but wrote nothing that resets the count (a password)."""
        self.users.reset_failures(user.tenant_id, user.username)

    # -------------------------------------------------------------- enrolment
    def enroll(self, user: User) -> Enrollment:
        """A new secret and backup codes, stored pending until the first code confirms them."""
        secret = pyotp.random_base32(32)
        codes = new_backup_codes()
        hashes = {backup_code_hash(user.tenant_id, user.username, c) for c in codes}
        ciphertext = self.cipher.encrypt(user.tenant_id, user.username, secret.encode())
        self.users.set_pending_mfa(user.tenant_id, user.username, ciphertext, hashes)
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
            name=f"{user.username}@{user.tenant_id}", issuer_name=f"DcisionAI-{user.tenant_id}"
        )
        return Enrollment(secret=secret, otpauth_uri=uri, qr_svg=qr_svg(uri), backup_codes=codes)

    def activate(self, user: User, code: str, source_ip: str | None = None) -> list[str]:
        """Confirm enrolment with the first code; the amr of this sign-in."""
        if user.mfa_enrolled or user.mfa_pending_secret is None:
            raise Unauthorized("no MFA enrolment is pending")
        attempt = self.admit(user, source_ip)
        secret = self.cipher.decrypt(user.tenant_id, user.username, user.mfa_pending_secret).decode()
        timecode = matching_timecode(secret, code, self.clock())
        if timecode is None or not self.users.activate_mfa(user.tenant_id, user.username, timecode):
            raise self.fail(user, "invalid enrolment code", source_ip, attempt)
        return list(AMR_TOTP)

    # -------------------------------------------------------------- verification
    def verify_code(self, user: User, code: str, source_ip: str | None = None) -> list[str]:
        """Check a TOTP code (each time step once); the amr of this sign-in."""
        if not user.mfa_enrolled or user.mfa_secret is None:
            raise Unauthorized("MFA is not enrolled")
        attempt = self.admit(user, source_ip)
        secret = self.cipher.decrypt(user.tenant_id, user.username, user.mfa_secret).decode()
        timecode = matching_timecode(secret, code, self.clock())
        if timecode is None:
            raise self.fail(user, "invalid code", source_ip, attempt)
        if not self.users.accept_timecode(user.tenant_id, user.username, timecode):
            self.publisher.security_alert(
                user.tenant_id,
                AlertKind.TOTP_REPLAY,
                user=user.username,
                timecode=timecode,
                source_ip=source_ip,
            )
            raise self.fail(user, "replayed code", source_ip, attempt)
        return list(AMR_TOTP)

    def verify_backup_code(self, user: User, code: str, source_ip: str | None = None) -> list[str]:
        """Spend a backup code (once); the amr of this sign-in."""
        if not user.mfa_enrolled:
            raise Unauthorized("MFA is not enrolled")
        attempt = self.admit(user, source_ip)
        code_hash = backup_code_hash(user.tenant_id, user.username, code)
        if not self.users.consume_backup_code(user.tenant_id, user.username, code_hash):
            raise self.fail(user, "invalid backup code", source_ip, attempt)
        return list(AMR_BACKUP_CODE)
