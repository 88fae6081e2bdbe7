"""Envelope encryption with the AWS Encryption SDK, bound to a tenant and a purpose.

Every message uses a key-committing suite under the REQUIRE_ENCRYPT_REQUIRE_DECRYPT policy and
carries ``tenant_id`` and ``purpose`` in its encryption context (KMS binds the data key to it);
decryption checks that context against what the caller expects, so a ciphertext of tenant A can
never be accepted as tenant B's, nor an MFA secret as anything else.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from functools import cache
from typing import Any

from tenant_security.errors import DomainError, ServiceUnavailable

PURPOSE_MFA_SECRET = "mfa-secret"  # noqa: S105 - a label, not a secret
# A warm function reuses a data key for at most this long and this many messages (the caching
# materials manager), so it makes no KMS call per item.
CACHE_MAX_AGE_SECONDS = 300.0
CACHE_MAX_MESSAGES = 1000
CACHE_CAPACITY = 256
# Frame size of every message, chosen by measurement (benchmarks/test_encryption.py; README,
# "Encryption SDK path"): with frames read one at a time (_one_pass), a 1 MiB round trip runs at
# about 0.3x raw AES-GCM with 256 KiB frames, 0.22x with 64 KiB and 0.1x with the SDK's 4 KiB
# default (each frame is its own IV, tag and Python-level work). A reader holds one frame before it
# is authenticated: 256 KiB is well within a Lambda's memory.
FRAME_LENGTH = 256 * 1024
RAW_KEY_PROVIDER = "dcisionai-raw"


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


def _botocore() -> Any:
    # The SDK's own botocore session, carrying the same call hooks as the shared clients.
    from tenant_security import aws

    return aws.sdk_botocore_session()


@cache
def _encrypt_provider(key_arn: str) -> Any:
    import aws_encryption_sdk

    return aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn], botocore_session=_botocore())


@cache
def _decrypt_provider(account_id: str, partition: str) -> Any:
    import aws_encryption_sdk
    from aws_encryption_sdk.key_providers.kms import DiscoveryFilter

    # Any key of our own account; the context check below binds the message to its tenant.
    return aws_encryption_sdk.DiscoveryAwsKmsMasterKeyProvider(
        discovery_filter=DiscoveryFilter(account_ids=[account_id], partition=partition),
        botocore_session=_botocore(),
    )


@cache
def _caching_encrypt_cmm(key_arn: str) -> Any:
    import aws_encryption_sdk

    return aws_encryption_sdk.CachingCryptoMaterialsManager(
        master_key_provider=_encrypt_provider(key_arn),
        cache=aws_encryption_sdk.LocalCryptoMaterialsCache(CACHE_CAPACITY),
        max_age=CACHE_MAX_AGE_SECONDS,
        max_messages_encrypted=CACHE_MAX_MESSAGES,
    )


@cache
def _caching_decrypt_cmm(account_id: str, partition: str) -> Any:
    import aws_encryption_sdk

    return aws_encryption_sdk.CachingCryptoMaterialsManager(
        master_key_provider=_decrypt_provider(account_id, partition),
        cache=aws_encryption_sdk.LocalCryptoMaterialsCache(CACHE_CAPACITY),
        max_age=CACHE_MAX_AGE_SECONDS,
    )


def reset_caches() -> None:
    """Forget clients, providers and cached data keys (tests that start a new moto)."""
    for cached in (_client, _encrypt_provider, _decrypt_provider, _caching_encrypt_cmm, _caching_decrypt_cmm):
        cached.cache_clear()


def _one_pass(mode: str, source: bytes, **kwargs: Any) -> tuple[bytes, Any]:
    """Encrypt (``mode`` "e") or decrypt ("d") ``source`` in one pass: the message and its header.

    The SDK's one-shot ``encrypt``/``decrypt`` read their stream in 8 KiB lines, each copying the
    rest of the stream's buffer (a 1 MiB message is copied about 128 times), and a read of the
    whole message copies the rest of the plaintext once per frame; read a frame at a time, each
    byte is copied a fixed number of times, whatever the message's size."""
    from aws_encryption_sdk.exceptions import SerializationError

    source_stream = io.BytesIO(source)
    with _client().stream(mode=mode, source=source_stream, **kwargs) as stream:
        parts = []
        while chunk := stream.read(FRAME_LENGTH):
            parts.append(chunk)
        header = stream.header
    if mode == "d" and source_stream.tell() != len(source):
        # the SDK stops at the message's end: bytes after it (another message, anything) would
        # make a stored value malleable (red team, issue 21)
        raise SerializationError("bytes after the end of the message")
    return b"".join(parts), header


def _raw_key(key_id: str, key: bytes) -> Any:
    from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKey

    return RawMasterKey(
        provider_id=RAW_KEY_PROVIDER,
        key_id=key_id.encode(),
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=key,
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )


def _check_context(context: Mapping[str, str]) -> None:
    if "tenant_id" not in context or "purpose" not in context:
        raise ValueError("an encryption context needs tenant_id and purpose")


def _refuse_other_context(actual: Mapping[str, str], expected: Mapping[str, str]) -> None:
    if any(actual.get(key) != value for key, value in expected.items()):
        raise DecryptionRefused("ciphertext belongs to another tenant or purpose")


def encryption_context(tenant_id: str, purpose: str, **extra: str) -> dict[str, str]:
    """The context of a tenant's message: tenant, purpose and whatever else names the data."""
    return {"tenant_id": tenant_id, "purpose": purpose, **extra}


