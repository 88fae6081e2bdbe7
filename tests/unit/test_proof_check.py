"""The offline verifier (audit/proof_check.py) against the independent RFC 9162 verifier of
tests/support/rfc9162.py: every tree of 1..40 leaves, every proof, tampered proofs, forged keys,
another tenant's checkpoint and bundles whose bytes were edited."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Sequence
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tenant_security.audit import merkle
from tenant_security.audit.chain import GENESIS_HASH, canonical, seal
from tenant_security.audit.checkpoints import signed_text
from tenant_security.audit.proof_check import (
    BUNDLE_FORMAT,
    ProblemKind,
    ProofError,
    check_checkpoint,
    leaf_of,
    public_key_of,
    root_from_inclusion,
    verify_bundle,
    verify_consistency,
    verify_inclusion,
)
from tests.support import rfc9162

SIZES = range(1, 41)
KEY_ID = "checkpoint-key-1"


def _entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def _nodes(entries: Sequence[bytes]) -> dict[merkle.NodeId, bytes]:
    """Every complete subtree of the tree of ``entries``, built by appending them one by one."""
    frontier: merkle.Frontier = []
    nodes: dict[merkle.NodeId, bytes] = {}
    for size, entry in enumerate(entries):
        frontier, completed = merkle.append(frontier, size, [merkle.leaf_hash(entry)])
        nodes.update(completed)
    return nodes


def _path(index: int, size: int, nodes: dict[merkle.NodeId, bytes]) -> list[bytes]:
    return [merkle.range_hash(s, e, nodes) for s, e in merkle.inclusion_ranges(index, size)]


def _consistency(first: int, second: int, nodes: dict[merkle.NodeId, bytes]) -> list[bytes]:
    return [merkle.range_hash(s, e, nodes) for s, e in merkle.consistency_ranges(first, second)]


ENTRIES = _entries(max(SIZES))
NODES = _nodes(ENTRIES)


def _flip(value: bytes, at: int = 0) -> bytes:
    return value[:at] + bytes([value[at] ^ 1]) + value[at + 1 :]


# ---------------------------------------------------------------------- inclusion
@pytest.mark.parametrize("size", SIZES)
def test_every_inclusion_proof_of_every_tree_verifies_as_the_rfc_says(size: int) -> None:
    root = rfc9162.mth(ENTRIES[:size])
    for index in range(size):
        leaf, path = leaf_of(ENTRIES[index]), _path(index, size, NODES)
        assert rfc9162.verify_inclusion(index, size, leaf, path, root)
        assert verify_inclusion(index, size, leaf, path, root)
        assert root_from_inclusion(index, size, leaf, path) == root


@pytest.mark.parametrize("size", SIZES)
def test_a_tampered_inclusion_proof_fails_here_as_in_the_rfc(size: int) -> None:
    root = rfc9162.mth(ENTRIES[:size])
    for index in range(size):
        leaf, path = leaf_of(ENTRIES[index]), _path(index, size, NODES)
        forgeries: list[tuple[int, int, bytes, list[bytes]]] = [
            (index, size, _flip(leaf), path),  # another leaf
            (index, size, leaf, [*path, leaf]),  # a hash too many
            (index + 1, size, leaf, path),  # another position (beyond the tree for the last)
        ]
        if path:
            forgeries.append((index, size, leaf, path[:-1]))  # a hash too few
            forgeries += [
                (index, size, leaf, [*path[:i], _flip(p, 31), *path[i + 1 :]]) for i, p in enumerate(path)
            ]
        for forged in forgeries:
            assert not verify_inclusion(*forged, root), forged
            assert not rfc9162.verify_inclusion(*forged, root), forged
        assert not verify_inclusion(index, size, leaf, path, _flip(root))
        # the path of this tree against the root of the next one (a checkpoint signs both)
        if size < len(ENTRIES):
            bigger = rfc9162.mth(ENTRIES[: size + 1])
            assert not verify_inclusion(index, size + 1, leaf, path, bigger)
            assert not rfc9162.verify_inclusion(index, size + 1, leaf, path, bigger)
    with pytest.raises(ProofError):
        root_from_inclusion(size, size, leaf_of(b"x"), [])


def test_an_empty_tree_or_a_negative_index_includes_nothing() -> None:
    assert not verify_inclusion(0, 0, leaf_of(b""), [], merkle.EMPTY_ROOT)
    assert not verify_inclusion(-1, 4, leaf_of(ENTRIES[0]), _path(0, 4, NODES), rfc9162.mth(ENTRIES[:4]))


# ---------------------------------------------------------------------- consistency
@pytest.mark.parametrize("second", SIZES)
def test_every_consistency_proof_verifies_as_the_rfc_says(second: int) -> None:
    new = rfc9162.mth(ENTRIES[:second])
    for first in range(1, second + 1):
        old, proof = rfc9162.mth(ENTRIES[:first]), _consistency(first, second, NODES)
        assert rfc9162.verify_consistency(first, second, proof, old, new)
        assert verify_consistency(first, second, proof, old, new), (first, second)


@pytest.mark.parametrize("second", SIZES)
def test_a_tampered_consistency_proof_fails_here_as_in_the_rfc(second: int) -> None:
    new = rfc9162.mth(ENTRIES[:second])
    for first in range(1, second + 1):
        old, proof = rfc9162.mth(ENTRIES[:first]), _consistency(first, second, NODES)
        forgeries: list[tuple[int, int, list[bytes], bytes, bytes]] = [
            (first, second, proof, _flip(old), new),  # another older root
            (first, second, proof, old, _flip(new)),  # another newer root
            (first, second, [*proof, new], old, new),  # a hash too many
        ]
        if first < second:
            # another size, with that size's root (a checkpoint signs a size and its root)
            forgeries.append((first + 1, second, proof, rfc9162.mth(ENTRIES[: first + 1]), new))
            if second < len(ENTRIES):
                forgeries.append((first, second + 1, proof, old, rfc9162.mth(ENTRIES[: second + 1])))
            forgeries.append((first, second, proof[:-1], old, new))  # a hash too few
            forgeries += [
                (first, second, [*proof[:i], _flip(p, 7), *proof[i + 1 :]], old, new)
                for i, p in enumerate(proof)
            ]
        for forged in forgeries:
            assert not verify_consistency(*forged), (first, second, forged[2] is proof)
            assert not rfc9162.verify_consistency(*forged)


def test_a_rewritten_history_has_no_consistency_proof() -> None:
    """A trail whose record 3 was changed after a checkpoint of 5: the proof from the changed
    tree does not reach the old root."""
    rewritten = [*ENTRIES[:2], b"rewritten", *ENTRIES[3:12]]
    proof = _consistency(5, 12, _nodes(rewritten))
    assert not verify_consistency(5, 12, proof, rfc9162.mth(ENTRIES[:5]), rfc9162.mth(rewritten))
    assert not verify_consistency(0, 12, [], merkle.EMPTY_ROOT, rfc9162.mth(rewritten))
    assert not verify_consistency(12, 5, proof, rfc9162.mth(rewritten), rfc9162.mth(ENTRIES[:5]))


# ---------------------------------------------------------------------- checkpoints and bundles
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _jwks(key: ec.EllipticCurvePrivateKey, kid: str = KEY_ID) -> dict[str, Any]:
    """The JWKS as the platform publishes it (tokens.PublicKeys.jwks)."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "alg": "ES256", "use": "sig"}]}


