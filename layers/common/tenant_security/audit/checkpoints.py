"""Signed checkpoints of a tenant's trail: its Merkle tree's size and root, like RFC 9162's STHs.

A checkpoint signs (ECDSA P-256, SHA-256, the platform's KMS asymmetric checkpoint key) the text
returned as ``signed``, in the C2SP tlog-checkpoint layout: the log's origin, the tree size, the
base64 root hash, then extension lines (the time and the linear chain's hash at that size)::

    dcisionai-tenant-security/audit/acme
    42
    qE1Y...=
    timestamp 2026-12-02T10:00:00+00:00
    chain 9f86d0...

It is stored object-locked beside the records (and put on the bus, so a tenant can keep copies:
witnesses that make a forked trail detectable). Someone who can write to the bucket but cannot
sign with that key cannot rewrite the trail up to a checkpoint without the verifier noticing.
The public keys, old ones included, are the JWKS of ``GET /.well-known/audit-keys.json``.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from tenant_security.audit.chain import canonical, checkpoint_key
from tenant_security.audit.objects import LockedObjects
from tenant_security.errors import Unauthorized
from tenant_security.identity.tokens import PublicKeys

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

ALGORITHM: Final = "ECDSA_SHA_256"
ORIGIN_PREFIX: Final = "dcisionai-tenant-security/audit/"
_SIGNED_FIELDS = ("tenant_id", "tree_size", "root_hash", "timestamp", "hash")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
PUBLIC_FIELDS = ("tenant_id", "tree_size", "root_hash", "timestamp", "key_id", "signature", "signed")


def public_checkpoint(stored: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint as the API serves it and the `Audit Checkpoint` event carries it."""
    return {name: stored[name] for name in PUBLIC_FIELDS}


def origin_of(tenant_id: str) -> str:
    """The log's name in its checkpoints: one log per tenant."""
    return ORIGIN_PREFIX + tenant_id


def signed_text(tenant_id: str, tree_size: int, root_hash: str, timestamp: str, chain_hash: str) -> str:
    """The exact text a checkpoint signs (C2SP tlog-checkpoint body with two extension lines)."""
    return f"{origin_of(tenant_id)}\n{tree_size}\n{root_hash}\ntimestamp {timestamp}\nchain {chain_hash}\n"


def parse_signed(text: str) -> dict[str, Any] | None:
    """The fields a checkpoint's signed text states, or None for a text of another layout."""
    lines = text.split("\n")
    if len(lines) != 6 or lines[5] != "" or not lines[0].startswith(ORIGIN_PREFIX):
        return None
    # ASCII digits only, no leading zero, at most 20 (str.isdigit() takes "²", which int() refuses)
    if not _TREE_SIZE.fullmatch(lines[1]) or not lines[3].startswith("timestamp "):
        return None
    if not lines[4].startswith("chain "):
        return None
    return {
        "tenant_id": lines[0].removeprefix(ORIGIN_PREFIX),
        "tree_size": int(lines[1]),
        "root_hash": lines[2],
        "timestamp": lines[3].removeprefix("timestamp "),
        "hash": lines[4].removeprefix("chain "),
    }


class Checkpoints:
    """Signs and checks checkpoints. ``public_keys``: the checkpoint keys (the ones
    /.well-known/audit-keys.json publishes), the first signing (the others were used before and
    still verify)."""

    def __init__(self, kms: KMSClient, public_keys: PublicKeys, objects: LockedObjects) -> None:
        if not public_keys.key_ids:
            raise ValueError("no audit checkpoint key")
        self.kms = kms
        self.public_keys = public_keys
        self.key_id = public_keys.key_ids[0]
        self.objects = objects

    def write(
        self,
        bucket: str,
        tenant_id: str,
        sequence: int,
        chain_hash: str,
        root: bytes,
        when: datetime,
        retain_until: datetime,
    ) -> dict[str, Any]:
        """Sign and store the checkpoint of the tree of ``sequence`` records (once)."""
        root_hash, timestamp = base64.b64encode(root).decode(), when.isoformat()
        text = signed_text(tenant_id, sequence, root_hash, timestamp, chain_hash)
        signature = self.kms.sign(
            KeyId=self.key_id, Message=text.encode(), MessageType="RAW", SigningAlgorithm=ALGORITHM
        )["Signature"]
        signed = {
            "tenant_id": tenant_id,
            "tree_size": sequence,
            "root_hash": root_hash,
            "timestamp": timestamp,
            "key_id": self.key_id,
            "algorithm": ALGORITHM,
            "signature": base64.b64encode(signature).decode(),
            "signed": text,
            # the linear chain's view of the same position (the chain verifier's)
            "sequence": sequence,
            "hash": chain_hash,
            "time": timestamp,
        }
        self.objects.put_once(
            bucket, checkpoint_key(sequence), canonical(signed), retain_until, "application/json"
        )
        return signed

    def signature_valid(self, signed: dict[str, Any]) -> bool:
        """True when ``signed`` carries a valid signature of one of our checkpoint keys over its
        ``signed`` text, and every field it states is what that text says."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        text = signed.get("signed")
        stated = parse_signed(text) if isinstance(text, str) else None
        if signed.get("algorithm") != ALGORITHM or stated is None:
            return False
        if any(signed.get(field) != stated[field] for field in _SIGNED_FIELDS):
            return False
        if signed.get("sequence") != stated["tree_size"] or signed.get("time") != stated["timestamp"]:
            return False
        try:
            key = self.public_keys.get(signed.get("key_id"))
            signature = base64.b64decode(str(signed["signature"]), validate=True)
            key.verify(signature, str(text).encode(), ec.ECDSA(hashes.SHA256()))
        except (KeyError, ValueError, InvalidSignature, Unauthorized):
            return False
        return True