def encrypt(plaintext: bytes, key_arn: str, context: Mapping[str, str], *, cached: bool = False) -> bytes:
    """Encrypt under ``key_arn`` (a key or alias ARN) with ``context`` bound to the data key.

    ``cached``: reuse data keys through the caching materials manager (bounded age and message
    count) -- for high-volume messages such as audit records.
    """
    from aws_encryption_sdk.identifiers import Algorithm

    _check_context(context)
    source = (
        {"materials_manager": _caching_encrypt_cmm(key_arn)}
        if cached
        else {"key_provider": _encrypt_provider(key_arn)}
    )
    ciphertext, _header = _one_pass(
        "e",
        plaintext,
        encryption_context=dict(context),
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
        frame_length=FRAME_LENGTH,
        **source,
    )
    return ciphertext


def encrypt_with_key(plaintext: bytes, key_id: str, key: bytes, context: Mapping[str, str]) -> bytes:
    """Encrypt under a 256-bit key the caller holds (a per-subject key, itself KMS-wrapped)."""
    from aws_encryption_sdk.identifiers import Algorithm

    _check_context(context)
    ciphertext, _header = _one_pass(
        "e",
        plaintext,
        key_provider=_raw_key(key_id, key),
        encryption_context=dict(context),
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
        frame_length=FRAME_LENGTH,
    )
    return ciphertext


def decrypt_with_key(
    ciphertext: bytes, key_id: str, key: bytes, expected_context: Mapping[str, str]
) -> bytes:
    """Decrypt a message of :func:`encrypt_with_key`; refuse another context."""
    try:
        plaintext, header = _one_pass("d", ciphertext, key_provider=_raw_key(key_id, key))
    except Exception as exc:
        raise DecryptionRefused("ciphertext could not be decrypted") from exc
    _refuse_other_context(header.encryption_context, expected_context)
    return bytes(plaintext)


def _data_key_failed(exc: BaseException) -> bool:
    """True when the Encryption SDK could not decrypt the message's data key (KMS refused or
    failed), as opposed to a message that did not authenticate."""
    from aws_encryption_sdk.exceptions import DecryptKeyError

    from tenant_security import aws

    return any(isinstance(current, DecryptKeyError) for current in aws.causes(exc))


def _kms_unavailable(exc: BaseException, ciphertext: bytes) -> bool:
    """Whether a failed decryption is KMS being down or throttling rather than a bad message.

    The Encryption SDK swallows KMS's errors ("Unable to decrypt data key"), so on a failure
    we ask KMS about the message's key (one call, only on this path): a KMS outage answers that
    too; a key that is fine, disabled or pending deletion means the refusal stands.
    """
    from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header

    from tenant_security import aws

    if aws.is_transient(exc):
        return True
    if not _data_key_failed(exc):
        return False  # past the data key (a tampered body, a wrong tag): refused, KMS is fine
    try:
        header, _ = deserialize_header(io.BytesIO(ciphertext))
        keys = list(header.encrypted_data_keys)
        key_arns = [k.key_provider.key_info.decode() for k in keys]
    except Exception:
        return False  # not even a message: refused
    for key, key_arn in list(zip(keys, key_arns, strict=True))[:1]:
        try:
            aws.kms().describe_key(KeyId=key_arn)
            # The key is there, yet the data key did not decrypt: KMS throttles Decrypt apart
            # from DescribeKey, so ask Decrypt itself (once, on this path only): throttled or
            # down is a 503; a refusal (a wrong context, a disabled key) stands.
            aws.kms().decrypt(
                CiphertextBlob=bytes(key.encrypted_data_key),
                KeyId=key_arn,
                EncryptionContext=dict(header.encryption_context),
            )
        except Exception as probe:
            return aws.is_transient(probe)
        return True  # it decrypts now: what failed was passing (a throttle that lifted)
    return False


def decrypt(
    ciphertext: bytes,
    expected_context: Mapping[str, str],
    account_id: str,
    partition: str = "aws",
    *,
    cached: bool = False,
) -> bytes:
    """Decrypt a message of this account's keys; refuse it unless its context holds ``expected_context``."""
    source = (
        {"materials_manager": _caching_decrypt_cmm(account_id, partition)}
        if cached
        else {"key_provider": _decrypt_provider(account_id, partition)}
    )
    try:
        plaintext, header = _one_pass("d", ciphertext, **source)
    except Exception as exc:
        if _kms_unavailable(exc, ciphertext):  # not a verdict on the ciphertext
            raise ServiceUnavailable("the key service is unavailable; try again") from exc
        raise DecryptionRefused("ciphertext could not be decrypted") from exc
    _refuse_other_context(header.encryption_context, expected_context)
    return bytes(plaintext)


def encrypt_data(tenant_id: str, data: bytes, key_arn: str, purpose: str, **context: str) -> bytes:
    """Encrypt the data plane's ``data`` under a tenant key, bound to the tenant and purpose.

    Data keys come from the caching materials manager (at most 5 minutes and 1,000 messages
    each), so a warm function makes no KMS call per item.
    """
    return encrypt(data, key_arn, encryption_context(tenant_id, purpose, **context), cached=True)


def decrypt_data(
    tenant_id: str, ciphertext: bytes, purpose: str, account_id: str, partition: str = "aws", **context: str
) -> bytes:
    """Decrypt the data plane's ``ciphertext``; refuses a message of another tenant, purpose or context."""
    return decrypt(
        ciphertext, encryption_context(tenant_id, purpose, **context), account_id, partition, cached=True
    )