def _checkpoint(
    key: ec.EllipticCurvePrivateKey, tenant: str, size: int, root: bytes, chain_hash: str = "ab" * 32
) -> dict[str, Any]:
    root_hash, timestamp = base64.b64encode(root).decode(), "2026-12-02T10:00:00+00:00"
    text = signed_text(tenant, size, root_hash, timestamp, chain_hash)
    signature = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "tenant_id": tenant,
        "tree_size": size,
        "root_hash": root_hash,
        "timestamp": timestamp,
        "key_id": KEY_ID,
        "signature": base64.b64encode(signature).decode(),
        "signed": text,
    }


def _records(tenant: str, n: int) -> list[bytes]:
    """The stored bytes of a chain of ``n`` records, as the writer stores them."""
    stored, prev = [], GENESIS_HASH
    for sequence in range(1, n + 1):
        record = seal({"sequence": sequence, "tenant_id": tenant, "prev_hash": prev, "action": "files:Read"})
        stored.append(canonical(record))
        prev = record["hash"]
    return stored


def _bundle(
    key: ec.EllipticCurvePrivateKey, tenant: str = "acme", size: int = 13, since: int | None = None
) -> dict[str, Any]:
    stored = _records(tenant, size)
    nodes = _nodes(stored)
    head_hash = json.loads(stored[-1])["hash"]
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "tenant_id": tenant,
        "keys": _jwks(key),
        "checkpoint": _checkpoint(key, tenant, size, rfc9162.mth(stored), head_hash),
        "records": [
            {
                "sequence": i + 1,
                "stored": base64.b64encode(body).decode(),
                "audit_path": [base64.b64encode(h).decode() for h in _path(i, size, nodes)],
            }
            for i, body in enumerate(stored)
        ],
    }
    if since is not None:
        older = _checkpoint(
            key, tenant, since, rfc9162.mth(stored[:since]), json.loads(stored[since - 1])["hash"]
        )
        proof = [base64.b64encode(h).decode() for h in _consistency(since, size, nodes)]
        bundle["consistency"] = {"first": since, "second": size, "proof": proof, "checkpoint": older}
    return bundle


