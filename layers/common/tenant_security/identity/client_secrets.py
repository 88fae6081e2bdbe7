"""API client secrets: their format, and their verifiers under the tenant's ``api-keys`` key.

A secret is ``tsk_`` + 43 base62 characters (256 bits from the OS's CSPRNG) + a 6-character
base62 CRC-32 of those 43: 53 characters matching :data:`SECRET_PATTERN`. The fixed prefix and the
checksum let secret scanners (GitHub secret scanning's custom patterns, trufflehog, gitleaks) find a
leaked secret with next to no false positives, without asking us.

A secret is never stored. What is stored is its verifier: HMAC-SHA256 over the client id and the
secret under the tenant's 256-bit verifier key. That key is made once per tenant and kept only
encrypted by the AWS Encryption SDK under the tenant's ``api-keys`` KMS key (encryption context:
tenant and purpose), so:

- a reader of the table holds HMACs under a key they do not have: they cannot test guesses;
- crypto-shredding the tenant's keys at offboarding voids every verifier of the tenant;
- a warm function keeps the plaintext key for at most :data:`KEY_MAX_AGE_SECONDS` (the Encryption
  SDK cache's bound, crypto.CACHE_MAX_AGE_SECONDS), by the key's id that every client names, so a
  warm token request makes no KMS call and no read of the key.

Verification compares every candidate verifier with :func:`hmac.compare_digest` (no early exit),
and an unknown client is checked against a verifier of the same length, so the time taken does
not tell which secret matched nor whether the client exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from tenant_security import crypto

SECRET_PREFIX = "tsk_"  # noqa: S105 - the prefix, not a secret
SECRET_BYTES = 32
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_CHARS = 43  # 62**43 > 2**256
_CHECKSUM_CHARS = 6  # 62**6 > 2**32
# What a secret scanner matches (documented in README "Machine access").
SECRET_PATTERN = r"\btsk_[0-9A-Za-z]{49}\b"  # noqa: S105 - a pattern
PURPOSE_CLIENT_VERIFIER = "api-client-verifier"
KEY_MAX_AGE_SECONDS = crypto.CACHE_MAX_AGE_SECONDS
_KEY_BYTES = 32
# A verifier's text: the hex of an HMAC-SHA256.
VERIFIER_CHARS = 64


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(_BASE62[rest])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_CHARS)


def new_secret() -> str:
    """A new client secret: 256 random bits in the scanner-matchable format."""
    body = _base62(int.from_bytes(secrets.token_bytes(SECRET_BYTES), "big"), _BODY_CHARS)
    return f"{SECRET_PREFIX}{body}{_checksum(body)}"


def well_formed(secret: str) -> bool:
    """True for a string in the secret format whose checksum holds (a typo or a truncated paste
    is refused before any key is touched)."""
    if len(secret) != len(SECRET_PREFIX) + _BODY_CHARS + _CHECKSUM_CHARS or not secret.startswith(
        SECRET_PREFIX
    ):
        return False
    rest = secret[len(SECRET_PREFIX) :]
    if any(c not in _BASE62 for c in rest):
        return False
    body, checksum = rest[:_BODY_CHARS], rest[_BODY_CHARS:]
    return hmac.compare_digest(_checksum(body), checksum)


@dataclass(frozen=True)
class VerifierKey:
    """A tenant's verifier key: its id (on every client made under it) and its plaintext."""

    key_id: str
    material: bytes


class WrappedKeys(Protocol):
    """Where a tenant's wrapped verifier key is kept (the clients table)."""

    def wrapped_key(self, tenant_id: str) -> tuple[str, bytes] | None:
        """The tenant's (key id, wrapped key), read consistently; None when it has none."""
        ...

    def keep_wrapped_key(self, tenant_id: str, key_id: str, wrapped: bytes) -> tuple[str, bytes]:
        """Keep ``wrapped`` unless the tenant has a key already; the (key id, wrapped key) kept."""
        ...


