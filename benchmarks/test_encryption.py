"""Envelope encryption (tenant_security.crypto, the Encryption SDK with cached data keys) against
raw AES-GCM from `cryptography` on the same data, 1 KiB and 1 MiB, in the same run; and the KMS
calls per 1,000 operations with warm caches. In-process moto; bounded rounds."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenant_security import crypto
from tests.support.moto import mocked_aws

SIZES = {"1KiB": 1024, "1MiB": 1024 * 1024}
ACCOUNT = "123456789012"
kms_calls: Counter[str] = Counter()


@pytest.fixture(scope="module")
def key_arn() -> Iterator[str]:
    mp = pytest.MonkeyPatch()
    backend = __import__("moto.kms.models", fromlist=["KmsBackend"]).KmsBackend
    for op in ("generate_data_key", "decrypt"):  # (moto's GenerateDataKey calls its own encrypt)
        original = getattr(backend, op)

        def counted(self: Any, *args: Any, _op: str = op, _original: Any = original, **kwargs: Any) -> Any:
            kms_calls[_op] += 1
            return _original(self, *args, **kwargs)

        mp.setattr(backend, op, counted)
    with mocked_aws(mp):
        yield str(boto3.client("kms").create_key()["KeyMetadata"]["Arn"])
    crypto.reset_caches()
    mp.undo()


@pytest.mark.parametrize("size", SIZES)
def test_envelope_encrypt_and_decrypt(benchmark: Any, key_arn: str, size: str) -> None:
    data = os.urandom(SIZES[size])
    crypto.decrypt_data("acme", crypto.encrypt_data("acme", data, key_arn, "bench"), "bench", ACCOUNT)  # warm
    kms_calls.clear()
    rounds = 1000 if size == "1KiB" else 20

    def round_trip() -> None:
        ciphertext = crypto.encrypt_data("acme", data, key_arn, "bench")
        assert crypto.decrypt_data("acme", ciphertext, "bench", ACCOUNT) == data

    benchmark.pedantic(round_trip, rounds=rounds, iterations=1)
    per_thousand = {op: round(n * 1000 / rounds, 1) for op, n in sorted(kms_calls.items())}
    benchmark.extra_info["kms_calls_per_1000_round_trips"] = per_thousand
    rate = 1 / benchmark.stats.stats.mean
    print(f"\nESDK {size}: {rate:.0f} round trips/s, KMS calls per 1,000: {per_thousand}")
    # the cache lives 5 minutes and 1,000 messages: a warm function asks KMS at most a few times
    assert sum(kms_calls.values()) <= 2 * (rounds // 1000 + 1)


@pytest.mark.parametrize("size", SIZES)
def test_raw_aes_gcm(benchmark: Any, size: str) -> None:
    data = os.urandom(SIZES[size])
    aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def round_trip() -> None:
        nonce = os.urandom(12)
        assert aead.decrypt(nonce, aead.encrypt(nonce, data, b"acme"), b"acme") == data

    benchmark.pedantic(round_trip, rounds=1000 if size == "1KiB" else 20, iterations=1)
    print(f"\nraw AES-GCM {size}: {1 / benchmark.stats.stats.mean:.0f} round trips/s")