def _kinds(report: dict[str, Any]) -> set[tuple[int | None, str]]:
    return {(p["sequence"], p["kind"]) for p in report["problems"]}


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 13])
def test_an_honest_bundle_is_valid(size: int) -> None:
    since = size // 2 or None
    report = verify_bundle(_bundle(_key(), size=size, since=since))
    assert report["status"] == "VALID", report["problems"]
    assert (report["checked"], report["from"], report["to"], report["tree_size"]) == (size, 1, size, size)
    assert report["consistency_checked"] is (since is not None)


def test_a_bundle_whose_record_had_one_byte_edited_names_that_record() -> None:
    bundle = _bundle(_key())
    entry = bundle["records"][6]
    stored = bytearray(base64.b64decode(entry["stored"]))
    stored[stored.index(b"files:Read")] ^= 0x20  # "Files:Read": still JSON, still its sequence
    entry["stored"] = base64.b64encode(bytes(stored)).decode()
    report = verify_bundle(bundle)
    assert report["status"] == "INVALID"
    assert (7, ProblemKind.INCLUSION_FAILED) in _kinds(report)
    assert (7, ProblemKind.RECORD_MISMATCH) in _kinds(report)  # its own hash no longer holds
    assert {seq for seq, _ in _kinds(report)} == {7}


def test_a_forged_key_or_signature_is_a_bad_checkpoint_signature() -> None:
    key = _key()
    bundle = _bundle(key)
    impostor = _bundle(_key())["keys"]  # another P-256 key under the same kid
    assert _kinds(verify_bundle(bundle, keys=impostor)) == {(13, ProblemKind.BAD_CHECKPOINT_SIGNATURE)}
    swapped = copy.deepcopy(bundle)
    swapped["keys"] = impostor
    assert _kinds(verify_bundle(swapped)) == {(13, ProblemKind.BAD_CHECKPOINT_SIGNATURE)}
    assert verify_bundle(swapped, keys=bundle["keys"])["status"] == "VALID"  # the auditor's own keys
    for forged_checkpoint in (
        {**bundle["checkpoint"], "key_id": "not-a-key"},
        {**bundle["checkpoint"], "signature": "not base64!"},
        {**bundle["checkpoint"], "signature": _checkpoint(key, "acme", 12, b"\0" * 32)["signature"]},
        {**bundle["checkpoint"], "signed": bundle["checkpoint"]["signed"].replace("\n13\n", "\n14\n")},
    ):
        report = verify_bundle({**bundle, "checkpoint": forged_checkpoint})
        assert report["status"] == "INVALID"
        assert ProblemKind.BAD_CHECKPOINT_SIGNATURE in {kind for _, kind in _kinds(report)}, forged_checkpoint


def test_a_checkpoint_of_another_tenant_or_fields_it_did_not_sign_are_named() -> None:
    key = _key()
    bundle = _bundle(key)
    theirs = _bundle(key, tenant="beta")["checkpoint"]
    report = verify_bundle({**bundle, "checkpoint": theirs})
    assert (13, ProblemKind.CHECKPOINT_MISMATCH) in _kinds(report)
    assert report["status"] == "INVALID"
    for name, value in (
        ("tree_size", 14),
        ("root_hash", base64.b64encode(b"x" * 32).decode()),
        ("tenant_id", "beta"),
    ):
        report = verify_bundle({**bundle, "checkpoint": {**bundle["checkpoint"], name: value}})
        assert (13, ProblemKind.CHECKPOINT_MISMATCH) in _kinds(report), name
    records_of_beta = _bundle(key, tenant="beta")["records"]
    report = verify_bundle({**bundle, "records": records_of_beta})  # beta's records, acme's checkpoint
    assert {kind for _, kind in _kinds(report)} == {ProblemKind.RECORD_MISMATCH, ProblemKind.INCLUSION_FAILED}


