"""Red team, issue 21 part 1: the Encryption SDK path read a frame at a time (crypto._one_pass).

Held (these pass): KMS throttled on Decrypt is still told apart from a refusal when the error
comes out of the stream's first read rather than the one-shot call; a tampered body, a message
of another context, a signed message with a broken signature, a truncation of a signed or an
unframed message are refused; 4 KiB-frame messages under KMS (cached and not) still decrypt;
empty plaintext round-trips; the data key of a warm cache is reused (no KMS call per message).

Finding F2 (low, not a regression: the one-shot call did the same): bytes after the end of a
message are ignored, so ``ciphertext + anything`` (even a second, whole message) decrypts to
the first message's plaintext; decryption should refuse anything but exactly one message.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aws_encryption_sdk
import boto3
import botocore.client
import pytest
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.identifiers import Algorithm
from botocore.exceptions import ClientError

from tenant_security import crypto
from tenant_security.errors import ServiceUnavailable
from tests.support.moto import mocked_aws

ACCOUNT = "123456789012"
KEY_ID, KEY = "subject-key-1", os.urandom(32)
CONTEXT = {"tenant_id": "acme", "purpose": "pii"}


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Counter[str]]]:
    calls: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counted(self: Any, operation: str, params: Any) -> Any:
        if self.meta.service_model.service_name == "kms":
            calls[operation] += 1
            if calls.get("throttle") and operation == "Decrypt":
                raise ClientError(
                    {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation
                )
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    with mocked_aws(monkeypatch):
        yield str(boto3.client("kms").create_key()["KeyMetadata"]["Arn"]), calls


def _old_client() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )


@pytest.mark.parametrize("cached", [False, True])
def test_kms_throttled_on_decrypt_is_unavailable_not_refused(
    kms: tuple[str, Counter[str]], cached: bool
) -> None:
    key_arn, calls = kms
    ciphertext = crypto.encrypt(os.urandom(300_000), key_arn, CONTEXT, cached=cached)
    crypto.reset_caches()  # a cold function: the data key must come from KMS
    calls["throttle"] = 1
    with pytest.raises(ServiceUnavailable):
        crypto.decrypt(ciphertext, CONTEXT, ACCOUNT, cached=cached)
    calls["throttle"] = 0
    assert len(crypto.decrypt(ciphertext, CONTEXT, ACCOUNT, cached=cached)) == 300_000


@pytest.mark.parametrize("where", ["header", "first frame", "last frame"])
def test_a_tampered_kms_message_is_refused_not_unavailable(kms: tuple[str, Counter[str]], where: str) -> None:
    key_arn, _ = kms
    ciphertext = bytearray(crypto.encrypt(os.urandom(600_000), key_arn, CONTEXT, cached=True))
    spot = {"header": 30, "first frame": len(ciphertext) - 600_000 - 10, "last frame": len(ciphertext) - 20}[
        where
    ]
    ciphertext[spot] ^= 1
    with pytest.raises(crypto.DecryptionRefused):
        crypto.decrypt(bytes(ciphertext), CONTEXT, ACCOUNT, cached=True)


@pytest.mark.parametrize("cached", [False, True])
def test_a_4_kib_frame_kms_message_written_before_still_decrypts(
    kms: tuple[str, Counter[str]], cached: bool
) -> None:
    key_arn, _ = kms
    data = os.urandom(256 * 1024)  # exactly 64 frames and an empty final one
    old, header = _old_client().encrypt(
        source=data,
        key_provider=aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn]),
        encryption_context=CONTEXT,
    )
    assert header.frame_length == 4096
    assert crypto.decrypt(old, CONTEXT, ACCOUNT, cached=cached) == data
    with pytest.raises(crypto.DecryptionRefused):
        crypto.decrypt(old, {**CONTEXT, "tenant_id": "globex"}, ACCOUNT, cached=cached)


def test_a_warm_cache_reuses_its_data_key(kms: tuple[str, Counter[str]]) -> None:
    key_arn, calls = kms
    crypto.decrypt_data("acme", crypto.encrypt_data("acme", b"warm", key_arn, "p"), "p", ACCOUNT)
    calls.clear()
    for size in (0, 1, 300_000):
        data = os.urandom(size)
        assert (
            crypto.decrypt_data("acme", crypto.encrypt_data("acme", data, key_arn, "p"), "p", ACCOUNT) == data
        )
    assert sum(calls.values()) == 0, calls


def test_a_signed_message_is_checked_to_its_footer() -> None:
    signed, _ = _old_client().encrypt(
        source=os.urandom(300_000),
        key_provider=crypto._raw_key(KEY_ID, KEY),
        encryption_context=CONTEXT,
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
    )
    assert len(crypto.decrypt_with_key(signed, KEY_ID, KEY, CONTEXT)) == 300_000
    broken = bytearray(signed)
    broken[-5] ^= 1
    with pytest.raises(crypto.DecryptionRefused):
        crypto.decrypt_with_key(bytes(broken), KEY_ID, KEY, CONTEXT)
    for cut in range(1, 120):  # the footer, cut anywhere (or left out whole)
        with pytest.raises(crypto.DecryptionRefused):
            crypto.decrypt_with_key(signed[:-cut], KEY_ID, KEY, CONTEXT)


def test_an_unframed_message_cut_anywhere_in_its_tail_is_refused() -> None:
    unframed, _ = _old_client().encrypt(
        source=os.urandom(5000),
        key_provider=crypto._raw_key(KEY_ID, KEY),
        encryption_context=CONTEXT,
        frame_length=0,
    )
    assert len(crypto.decrypt_with_key(unframed, KEY_ID, KEY, CONTEXT)) == 5000
    for cut in range(1, 40):
        with pytest.raises(crypto.DecryptionRefused):
            crypto.decrypt_with_key(unframed[:-cut], KEY_ID, KEY, CONTEXT)


@pytest.mark.parametrize("tail", [b"X", b"\x00" * 16, "a second message"])
def test_f2_bytes_after_the_end_of_a_message_are_refused(tail: bytes | str) -> None:
    first = crypto.encrypt_with_key(b"the real record", KEY_ID, KEY, CONTEXT)
    appended = (
        crypto.encrypt_with_key(b"something else", KEY_ID, KEY, CONTEXT) if isinstance(tail, str) else tail
    )
    with pytest.raises(crypto.DecryptionRefused):
        crypto.decrypt_with_key(first + appended, KEY_ID, KEY, CONTEXT)


def test_the_cached_data_key_is_renewed_after_its_message_bound(kms: tuple[str, Counter[str]]) -> None:
    """The caching materials manager's message bound holds on the stream path (the plaintext
    length is known to it: bytes are seekable)."""
    key_arn, calls = kms
    crypto.encrypt_data("acme", b"first", key_arn, "p")
    calls.clear()
    for _ in range(crypto.CACHE_MAX_MESSAGES):
        crypto.encrypt_data("acme", b"x", key_arn, "p")
    assert calls["GenerateDataKey"] == 1, calls  # the 1,001st message of the key asks for a new one
