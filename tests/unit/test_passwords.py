"""argon2id hashing with OWASP parameters, and the new-password rules."""

from __future__ import annotations

import pytest

from tenant_security.errors import ValidationFailed
from tenant_security.identity.passwords import (
    check_new_password,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_hashes_verify_and_differ_per_user() -> None:
    first, second = hash_password("same password 123"), hash_password("same password 123")
    assert first != second  # a random salt per hash
    assert verify_password(first, "same password 123")
    assert verify_password(second, "same password 123")
    assert not verify_password(first, "same password 124")
    assert first.startswith("$argon2id$v=19$m=19456,t=2,p=1$")  # OWASP: 19 MiB, 2 passes, 1 lane
    assert not needs_rehash(first)


def test_an_unknown_user_never_verifies() -> None:
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


def test_generated_passwords_are_random_and_mixed() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 20 and any(c.isdigit() for c in p) for p in passwords)


@pytest.mark.parametrize(
    ("new", "current"),
    [
        ("short1", None),
        ("alice-is-my-name-1", None),
        ("same-as-before-123", "same-as-before-123"),
        ("aaaaaaaaaaaaaaaa", None),
    ],
)
def test_weak_new_passwords_are_refused(new: str, current: str | None) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_new_password(new, username="alice", current_password=current)
    assert caught.value.fields
    assert caught.value.fields[0]["field"] == "new_password"


def test_a_good_new_password_passes() -> None:
    check_new_password("correct horse battery staple", username="alice", current_password="old one 123")
