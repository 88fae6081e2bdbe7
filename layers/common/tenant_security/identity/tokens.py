"""JWTs signed by a KMS asymmetric key (ES256), verified with the cached public key.

The private key never leaves KMS: signing is one KMS ``Sign`` call per issued token; verification
needs only the public key, fetched once per key id (``kid``) and kept for the life of the
execution environment, so a warm authorizer makes no KMS call. Only ES256 is accepted, only from
known key ids: ``alg: none`` and HS256 signed with the public key are refused.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from tenant_security.errors import Unauthorized

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

ALGORITHM = "ES256"
ACCESS = "access"
MFA_CHALLENGE = "mfa_challenge"
MFA_ENROLLMENT = "mfa_enrollment"
SCOPE_FULL = "full"
SCOPE_PASSWORD_CHANGE = "password_change"  # noqa: S105 - a scope name
# Authentication methods (RFC 8176) in the ``amr`` claim; either MFA method satisfies mfa_required.
AMR_TOTP = ("pwd", "otp")
AMR_BACKUP_CODE = ("pwd", "mfa")
MFA_METHODS = frozenset({"otp", "mfa"})
MAX_ACCESS_TTL = 15 * 60
CHALLENGE_TTL = 5 * 60
ENROLLMENT_TTL = 15 * 60
LEEWAY_SECONDS = 30
REQUIRED_CLAIMS = ("iss", "aud", "sub", "tenant_id", "iat", "exp", "jti", "token_use")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class KmsSigner:
    """Signs with a KMS ECC_NIST_P256 key; the JWS signature is the raw r||s form."""

    def __init__(self, kms: KMSClient, key_id: str) -> None:
        self.kms = kms
        self.key_id = key_id

    def sign(self, message: bytes) -> bytes:
        der = self.kms.sign(
            KeyId=self.key_id, Message=message, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
        )["Signature"]
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class TokenIssuer:
    """Issues the platform's tokens."""

    def __init__(
        self, signer: KmsSigner, issuer: str, audience: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.signer = signer
        self.issuer = issuer
        self.audience = audience
        self.clock = clock

    def issue(
        self, *, subject: str, tenant_id: str, token_use: str, ttl: int, **claims: Any
    ) -> tuple[str, dict[str, Any]]:
        """A signed token and its claims."""
        if token_use == ACCESS and ttl > MAX_ACCESS_TTL:
            raise ValueError("access tokens live at most 15 minutes")
        now = int(self.clock())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "tenant_id": tenant_id,
            "token_use": token_use,
            "iat": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.signer.key_id}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
        )
        signature = self.signer.sign(signing_input.encode())
        return f"{signing_input}.{_b64url(signature)}", payload


class PublicKeys:
    """The public halves of the known signing keys, fetched from KMS once each."""

    def __init__(self, kms: KMSClient, key_ids: Sequence[str]) -> None:
        self.kms = kms
        self.key_ids = tuple(k for k in key_ids if k)
        self._keys: dict[str, EllipticCurvePublicKey] = {}
        self._lock = threading.Lock()

    def get(self, kid: object) -> EllipticCurvePublicKey:
        """The key for ``kid``; 401 for a key id that is not ours."""
        if not isinstance(kid, str) or kid not in self.key_ids:
            raise Unauthorized("unknown signing key")
        with self._lock:
            if kid not in self._keys:
                der = self.kms.get_public_key(KeyId=kid)["PublicKey"]
                key = load_der_public_key(der)
                if not isinstance(key, EllipticCurvePublicKey):
                    raise Unauthorized("signing key is not an EC key")
                self._keys[kid] = key
            return self._keys[kid]

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set of every known key."""
        keys = []
        for kid in self.key_ids:
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.get(kid)))
            keys.append({**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": keys}


class TokenVerifier:
    """Verifies the platform's tokens: signature, algorithm, key id, issuer, audience, expiry, use."""

    def __init__(
        self, keys: PublicKeys, issuer: str, audience: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.clock = clock

    def verify(self, token: str, token_use: str) -> dict[str, Any]:
        """The claims of a valid token of the given use; 401 otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("token algorithm not accepted")
        key = self.keys.get(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS), "verify_iat": True},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid token") from exc
        if claims["exp"] < self.clock() - LEEWAY_SECONDS:
            raise Unauthorized("token expired")
        if claims.get("token_use") != token_use:
            raise Unauthorized("token of another use")
        if token_use == ACCESS and claims["exp"] - claims["iat"] > MAX_ACCESS_TTL:
            raise Unauthorized("token lifetime too long")
        return claims
