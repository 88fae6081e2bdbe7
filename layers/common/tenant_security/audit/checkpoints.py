"""Signed checkpoints of a tenant's chain, like CloudTrail's digest files.

A checkpoint is ``{tenant_id, sequence, hash, time}`` signed (ECDSA P-256, SHA-256) by the
platform's KMS asymmetric checkpoint key and stored object-locked beside the records. Someone who
can write to the bucket but cannot sign with that key cannot rewrite the chain up to a checkpoint
without the verifier noticing, even by recomputing every hash.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from tenant_security.audit.chain import canonical, checkpoint_key
from tenant_security.audit.store import LockedObjects

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

ALGORITHM: Final = "ECDSA_SHA_256"


class Checkpoints:
    """Signs and checks checkpoints; the public key is fetched once per key id and kept."""

    def __init__(self, kms: KMSClient, key_id: str, objects: LockedObjects) -> None:
        self.kms = kms
        self.key_id = key_id
        self.objects = objects
        self._public_keys: dict[str, Any] = {}

    def document(self, tenant_id: str, sequence: int, hash_: str, when: datetime) -> dict[str, Any]:
        return {"tenant_id": tenant_id, "sequence": sequence, "hash": hash_, "time": when.isoformat()}

    def write(
        self, bucket: str, tenant_id: str, sequence: int, hash_: str, when: datetime, retain_until: datetime
    ) -> dict[str, Any]:
        """Sign and store the checkpoint of ``sequence`` (once)."""
        document = self.document(tenant_id, sequence, hash_, when)
        signature = self.kms.sign(
            KeyId=self.key_id, Message=canonical(document), MessageType="RAW", SigningAlgorithm=ALGORITHM
        )
        signed = {
            **document,
            "key_id": str(signature.get("KeyId") or self.key_id),
            "algorithm": ALGORITHM,
            "signature": base64.b64encode(signature["Signature"]).decode(),
        }
        self.objects.put_once(
            bucket, checkpoint_key(sequence), canonical(signed), retain_until, "application/json"
        )
        return signed

    def _public_key(self, key_id: str) -> Any:
        if key_id not in self._public_keys:
            from cryptography.hazmat.primitives.serialization import load_der_public_key

            der = self.kms.get_public_key(KeyId=key_id)["PublicKey"]
            self._public_keys[key_id] = load_der_public_key(bytes(der))
        return self._public_keys[key_id]

    def signature_valid(self, signed: dict[str, Any]) -> bool:
        """True when ``signed`` carries a valid signature of our checkpoint key over its document."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        key_id = str(signed.get("key_id", ""))
        if (
            signed.get("algorithm") != ALGORITHM
            or key_id.rsplit("/", 1)[-1] != self.key_id.rsplit("/", 1)[-1]
        ):
            return False
        try:
            document = {k: signed[k] for k in ("tenant_id", "sequence", "hash", "time")}
            signature = base64.b64decode(str(signed["signature"]), validate=True)
            self._public_key(self.key_id).verify(signature, canonical(document), ec.ECDSA(hashes.SHA256()))
        except (KeyError, ValueError, InvalidSignature):
            return False
        return True
