"""Password hashing (argon2id, OWASP parameters) and the password rules."""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tenant_security.errors import ValidationFailed

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(
    time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)

MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 takes any length; a bound keeps request cost bounded
# Verified when the user does not exist, so an unknown user costs the same time as a wrong password.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash (random salt: the same password hashes differently each time)."""
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; constant work whether or not the user exists."""
    try:
        return HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return HASHER.check_needs_rehash(password_hash)


def generate_password(length: int = 20) -> str:
    """A random one-time password (letters, digits and a few symbols)."""
    alphabet = string.ascii_letters + string.digits + "-_.!@#%"
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isdigit() for c in candidate) and any(c.isalpha() for c in candidate):
            return candidate


def check_new_password(new_password: str, *, username: str, current_password: str | None = None) -> None:
    """Refuse weak new passwords with a 400 naming the field."""
    problems = []
    if len(new_password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    if len(new_password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters")
    if username and username.lower() in new_password.lower():
        problems.append("must not contain the user name")
    if current_password is not None and new_password == current_password:
        problems.append("must differ from the current password")
    if len(set(new_password)) < 5:
        problems.append("too few distinct characters")
    if problems:
        raise ValidationFailed(
            "new password is too weak",
            fields=[{"field": "new_password", "message": "; ".join(problems)}],
        )
