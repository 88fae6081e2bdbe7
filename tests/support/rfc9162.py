"""An RFC 9162 verifier written from the RFC's own algorithms, independent of the writer's code.

§2.1.1 defines MTH; §2.1.3.2 verifies an inclusion proof and §2.1.4.2 a consistency proof. The
tests check every proof the trail serves with these functions, never with ``audit.merkle``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(entries: Sequence[bytes]) -> bytes:
    """§2.1.1: the Merkle Tree Hash of a list of entries (the stored bytes of each leaf)."""
    n = len(entries)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + entries[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _h(b"\x01" + mth(entries[:k]) + mth(entries[k:]))


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, inclusion_path: Sequence[bytes], root_hash: bytes
) -> bool:
    """§2.1.3.2, step by step."""
    if leaf_index >= tree_size:
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash
    for p in inclusion_path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _h(b"\x01" + p + r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _h(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(
    first: int, second: int, consistency_path: Sequence[bytes], first_hash: bytes, second_hash: bytes
) -> bool:
    """§2.1.4.2, step by step."""
    path = list(consistency_path)
    if first == second:
        return not path and first_hash == second_hash
    if not 0 < first < second or not path:
        return False
    if first & (first - 1) == 0:  # an exact power of two: first_hash is the proof's start
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _h(b"\x01" + c + fr)
            sr = _h(b"\x01" + c + sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _h(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def signature_holds(key: object, checkpoint: dict[str, object]) -> bool:
    """A checkpoint's ECDSA P-256 / SHA-256 signature over its exact ``signed`` text, with ``key``
    (a cryptography public key, however the test came by it: KMS, or the JWKS)."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(
            base64.b64decode(str(checkpoint["signature"])),
            str(checkpoint["signed"]).encode(),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def decoded(values: Sequence[str]) -> list[bytes]:
    """Hashes as the API gives them (base64) as bytes."""
    import base64

    return [base64.b64decode(v) for v in values]
