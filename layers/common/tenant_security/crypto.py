"""Envelope encryption with the AWS Encryption SDK, bound to a tenant and a purpose.

Every message uses a key-committing suite under the REQUIRE_ENCRYPT_REQUIRE_DECRYPT policy and
carries ``tenant_id`` and ``purpose`` in its encryption context (KMS binds the data key to it);
decryption checks that context against what the caller expects, so a ciphertext of tenant A can
never be accepted as tenant B's, nor an MFA secret as anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from tenant_security.errors import DomainError

PURPOSE_MFA_SECRET = "mfa-secret"  # noqa: S105 - a label, not a secret


class DecryptionRefused(DomainError):
    """A ciphertext whose encryption context is not the expected one (or that does not decrypt)."""

    status, code = 403, "decryption_refused"


@cache
def _client() -> Any:
    import aws_encryption_sdk
    from aws_encryption_sdk import CommitmentPolicy

    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )


@cache
def _encrypt_provider(key_arn: str) -> Any:
    import aws_encryption_sdk

    return aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn])


@cache
def _decrypt_provider(account_id: str, partition: str) -> Any:
    import aws_encryption_sdk
    from aws_encryption_sdk.key_providers.kms import DiscoveryFilter

    # Any key of our own account; the context check below binds the message to its tenant.
    return aws_encryption_sdk.DiscoveryAwsKmsMasterKeyProvider(
        discovery_filter=DiscoveryFilter(account_ids=[account_id], partition=partition)
    )


def encryption_context(tenant_id: str, purpose: str, **extra: str) -> dict[str, str]:
    """The context of a tenant's message: tenant, purpose and whatever else names the data."""
    return {"tenant_id": tenant_id, "purpose": purpose, **extra}


def encrypt(plaintext: bytes, key_arn: str, context: Mapping[str, str]) -> bytes:
    """Encrypt under ``key_arn`` (a key or alias ARN) with ``context`` bound to the data key."""
    from aws_encryption_sdk.identifiers import Algorithm

    if "tenant_id" not in context or "purpose" not in context:
        raise ValueError("an encryption context needs tenant_id and purpose")
    ciphertext, _header = _client().encrypt(
        source=plaintext,
        key_provider=_encrypt_provider(key_arn),
        encryption_context=dict(context),
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    )
    return bytes(ciphertext)


def decrypt(
    ciphertext: bytes, expected_context: Mapping[str, str], account_id: str, partition: str = "aws"
) -> bytes:
    """Decrypt a message of this account's keys; refuse it unless its context holds ``expected_context``."""
    try:
        plaintext, header = _client().decrypt(
            source=ciphertext, key_provider=_decrypt_provider(account_id, partition)
        )
    except Exception as exc:
        raise DecryptionRefused("ciphertext could not be decrypted") from exc
    actual = header.encryption_context
    if any(actual.get(key) != value for key, value in expected_context.items()):
        raise DecryptionRefused("ciphertext belongs to another tenant or purpose")
    return bytes(plaintext)
