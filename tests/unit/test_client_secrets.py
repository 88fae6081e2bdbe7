"""API client secrets: the scanner-matchable format with its checksum, and verifiers bound to the
client id, compared candidate by candidate."""

from __future__ import annotations

import re
import string

import pytest

from tenant_security.identity import client_secrets
from tenant_security.identity.client_secrets import (
    SECRET_PATTERN,
    SECRET_PREFIX,
    VERIFIER_CHARS,
    matches,
    new_secret,
    verifier,
    well_formed,
)

BASE62 = set(string.digits + string.ascii_letters)
KEY = b"k" * 32
CLIENT = "acme_0123456789abcdef0123"


def test_a_new_secret_is_tsk_then_49_base62_characters() -> None:
    made = {new_secret() for _ in range(200)}
    assert len(made) == 200  # 256 random bits: never the same twice
    for secret in made:
        assert secret.startswith(SECRET_PREFIX)
        assert len(secret) == 53
        assert set(secret[len(SECRET_PREFIX) :]) <= BASE62
        assert well_formed(secret)
        assert re.fullmatch(SECRET_PATTERN, secret)


def test_the_pattern_finds_a_secret_inside_text_and_nothing_longer() -> None:
    secret = new_secret()
    leaked = f'export CLIENT_SECRET="{secret}"\n# {secret}, again'
    assert re.findall(SECRET_PATTERN, leaked) == [secret, secret]
    assert not re.search(SECRET_PATTERN, f"x{secret}")  # glued to a word: not this format
    assert not re.search(SECRET_PATTERN, f"{secret}Z")  # one character too many
    assert not re.search(SECRET_PATTERN, secret[:-1])


def test_the_checksum_refuses_a_changed_character_anywhere() -> None:
    secret = new_secret()
    for position in range(len(SECRET_PREFIX), len(secret)):
        replacement = "A" if secret[position] != "A" else "B"
        changed = secret[:position] + replacement + secret[position + 1 :]
        assert not well_formed(changed), position


@pytest.mark.parametrize(
    "broken",
    [
        lambda s: s[:-1],  # truncated paste
        lambda s: s[:20],
        lambda s: s + "0",
        lambda s: "tsK_" + s[4:],  # prefix
        lambda s: "sk_" + s[4:] + "0",
        lambda s: s[:10] + "-" + s[11:],  # not base62
        lambda s: s[:10] + "é" + s[11:],
        lambda s: " " + s[:-1],
        lambda s: "",
    ],
)
def test_malformed_secrets_are_refused(broken: object) -> None:
    assert not well_formed(broken(new_secret()))  # type: ignore[operator]


def test_a_verifier_is_bound_to_the_key_and_the_client_id() -> None:
    secret = new_secret()
    mine = verifier(KEY, CLIENT, secret)
    assert len(mine) == VERIFIER_CHARS
    assert secret not in mine
    assert verifier(KEY, CLIENT, secret) == mine  # deterministic
    assert verifier(KEY, "acme_ffffffffffffffffffff", secret) != mine
    assert verifier(KEY, "globex_0123456789abcdef0123", secret) != mine
    assert verifier(b"j" * 32, CLIENT, secret) != mine
    # the separator: (id "a", secret "bc") is not (id "ab", secret "c")
    assert verifier(KEY, "a", "bc") != verifier(KEY, "ab", "c")


def test_matches_finds_the_secret_among_candidates_and_nothing_else() -> None:
    secret, other = new_secret(), new_secret()
    mine = verifier(KEY, CLIENT, secret)
    theirs = verifier(KEY, CLIENT, other)
    assert matches(KEY, CLIENT, secret, [mine])
    assert matches(KEY, CLIENT, secret, [theirs, mine])  # the previous secret in its grace
    assert matches(KEY, CLIENT, other, [theirs, mine])
    assert not matches(KEY, CLIENT, new_secret(), [theirs, mine])
    assert not matches(KEY, CLIENT, secret, [])
    # the same verifier under another client id verifies nothing
    assert not matches(KEY, "acme_ffffffffffffffffffff", secret, [mine])
    # no key (the tenant has none, or the client is unusable): never True, even for a verifier
    # made under the zero key the decoy uses
    assert not matches(None, CLIENT, secret, [mine])
    assert not matches(None, CLIENT, secret, [verifier(b"\x00" * 32, CLIENT, secret)])


def test_matches_compares_every_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the time taken does not tell which candidate matched, nor whether any
    exists (an unknown client is compared against a decoy)."""
    compared: list[str] = []
    real = client_secrets.hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(client_secrets.hmac, "compare_digest", counting)
    secret = new_secret()
    mine = verifier(KEY, CLIENT, secret)
    candidates = [mine, verifier(KEY, CLIENT, new_secret()), verifier(KEY, CLIENT, new_secret())]
    assert matches(KEY, CLIENT, secret, candidates)
    assert compared == candidates  # the match first, and still all three compared
    compared.clear()
    assert not matches(None, CLIENT, secret, [])
    assert len(compared) == 1  # the decoy: the same work as one candidate
