"""Audit record bodies: the Encryption SDK under the platform audit key, one context per tenant."""

from __future__ import annotations

from typing import Any

from tenant_security import crypto
from tenant_security.audit.chain import PURPOSE_AUDIT_RECORD, canonical, json_object, lines_of


def record_context(tenant_id: str) -> dict[str, str]:
    return crypto.encryption_context(tenant_id, PURPOSE_AUDIT_RECORD)


class RecordCipher:
    """Encrypts sealed records and decodes stored bodies (None for anything that is not one)."""

    def __init__(self, key_arn: str, account_id: str, partition: str) -> None:
        self.key_arn = key_arn
        self.account_id = account_id
        self.partition = partition

    def encrypt(self, tenant_id: str, record: dict[str, Any]) -> bytes:
        """One record's stored bytes, encrypted."""
        return self.encrypt_bytes(tenant_id, canonical(record))

    def encrypt_bytes(self, tenant_id: str, plaintext: bytes) -> bytes:
        """Bytes of this tenant's trail (a record, or an object of records), encrypted."""
        # Cached data keys: a warm writer makes no KMS call per record.
        return crypto.encrypt(plaintext, self.key_arn, record_context(tenant_id), cached=True)

    def plaintext(self, tenant_id: str, body: bytes) -> bytes | None:
        """A stored body's record bytes (its canonical JSON: what its Merkle leaf hashes), or None
        for a body that is not one of this tenant's records."""
        try:
            return crypto.decrypt(
                body, record_context(tenant_id), self.account_id, self.partition, cached=True
            )
        except crypto.DecryptionRefused:
            return None

    def decode(self, tenant_id: str, body: bytes) -> dict[str, Any] | None:
        """The one record a body holds, or None."""
        plaintext = self.plaintext(tenant_id, body)
        return None if plaintext is None else json_object(plaintext)

    def decode_lines(self, tenant_id: str, body: bytes) -> list[dict[str, Any] | None] | None:
        """The records of an object (one a line; None for a line that is no record), or None
        when the object does not decrypt as this tenant's."""
        plaintext = self.plaintext(tenant_id, body)
        return None if plaintext is None else [json_object(line) for line in lines_of(plaintext)]
