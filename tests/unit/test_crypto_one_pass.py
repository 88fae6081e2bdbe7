"""The Encryption SDK path of tenant_security.crypto: 256 KiB frames read a frame at a time, messages of
the SDK's default 4 KiB frames (written before) still read, and every truncation refused."""

from __future__ import annotations

import io
import os

import aws_encryption_sdk
import pytest
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header

from tenant_security import crypto

KEY_ID, KEY = "subject-key-1", os.urandom(32)
CONTEXT = {"tenant_id": "acme", "purpose": "pii"}


FRAME = 256 * 1024


@pytest.mark.parametrize("size", [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME + 5])
def test_every_size_round_trips_with_256_kib_frames(size: int) -> None:
    data = os.urandom(size)
    ciphertext = crypto.encrypt_with_key(data, KEY_ID, KEY, CONTEXT)
    header, _ = deserialize_header(io.BytesIO(ciphertext))
    assert header.frame_length == crypto.FRAME_LENGTH == FRAME
    assert crypto.decrypt_with_key(ciphertext, KEY_ID, KEY, CONTEXT) == data


def test_a_message_of_4_kib_frames_written_before_still_decrypts() -> None:
    data = os.urandom(50_000)
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    old, header = client.encrypt(
        source=data, key_provider=crypto._raw_key(KEY_ID, KEY), encryption_context=CONTEXT
    )
    assert header.frame_length == 4096
    assert crypto.decrypt_with_key(old, KEY_ID, KEY, CONTEXT) == data


def test_a_message_cut_anywhere_is_refused() -> None:
    data = os.urandom(3 * FRAME + 100)  # four frames, the last one short
    ciphertext = crypto.encrypt_with_key(data, KEY_ID, KEY, CONTEXT)
    # a full frame is its sequence number (4), IV (12), body and tag (16); the final frame adds
    # its end marker (4) and length (4)
    body_start = len(ciphertext) - (3 * (FRAME + 32) + 100 + 40)
    frame_edges = [body_start + n * (FRAME + 32) for n in range(4)]
    # the cuts below fall where frames begin: frames 1 to 3, then the final frame's end marker
    assert [int.from_bytes(ciphertext[edge : edge + 4], "big") for edge in frame_edges] == [
        1,
        2,
        3,
        0xFFFFFFFF,
    ]
    for cut in [*frame_edges, len(ciphertext) - 1, len(ciphertext) // 2, 10]:
        with pytest.raises(crypto.DecryptionRefused):
            crypto.decrypt_with_key(ciphertext[:cut], KEY_ID, KEY, CONTEXT)
    with pytest.raises(crypto.DecryptionRefused):  # and another context
        crypto.decrypt_with_key(ciphertext, KEY_ID, KEY, {**CONTEXT, "tenant_id": "globex"})


def test_bytes_after_the_end_of_a_message_are_refused() -> None:
    """Red team, issue 21 (F2): the SDK stops reading at the message's end, so a stored value with
    anything after it (a byte, another whole message) decrypted as the first message."""
    first = crypto.encrypt_with_key(b"first", KEY_ID, KEY, CONTEXT)
    second = crypto.encrypt_with_key(b"second", KEY_ID, KEY, CONTEXT)
    for tail in (b"X", b"\x00" * 100, second):
        with pytest.raises(crypto.DecryptionRefused):
            crypto.decrypt_with_key(first + tail, KEY_ID, KEY, CONTEXT)
    assert crypto.decrypt_with_key(first, KEY_ID, KEY, CONTEXT) == b"first"