def test_a_record_at_another_position_or_a_broken_chain_is_named() -> None:
    bundle = _bundle(_key())
    moved = copy.deepcopy(bundle)
    moved["records"][3]["sequence"] = 5  # out of order and twice
    moved["records"][4]["sequence"] = 4
    report = verify_bundle(moved)
    assert (5, ProblemKind.RECORD_MISMATCH) in _kinds(report)
    assert (4, ProblemKind.MALFORMED_BUNDLE) in _kinds(report)
    # a chain resealed after record 5 was replaced: every hash holds, the tree does not
    stored = [json.loads(base64.b64decode(r["stored"])) for r in bundle["records"]]
    stored[4] = seal({**{k: v for k, v in stored[4].items() if k != "hash"}, "action": "users:Delete"})
    bundle["records"][4]["stored"] = base64.b64encode(canonical(stored[4])).decode()
    report = verify_bundle(bundle)
    assert _kinds(report) == {(5, ProblemKind.INCLUSION_FAILED), (6, ProblemKind.CHAIN_BROKEN)}


def test_a_consistency_proof_from_another_history_fails() -> None:
    key = _key()
    bundle = _bundle(key, size=13, since=5)
    other = _bundle(key, tenant="acme", size=5)  # an older checkpoint of a different trail
    other_stored = _records("acme", 5)
    other_stored[2] = b"{}"
    forked = _checkpoint(key, "acme", 5, rfc9162.mth(other_stored))
    report = verify_bundle({**bundle, "consistency": {**bundle["consistency"], "checkpoint": forked}})
    assert _kinds(report) == {(13, ProblemKind.CONSISTENCY_FAILED)}
    wrong_sizes = {**bundle["consistency"], "first": 4}
    assert _kinds(verify_bundle({**bundle, "consistency": wrong_sizes})) == {
        (13, ProblemKind.CONSISTENCY_FAILED)
    }
    unsigned = {**bundle["consistency"], "checkpoint": {**other["checkpoint"], "signature": "AAAA"}}
    assert ProblemKind.BAD_CHECKPOINT_SIGNATURE in {
        k for _, k in _kinds(verify_bundle({**bundle, "consistency": unsigned}))
    }


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        [],
        "text",
        {"format": "something-else"},
        {"format": BUNDLE_FORMAT},
        {"format": BUNDLE_FORMAT, "tenant_id": 7},
    ],
)
def test_a_document_that_is_no_bundle_is_refused(garbage: Any) -> None:
    with pytest.raises(ProofError):
        verify_bundle(garbage)


def test_malformed_parts_of_a_bundle_are_named_never_a_crash() -> None:
    bundle = _bundle(_key(), size=4)
    for records in (
        "not a list",
        [None, 3, {"sequence": True}],
        [{"sequence": 1, "stored": "%%%", "audit_path": []}],
        [{"sequence": 1, "stored": "e30=", "audit_path": ["short"]}],
    ):
        report = verify_bundle({**bundle, "records": records})
        assert report["status"] == "INVALID"
        assert {kind for _, kind in _kinds(report)} == {ProblemKind.MALFORMED_BUNDLE}, records
    for keys in (
        None,
        {"keys": "x"},
        {"keys": [{"kid": KEY_ID, "kty": "RSA"}]},
        {"keys": [{"kid": KEY_ID, "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]},
    ):
        report = verify_bundle({**bundle, "keys": keys})
        assert _kinds(report) == {(4, ProblemKind.BAD_CHECKPOINT_SIGNATURE)}, keys
    report = verify_bundle({**bundle, "checkpoint": {"signed": "not a checkpoint"}})
    assert {kind for _, kind in _kinds(report)} == {ProblemKind.BAD_CHECKPOINT_SIGNATURE}


def test_a_jwk_off_the_curve_is_refused() -> None:
    jwk = _jwks(_key())["keys"][0]
    y = base64.urlsafe_b64decode(jwk["y"] + "==")
    with pytest.raises(ProofError):
        public_key_of({**jwk, "y": base64.urlsafe_b64encode(_flip(y, 31)).decode().rstrip("=")})
    with pytest.raises(ProofError):
        public_key_of({**jwk, "alg": "RS256"})
    stated, problems = check_checkpoint(_checkpoint(_key(), "acme", 1, b"\0" * 32), _jwks(_key()), "acme")
    assert stated is None
    assert [p["kind"] for p in problems] == [ProblemKind.BAD_CHECKPOINT_SIGNATURE]
