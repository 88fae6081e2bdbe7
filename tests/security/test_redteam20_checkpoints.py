"""Red team, issue 20: checkpoint texts and bundles built to crash the verifiers instead of being
named. ``parse_signed`` takes ``str.isdigit`` for a tree size, which is true of digits ``int``
refuses ("²", "³", ...) and of a 5000-digit number (Python's int-from-string limit); the offline
bundle's consistency proof is iterated without a type check. "Every kind of tamper is named":
a crash names none, and the online verifier's 500 hides every other problem of the trail."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tenant_security.audit.chain import GENESIS_HASH, canonical, checkpoint_key, seal
from tenant_security.audit.checkpoints import parse_signed, signed_text
from tenant_security.audit.proof_check import BUNDLE_FORMAT, ProofError, leaf_of, verify_bundle
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack

KEY_ID = "k1"
ODD_SIZES = ["\u00b2", "\u00b3\u00b9", "9" * 5000]  # isdigit() is True, int() raises


@pytest.mark.parametrize("size_text", ODD_SIZES, ids=["superscript-2", "superscript-31", "5000-digits"])
def test_parse_signed_refuses_a_size_it_cannot_read_instead_of_raising(size_text: str) -> None:
    text = f"dcisionai-tenant-security/audit/acme\n{size_text}\n{'A' * 43}=\ntimestamp t\nchain c\n"
    assert parse_signed(text) is None


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _jwks(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()

    def b64u(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).decode().rstrip("=")

    return {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "x": b64u(numbers.x),
                "y": b64u(numbers.y),
                "kid": KEY_ID,
                "alg": "ES256",
                "use": "sig",
            }
        ]
    }


def _bundle(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    record = seal({"sequence": 1, "tenant_id": "acme", "prev_hash": GENESIS_HASH, "action": "x"})
    stored = canonical(record)
    root = base64.b64encode(leaf_of(stored)).decode()
    text = signed_text("acme", 1, root, "2026-12-02T10:00:00+00:00", record["hash"])
    signature = base64.b64encode(key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))).decode()
    checkpoint = {
        "tenant_id": "acme",
        "tree_size": 1,
        "root_hash": root,
        "key_id": KEY_ID,
        "signature": signature,
        "signed": text,
    }
    return {
        "format": BUNDLE_FORMAT,
        "tenant_id": "acme",
        "keys": _jwks(key),
        "checkpoint": checkpoint,
        "records": [{"sequence": 1, "stored": base64.b64encode(stored).decode(), "audit_path": []}],
    }


def test_the_honest_bundle_of_these_tests_is_valid() -> None:
    assert verify_bundle(_bundle(_key()))["status"] == "VALID"


@pytest.mark.parametrize("size_text", ODD_SIZES, ids=["superscript-2", "superscript-31", "5000-digits"])
def test_a_bundle_whose_checkpoint_text_has_an_odd_size_is_invalid_not_a_crash(size_text: str) -> None:
    bundle = _bundle(_key())
    signed = bundle["checkpoint"]["signed"].replace("\n1\n", f"\n{size_text}\n", 1)
    forged = {**bundle, "checkpoint": {**bundle["checkpoint"], "signed": signed}}
    try:
        report = verify_bundle(forged)
    except ProofError:
        return  # refused as "not a bundle": the CLI reports it (exit 2), fine
    assert report["status"] == "INVALID"


@pytest.mark.parametrize("proof", [5, True, {"a": 1}, 1.5])
def test_a_consistency_proof_that_is_not_a_list_is_named_not_a_crash(proof: Any) -> None:
    key = _key()
    bundle = _bundle(key)
    bundle["consistency"] = {"first": 1, "second": 1, "proof": proof, "checkpoint": bundle["checkpoint"]}
    try:
        report = verify_bundle(bundle)
    except ProofError:
        return
    assert report["status"] == "INVALID"


# ---------------------------------------------------------------------- the online verifier
@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 4, "acme") as built:
        yield built


@pytest.mark.parametrize("size_text", ODD_SIZES[:2], ids=["superscript-2", "superscript-31"])
def test_a_planted_checkpoint_with_an_odd_size_is_named_by_the_verifier_not_a_500(
    stack: AuditStack, size_text: str
) -> None:
    writer = stack.writer()
    for i in range(6):
        writer.append(activity_event("acme", i))
    bucket = stack.settings.audit_bucket("acme")
    genuine = json.loads(stack.objects.read(bucket, checkpoint_key(4)))
    planted = {**genuine, "signed": genuine["signed"].replace("\n4\n", f"\n{size_text}\n", 1)}
    now = datetime.now(UTC)
    # someone with s3:PutObject on the audit bucket (no signing key) adds an object
    stack.objects.put_once(
        bucket, checkpoint_key(5), canonical(planted), now + timedelta(days=1), "application/json"
    )
    report = stack.verifier().verify("acme")
    assert report["status"] == "INVALID"
    assert (5, "bad_checkpoint_signature") in [(p["sequence"], p["kind"]) for p in report["problems"]]
