"""In-memory stand-ins for the identity stores (same conditional semantics as the DynamoDB ones)."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tenant_security.errors import Conflict
from tenant_security.identity.users import Attempt, User


class FakeUsers:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], User] = {}
        self.mutex = threading.Lock()

    def get(self, tenant_id: str, username: str) -> User | None:
        user = self.items.get((tenant_id, username))
        return replace(user) if user else None

    def create(self, user: User) -> None:
        if (user.tenant_id, user.username) in self.items:
            raise Conflict("exists")
        self.items[(user.tenant_id, user.username)] = replace(user)

    def _user(self, tenant_id: str, username: str) -> User:
        return self.items[(tenant_id, username)]

    def set_pending_mfa(self, tenant_id: str, username: str, secret: bytes, code_hashes: set[str]) -> None:
        user = self._user(tenant_id, username)
        if user.mfa_enrolled:
            raise Conflict("enrolled")
        user.mfa_pending_secret, user.pending_backup_code_hashes = secret, set(code_hashes)

    def activate_mfa(self, tenant_id: str, username: str, timecode: int) -> bool:
        with self.mutex:
            user = self._user(tenant_id, username)
            if user.mfa_enrolled or user.mfa_pending_secret is None:
                return False
            user.mfa_secret, user.backup_code_hashes = (
                user.mfa_pending_secret,
                user.pending_backup_code_hashes,
            )
            user.mfa_pending_secret, user.pending_backup_code_hashes = None, set()
            user.mfa_enrolled, user.mfa_last_timecode, user.failed_attempts = True, timecode, 0
            return True

    def accept_timecode(self, tenant_id: str, username: str, timecode: int) -> bool:
        with self.mutex:
            user = self._user(tenant_id, username)
            if user.mfa_last_timecode is not None and user.mfa_last_timecode >= timecode:
                return False
            user.mfa_last_timecode, user.failed_attempts = timecode, 0
            return True

    def consume_backup_code(self, tenant_id: str, username: str, code_hash: str) -> bool:
        with self.mutex:
            user = self._user(tenant_id, username)
            if code_hash not in user.backup_code_hashes:
                return False
            user.backup_code_hashes.discard(code_hash)
            user.failed_attempts = 0
            return True

    def admit_attempt(self, tenant_id: str, username: str, now: int, max_failures: int) -> Attempt:
        with self.mutex:
            user = self._user(tenant_id, username)
            if user.locked_until > now or user.failed_attempts >= max_failures:
                return Attempt(False, user.failed_attempts, user.locked_until)
            user.failed_attempts += 1
            return Attempt(True, user.failed_attempts)

    def reset_failures(self, tenant_id: str, username: str) -> None:
        with self.mutex:
            self._user(tenant_id, username).failed_attempts = 0

    def lock(self, tenant_id: str, username: str, until: int, threshold: int, now: int) -> bool:
        with self.mutex:
            user = self._user(tenant_id, username)
            if user.failed_attempts < threshold or user.locked_until > now:
                return False
            user.locked_until, user.failed_attempts = until, 0
            return True


class PlainCipher:
    """Marks ciphertexts with tenant and user, so a mix-up shows."""

    def encrypt(self, tenant_id: str, username: str, secret: bytes) -> bytes:
        return f"{tenant_id}/{username}/".encode() + secret

    def decrypt(self, tenant_id: str, username: str, ciphertext: bytes) -> bytes:
        prefix = f"{tenant_id}/{username}/".encode()
        assert ciphertext.startswith(prefix)
        return ciphertext[len(prefix) :]


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def put(self, detail_type: str, detail: dict[str, Any]) -> bool:
        self.events.append((detail_type, dict(detail)))
        return True

    def security_alert(self, tenant_id: str, alert: str, **detail: Any) -> bool:
        return self.put("Security Alert", {"tenant_id": tenant_id, "alert": alert, **detail})

    def activity(self, activity: Any, policies: Any = None) -> bool:
        return self.put("User Activity", activity.detail())

    def alerts(self) -> list[str]:
        return [d["alert"] for t, d in self.events if t == "Security Alert"]


class LocalSigner:
    """KmsSigner's interface over a local P-256 key (tests only)."""

    def __init__(self, key_id: str = "test-key") -> None:
        self.key_id = key_id
        self.private_key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, message: bytes) -> bytes:
        r, s = decode_dss_signature(self.private_key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class LocalKeys:
    """PublicKeys' interface over LocalSigners."""

    def __init__(self, *signers: LocalSigner) -> None:
        self.keys = {s.key_id: s.private_key.public_key() for s in signers}

    def get(self, kid: object) -> Any:
        from tenant_security.errors import Unauthorized

        if kid not in self.keys:
            raise Unauthorized("unknown signing key")
        return self.keys[kid]  # type: ignore[index]


def live_session(
    tenant_id: str, session_id: str, age_seconds: float = 60, amr: tuple[str, ...] = ("pwd", "otp")
) -> Any:
    """A live session of ``tenant_id`` begun ``age_seconds`` ago (what the middleware reads)."""
    import time

    from tenant_security.identity.sessions import Session
    from tenant_security.identity.tokens import SCOPE_FULL

    now = time.time()
    return Session(
        tenant_id=tenant_id,
        session_id=session_id,
        username="alice",
        amr=list(amr),
        scope=SCOPE_FULL,
        created_at=int(now - age_seconds),
        expires_at=int(now + 3600),
    )