class VerifierKeys:
    """Each tenant's verifier key: made once, kept wrapped under its ``api-keys`` key, cached by
    its id. A client names the key its verifiers were made under: a key shredded with its
    tenant and made anew (the tenant onboarded again) is another id, so no cached plaintext
    of a shredded key ever verifies or makes a verifier again."""

    def __init__(
        self,
        store: WrappedKeys,
        key_arn: Callable[[str], str],
        account_id: str,
        partition: str = "aws",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``key_arn(tenant)``: the tenant's api-keys key (its alias ARN)."""
        self.store = store
        self.key_arn = key_arn
        self.account_id = account_id
        self.partition = partition
        self.clock = clock
        self._cache: dict[str, tuple[VerifierKey, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _context(tenant_id: str, key_id: str) -> dict[str, str]:
        return crypto.encryption_context(tenant_id, PURPOSE_CLIENT_VERIFIER, key_id=key_id)

    def _cached(self, tenant_id: str, key_id: str) -> VerifierKey | None:
        with self._lock:
            cached = self._cache.get(tenant_id)
        if cached is None or cached[0].key_id != key_id or self.clock() - cached[1] >= KEY_MAX_AGE_SECONDS:
            return None
        return cached[0]

    def _unwrapped(self, tenant_id: str, key_id: str, wrapped: bytes) -> VerifierKey:
        found = self._cached(tenant_id, key_id)
        if found is None:
            material = crypto.decrypt(
                wrapped, self._context(tenant_id, key_id), self.account_id, self.partition
            )
            found = self._keep(tenant_id, VerifierKey(key_id, material))
        return found

    def _keep(self, tenant_id: str, key: VerifierKey) -> VerifierKey:
        with self._lock:
            self._cache[tenant_id] = (key, self.clock())
        return key

    def current(self, tenant_id: str) -> VerifierKey:
        """The tenant's key as stored now (one consistent read), made and kept if it has none:
        what a new client's or a rotated secret's verifier is made under."""
        stored = self.store.wrapped_key(tenant_id)
        if stored is None:
            key_id = uuid.uuid4().hex
            fresh = secrets.token_bytes(_KEY_BYTES)
            made = crypto.encrypt(fresh, self.key_arn(tenant_id), self._context(tenant_id, key_id))
            stored = self.store.keep_wrapped_key(tenant_id, key_id, made)
            if stored[0] == key_id:
                return self._keep(tenant_id, VerifierKey(key_id, fresh))
        return self._unwrapped(tenant_id, *stored)

    def of(self, tenant_id: str, key_id: str) -> VerifierKey | None:
        """The key a client's verifiers were made under: the cached one when it is that key (no
        call at all), else as stored (a read, and a KMS Decrypt at most every
        KEY_MAX_AGE_SECONDS); None when the tenant's key is another one, or none."""
        found = self._cached(tenant_id, key_id)
        if found is not None:
            return found
        stored = self.store.wrapped_key(tenant_id)
        if stored is None or stored[0] != key_id:
            return None
        return self._unwrapped(tenant_id, *stored)

    def forget(self, tenant_id: str) -> None:
        """Drop the cached key."""
        with self._lock:
            self._cache.pop(tenant_id, None)


def verifier(key: bytes, client_id: str, secret: str) -> str:
    """The stored form of ``secret`` for ``client_id`` (bound to both: a verifier copied to another
    client verifies nothing)."""
    return hmac.new(key, f"{client_id}\x00{secret}".encode(), hashlib.sha256).hexdigest()


# What an unknown client's secret is checked against, so that answer takes the same work.
_DECOY = "0" * VERIFIER_CHARS


def matches(key: bytes | None, client_id: str, secret: str, candidates: Iterable[str]) -> bool:
    """True when ``secret`` is one of the ``candidates`` verifiers; every candidate is compared."""
    computed = verifier(key or b"\x00" * _KEY_BYTES, client_id, secret)
    found = False
    for candidate in list(candidates) or [_DECOY]:
        found |= hmac.compare_digest(computed, candidate)
    return found and key is not None
