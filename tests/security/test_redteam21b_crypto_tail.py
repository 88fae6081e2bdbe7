"""Red team, issue 21, second round: F2's check (``crypto._one_pass`` refuses a source not read
to its end) on the message shapes older code may have written. All held: bytes after an
unframed, a signed or a 4 KiB-frame message are refused as DecryptionRefused (a 403 domain
error, never a 500), and the same messages without a tail still decrypt."""

from __future__ import annotations

import io
import os

import aws_encryption_sdk
import pytest
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.identifiers import Algorithm

from tenant_security import crypto
from tenant_security.errors import DomainError

KEY_ID, KEY = "subject-key-1", os.urandom(32)
CONTEXT = {"tenant_id": "acme", "purpose": "pii"}
SHAPES = {
    "unframed": {"frame_length": 0, "algorithm": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY},
    "signed": {"algorithm": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384},
    "4kib": {"frame_length": 4096, "algorithm": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY},
    "exact-frames": {"frame_length": 4096, "algorithm": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY},
}


def older(shape: str, data: bytes) -> bytes:
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    ciphertext, _ = client.encrypt(
        source=io.BytesIO(data),
        key_provider=crypto._raw_key(KEY_ID, KEY),
        encryption_context=CONTEXT,
        **SHAPES[shape],
    )
    return bytes(ciphertext)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_older_shapes_decrypt_and_refuse_a_tail(shape: str) -> None:
    data = os.urandom(8192 if shape == "exact-frames" else 5000)
    message = older(shape, data)
    assert crypto.decrypt_with_key(message, KEY_ID, KEY, CONTEXT) == data
    for tail in (b"\x00", message):
        with pytest.raises(crypto.DecryptionRefused) as refused:
            crypto.decrypt_with_key(message + tail, KEY_ID, KEY, CONTEXT)
        assert isinstance(refused.value, DomainError)
        assert refused.value.status == 403
