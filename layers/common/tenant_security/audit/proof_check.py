"""An auditor's checks of a tenant's trail, offline: RFC 9162 proofs and signed checkpoints.

Pure functions over what an exported bundle holds (``tenant-security audit bundle``): no AWS, no
network. :func:`verify_inclusion` is RFC 9162 §2.1.3.2 and :func:`verify_consistency` §2.1.4.2,
computed by splitting the proof at the point where the leaf's path leaves the left edge of the
tree (the "inner" part, whose sides follow the leaf index's bits, then the "border", always on the
right), so a proof of the wrong length is refused before a hash is computed. A checkpoint's
signature is checked with a JWKS (ES256 keys, as GET /.well-known/audit-keys.json publishes them)
over the exact ``signed`` text, and every field it states must be what that text says.

The bundle (``format`` :data:`BUNDLE_FORMAT`)::

    {"format", "tenant_id", "keys": <JWKS>, "checkpoint": <checkpoint>,
     "records": [{"sequence", "stored": <base64 of the stored bytes>, "audit_path": [<base64>]}],
     "consistency": {"first", "second", "proof": [<base64>], "checkpoint": <older checkpoint>}}

``consistency`` is optional: a proof that the tree of an older checkpoint the auditor kept is a
prefix of this one (a trail rewritten since then cannot give one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tenant_security.audit.chain import record_hash
from tenant_security.audit.checkpoints import parse_signed

BUNDLE_FORMAT: Final = "dcisionai-audit-bundle/1"
HASH_BYTES: Final = 32
MAX_PATH: Final = 64  # a proof in a tree of up to 2**64 leaves has at most 2 * 64 hashes
_COORDINATE_BYTES: Final = 32  # P-256


class ProblemKind(StrEnum):
    """What an offline verification names (the online verifier's words where they apply)."""

    MALFORMED_BUNDLE = "malformed_bundle"  # a part of the bundle is not what the format says
    BAD_CHECKPOINT_SIGNATURE = "bad_checkpoint_signature"  # no key, or the signature fails
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # its fields are not its text, or another tenant's
    INCLUSION_FAILED = "inclusion_failed"  # the leaf of the stored bytes is not under the root
    RECORD_MISMATCH = "record_mismatch"  # not JSON, another sequence or tenant, a wrong own hash
    CHAIN_BROKEN = "chain_broken"  # prev_hash is not the previous record's (or the checkpoint's) hash
    CONSISTENCY_FAILED = "consistency_failed"  # the older checkpoint's tree is not a prefix


class ProofError(ValueError):
    """A proof or key that cannot be checked at all (wrong length, not a P-256 key, ...)."""


# ---------------------------------------------------------------------- RFC 9162 proofs
def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf_of(stored: bytes) -> bytes:
    """The leaf hash of a record: SHA-256(0x00 ‖ its stored bytes)."""
    return hashlib.sha256(b"\x00" + stored).digest()


def _split_path(index: int, size: int) -> tuple[int, int]:
    """(inner, border): how many hashes of the path to leaf ``index`` in a tree of ``size`` are
    siblings inside the subtree where index and the last leaf part, and how many lie beyond it."""
    inner = (index ^ (size - 1)).bit_length()
    return inner, bin(index >> inner).count("1")


def _inner(seed: bytes, path: Sequence[bytes], index: int) -> bytes:
    for level, sibling in enumerate(path):
        seed = _node(sibling, seed) if index >> level & 1 else _node(seed, sibling)
    return seed


def _inner_right(seed: bytes, path: Sequence[bytes], index: int) -> bytes:
    """Only the siblings on the left: the hash of the tree the proof's first part ends."""
    for level, sibling in enumerate(path):
        if index >> level & 1:
            seed = _node(sibling, seed)
    return seed


def _border(seed: bytes, path: Sequence[bytes]) -> bytes:
    for sibling in path:
        seed = _node(sibling, seed)
    return seed


def _hashes(path: Sequence[bytes]) -> None:
    if len(path) > 2 * MAX_PATH or any(len(h) != HASH_BYTES for h in path):
        raise ProofError("a proof is at most 128 SHA-256 hashes")


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root a valid audit path of leaf ``index`` in a tree of ``size`` leads to (§2.1.3.2);
    :class:`ProofError` for an index outside the tree or a path of the wrong length."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    _hashes(path)
    inner, border = _split_path(index, size)
    if len(path) != inner + border:
        raise ProofError(f"the path of leaf {index} in a tree of {size} has {inner + border} hashes")
    return _border(_inner(leaf, path[:inner], index), path[inner:])


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: whether ``path`` proves ``leaf`` is leaf ``index`` of the tree ``root``."""
    try:
        return root_from_inclusion(index, size, leaf, path) == root
    except ProofError:
        return False


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> bool:
    """RFC 9162 §2.1.4.2: whether ``proof`` shows the tree ``first_root`` of ``first`` leaves is
    the first ``first`` leaves of the tree ``second_root`` of ``second`` (0 < first <= second)."""
    try:
        _hashes(proof)
    except ProofError:
        return False
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    # The older tree's last leaf, seen from the newer tree; the levels below its largest complete
    # subtree (as many as first's trailing zero bits) are shared by both trees and are skipped.
    inner, border = _split_path(first - 1, second)
    shift = (first & -first).bit_length() - 1
    inner -= shift
    if first == 1 << shift:  # the older tree is one complete subtree: its root is the seed
        seed, rest = first_root, list(proof)
    else:
        seed, rest = proof[0], list(proof[1:])
    if len(rest) != inner + border:
        return False
    mask = (first - 1) >> shift
    old = _border(_inner_right(seed, rest[:inner], mask), rest[inner:])
    new = _border(_inner(seed, rest[:inner], mask), rest[inner:])
    return old == first_root and new == second_root


# ---------------------------------------------------------------------- checkpoint signatures
def _b64url(value: object) -> bytes:
    if not isinstance(value, str):
        raise ProofError("a JWK coordinate is a base64url string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ProofError("a JWK coordinate is not base64url") from exc


def public_key_of(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of an ES256 JWK (RFC 7518 §6.2); :class:`ProofError` for any other
    key, or a point that is not on the curve."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or jwk.get("alg", "ES256") != "ES256":
        raise ProofError("not an ES256 (EC P-256) key")
    x, y = _b64url(jwk.get("x")), _b64url(jwk.get("y"))
    if len(x) != _COORDINATE_BYTES or len(y) != _COORDINATE_BYTES:
        raise ProofError("a P-256 coordinate is 32 bytes")
    try:
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        )
        return numbers.public_key()
    except ValueError as exc:  # not a point of the curve
        raise ProofError(str(exc)) from exc


def key_for(jwks: object, key_id: object) -> ec.EllipticCurvePublicKey:
    """The key ``key_id`` names in ``jwks``; :class:`ProofError` when it has none (or a bad one)."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise ProofError("the key set is not a JWKS ({'keys': [...]})")
    for jwk in keys:
        if isinstance(jwk, Mapping) and jwk.get("kid") == key_id and jwk.get("use", "sig") == "sig":
            return public_key_of(jwk)
    raise ProofError(f"no key {key_id!r} in the key set")


def hash_of(value: object) -> bytes:
    """A base64 hash of a bundle (standard alphabet); :class:`ProofError` for anything else."""
    if not isinstance(value, str):
        raise ProofError("a hash is a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProofError("a hash is not base64") from exc
    if len(raw) != HASH_BYTES:
        raise ProofError("a hash is 32 bytes")
    return raw


def problem(kind: ProblemKind, sequence: int | None, detail: str) -> dict[str, Any]:
    """A problem as the verifiers report it."""
    return {"sequence": sequence, "kind": str(kind), "detail": detail}


def check_checkpoint(
    checkpoint: object, jwks: object, tenant_id: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``(stated, problems)``: what a checkpoint's signed text states when its signature holds
    under a key of ``jwks``, it is ``tenant_id``'s and its fields are the text's; else None."""
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("signed"), str):
        return None, [problem(ProblemKind.MALFORMED_BUNDLE, None, "a checkpoint has no signed text")]
    text = str(checkpoint["signed"])
    stated = parse_signed(text)
    at = checkpoint.get("tree_size") if isinstance(checkpoint.get("tree_size"), int) else None
    if stated is None:
        return None, [
            problem(ProblemKind.BAD_CHECKPOINT_SIGNATURE, at, "the signed text is not a checkpoint")
        ]
    at = stated["tree_size"]
    try:
        key = key_for(jwks, checkpoint.get("key_id"))
        signature = base64.b64decode(str(checkpoint.get("signature")), validate=True)
        key.verify(signature, text.encode(), ec.ECDSA(hashes.SHA256()))
    except (ProofError, binascii.Error, ValueError, InvalidSignature) as exc:
        detail = str(exc) if isinstance(exc, ProofError) else "the signature does not verify"
        return None, [problem(ProblemKind.BAD_CHECKPOINT_SIGNATURE, at, detail)]
    found = []
    if stated["tenant_id"] != tenant_id:
        found.append(
            problem(
                ProblemKind.CHECKPOINT_MISMATCH,
                at,
                f"a checkpoint of {stated['tenant_id']!r}'s trail, not {tenant_id!r}'s",
            )
        )
    for name in ("tenant_id", "tree_size", "root_hash", "timestamp"):
        if name in checkpoint and checkpoint[name] != stated[name]:
            found.append(problem(ProblemKind.CHECKPOINT_MISMATCH, at, f"its {name} is not what it signed"))
    try:
        hash_of(stated["root_hash"])
    except ProofError as exc:
        found.append(problem(ProblemKind.CHECKPOINT_MISMATCH, at, f"its root: {exc}"))
    return (None if found else stated), found


# ---------------------------------------------------------------------- a bundle
def _entry(entry: object) -> tuple[int, bytes, list[bytes]]:
    """A bundle record's (sequence, stored bytes, audit path); :class:`ProofError` if malformed."""
    if not isinstance(entry, Mapping):
        raise ProofError("a record entry is not an object")
    sequence, stored, path = entry.get("sequence"), entry.get("stored"), entry.get("audit_path")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise ProofError("a record entry has no sequence (1, 2, ...)")
    if not isinstance(stored, str) or not isinstance(path, list):
        raise ProofError(f"record {sequence} has no base64 stored bytes or audit_path")
    try:
        raw = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProofError(f"record {sequence}: its stored bytes are not base64") from exc
    return sequence, raw, [hash_of(h) for h in path]


def _content(sequence: int, stored: bytes, tenant_id: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The record the stored bytes are, and what is wrong with it."""
    try:
        record = json.loads(stored)
    except ValueError:
        return None, ["its stored bytes are not JSON"]
    if not isinstance(record, dict):
        return None, ["its stored bytes are not a JSON object"]
    wrong = []
    if record.get("sequence") != sequence:
        wrong.append(f"it says sequence {record.get('sequence')!r}, at position {sequence}")
    if record.get("tenant_id") != tenant_id:
        wrong.append(f"it is a record of tenant {record.get('tenant_id')!r}, not {tenant_id!r}")
    if "hash" in record and record_hash(record) != record["hash"]:
        wrong.append("its hash is not SHA-256 of its content")
    return record, wrong


def _chain_problem(sequence: int, record: Mapping[str, Any], before: Mapping[str, Any] | None) -> str | None:
    """Why ``record`` does not follow ``before`` (the record of sequence - 1; None for none)."""
    if "prev_hash" not in record:
        return None
    if sequence == 1 and record["prev_hash"] != "0" * 64:
        return "the first record's prev_hash is not the genesis hash"
    if before is not None and "hash" in before and record["prev_hash"] != before["hash"]:
        return f"its prev_hash is not record {sequence - 1}'s hash"
    return None


def _consistency(
    given: object, jwks: object, tenant_id: str, stated: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The problems of the bundle's consistency proof from an older checkpoint to its own."""
    if not isinstance(given, Mapping):
        return [problem(ProblemKind.MALFORMED_BUNDLE, None, "consistency is not an object")]
    older, found = check_checkpoint(given.get("checkpoint"), jwks, tenant_id)
    first, second, listed = given.get("first"), given.get("second"), given.get("proof")
    if not isinstance(listed, list):
        return [*found, problem(ProblemKind.MALFORMED_BUNDLE, None, "the consistency proof is not a list")]
    try:
        proof = [hash_of(h) for h in listed]
    except ProofError as exc:
        return [*found, problem(ProblemKind.CONSISTENCY_FAILED, None, f"the proof: {exc}")]
    if older is None or stated is None:
        return found
    if (first, second) != (older["tree_size"], stated["tree_size"]):
        detail = f"a proof from {first} to {second}, not between the checkpoints' sizes"
        return [*found, problem(ProblemKind.CONSISTENCY_FAILED, stated["tree_size"], detail)]
    roots = hash_of(older["root_hash"]), hash_of(stated["root_hash"])
    if not verify_consistency(older["tree_size"], stated["tree_size"], proof, *roots):
        detail = f"the tree of {first} records is not a prefix of the tree of {second}"
        return [*found, problem(ProblemKind.CONSISTENCY_FAILED, stated["tree_size"], detail)]
    return found


def verify_bundle(bundle: object, keys: object | None = None) -> dict[str, Any]:
    """Every check of an exported bundle, offline: the checkpoint's signature under ``keys`` (a
    JWKS the auditor got independently; else the bundle's own), each record's inclusion under its
    root, content and chain, and the consistency proof when there is one. ``{status, tenant_id,
    tree_size, from, to, checked, checkpoints_checked, consistency_checked, problems}``;
    :class:`ProofError` for a document that is not a bundle at all."""
    if not isinstance(bundle, Mapping) or bundle.get("format") != BUNDLE_FORMAT:
        raise ProofError(f"not an audit bundle (format {BUNDLE_FORMAT})")
    tenant_id = bundle.get("tenant_id")
    if not isinstance(tenant_id, str):
        raise ProofError("the bundle names no tenant")
    jwks = bundle.get("keys") if keys is None else keys
    checkpoint = bundle.get("checkpoint")
    stated, problems = check_checkpoint(checkpoint, jwks, tenant_id)
    # A root that fails its signature is still checked against, so each record's own problems
    # are named too (the verdict is INVALID either way).
    claimed = stated or (
        parse_signed(str(checkpoint.get("signed"))) if isinstance(checkpoint, Mapping) else None
    )
    try:
        root = hash_of(claimed["root_hash"]) if claimed else None
    except ProofError:
        root = None
    records = bundle.get("records")
    if not isinstance(records, list):
        records = []
        problems.append(problem(ProblemKind.MALFORMED_BUNDLE, None, "records is not a list"))
    sequences: list[int] = []
    before: tuple[int, dict[str, Any] | None] = (0, None)
    for entry in records:
        try:
            sequence, stored, path = _entry(entry)
        except ProofError as exc:
            problems.append(problem(ProblemKind.MALFORMED_BUNDLE, None, str(exc)))
            continue
        if sequences and sequence <= sequences[-1]:
            problems.append(problem(ProblemKind.MALFORMED_BUNDLE, sequence, "records out of order or twice"))
            continue
        sequences.append(sequence)
        record, wrong = _content(sequence, stored, tenant_id)
        problems += [problem(ProblemKind.RECORD_MISMATCH, sequence, detail) for detail in wrong]
        if claimed is not None and root is not None:
            size = claimed["tree_size"]
            if not verify_inclusion(sequence - 1, size, leaf_of(stored), path, root):
                detail = f"its stored bytes are not leaf {sequence - 1} of the checkpoint's tree of {size}"
                problems.append(problem(ProblemKind.INCLUSION_FAILED, sequence, detail))
            elif (
                sequence == size
                and record is not None
                and record.get("hash", claimed["hash"]) != claimed["hash"]
            ):
                detail = "its hash is not the chain hash its checkpoint signed"
                problems.append(problem(ProblemKind.CHAIN_BROKEN, sequence, detail))
        if record is not None:
            broken = _chain_problem(sequence, record, before[1] if before[0] == sequence - 1 else None)
            if broken:
                problems.append(problem(ProblemKind.CHAIN_BROKEN, sequence, broken))
        before = (sequence, record)
    consistency = bundle.get("consistency")
    if consistency is not None:
        problems += _consistency(consistency, jwks, tenant_id, stated)
    return {
        "status": "INVALID" if problems or stated is None else "VALID",
        "tenant_id": tenant_id,
        "tree_size": claimed["tree_size"] if claimed else None,
        "from": sequences[0] if sequences else None,
        "to": sequences[-1] if sequences else None,
        "checked": len(sequences),
        "checkpoints_checked": 1 + (consistency is not None),
        "consistency_checked": consistency is not None,
        "problems": problems,
    }
