"""Token verification refuses everything but our own ES256 tokens (forgeries, alg tricks, expiry)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tenant_security.errors import Unauthorized
from tenant_security.identity.tokens import ACCESS, MFA_CHALLENGE, TokenIssuer, TokenVerifier
from tests.support.identity_fakes import LocalKeys, LocalSigner

ISSUER, AUDIENCE = "dcisionai-tenant-security", "dcisionai-api"


@pytest.fixture
def signer() -> LocalSigner:
    return LocalSigner("key-1")


@pytest.fixture
def verifier(signer: LocalSigner) -> TokenVerifier:
    return TokenVerifier(LocalKeys(signer), ISSUER, AUDIENCE)  # type: ignore[arg-type]


def issue(
    signer: LocalSigner, issuer: str = ISSUER, clock: float | None = None, ttl: int = 300, **claims: object
) -> str:
    token_issuer = TokenIssuer(signer, issuer, AUDIENCE, clock=lambda: clock or time.time())  # type: ignore[arg-type]
    token, _ = token_issuer.issue(
        subject="alice", tenant_id="acme", token_use=ACCESS, ttl=ttl, roles=["viewer"], sid="s1", **claims
    )
    return token


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_token_verifies(signer: LocalSigner, verifier: TokenVerifier) -> None:
    claims = verifier.verify(issue(signer), ACCESS)
    assert (claims["sub"], claims["tenant_id"], claims["roles"], claims["iss"], claims["aud"]) == (
        "alice",
        "acme",
        ["viewer"],
        ISSUER,
        AUDIENCE,
    )
    assert claims["exp"] - claims["iat"] == 300
    assert claims["jti"]


def test_access_tokens_live_at_most_15_minutes(signer: LocalSigner) -> None:
    with pytest.raises(ValueError, match="15 minutes"):
        issue(signer, ttl=901)


def test_expired(signer: LocalSigner, verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized):
        verifier.verify(issue(signer, clock=time.time() - 3600), ACCESS)


def test_forged_with_another_key_under_our_kid(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized):
        verifier.verify(issue(LocalSigner("key-1")), ACCESS)


def test_unknown_kid(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized):
        verifier.verify(issue(LocalSigner("key-2")), ACCESS)


def test_wrong_issuer(signer: LocalSigner, verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized):
        verifier.verify(issue(signer, issuer="someone-else"), ACCESS)


def test_alg_none(signer: LocalSigner, verifier: TokenVerifier) -> None:
    _header, payload, _ = issue(signer).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["platform-admin"]
    for alg in ("none", "None", "NONE"):
        token = f"{b64({'alg': alg, 'typ': 'JWT', 'kid': 'key-1'})}.{b64(claims)}."
        with pytest.raises(Unauthorized):
            verifier.verify(token, ACCESS)


def test_hs256_signed_with_the_public_key(signer: LocalSigner, verifier: TokenVerifier) -> None:
    public_pem = signer.private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "tenant_id": "acme",
        "iat": now,
        "exp": now + 300,
        "jti": "x",
        "token_use": ACCESS,
        "roles": ["platform-admin"],
        "sid": "s1",
    }
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "key-1"})
    body = b64(claims)
    import hashlib
    import hmac

    signature = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(Unauthorized):
        verifier.verify(token, ACCESS)
    with pytest.raises(jwt.PyJWTError):  # and the library itself refuses the PEM as an HMAC key
        jwt.decode(token, public_pem, algorithms=["HS256"], audience=AUDIENCE)


def test_a_tampered_payload(signer: LocalSigner, verifier: TokenVerifier) -> None:
    header, payload, signature = issue(signer).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["tenant_id"] = "other"
    with pytest.raises(Unauthorized):
        verifier.verify(f"{header}.{b64(claims)}.{signature}", ACCESS)


def test_a_token_of_another_use(signer: LocalSigner, verifier: TokenVerifier) -> None:
    challenge, _ = TokenIssuer(signer, ISSUER, AUDIENCE).issue(  # type: ignore[arg-type]
        subject="alice", tenant_id="acme", token_use=MFA_CHALLENGE, ttl=300
    )
    with pytest.raises(Unauthorized):
        verifier.verify(challenge, ACCESS)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "eyJhbGciOiJFUzI1NiJ9..", "x" * 5000])
def test_garbage(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(Unauthorized):
        verifier.verify(garbage, ACCESS)
