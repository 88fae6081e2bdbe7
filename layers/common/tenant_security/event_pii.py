"""Personal data in platform events travels sealed, never in clear.

A `User Activity` or `Security Alert` names users, e-mail addresses and source addresses. On the
bus, in the dead-letter queue (14 days) and in the outbox they would be beyond the reach of an
erasure, so the producer seals them: the fields are taken out of the detail and put back as one
Encryption SDK message (``sealed_pii``) under the platform audit key, with the tenant and the
purpose in the encryption context. Producers may only encrypt (kms:GenerateDataKey); the audit
writer alone opens them, then applies the tenant's own ``pii_handling``. Everything else of the
event (kinds, actions, statuses, ids) stays readable for rules and operators.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from tenant_security import crypto

PURPOSE_EVENT_PII = "event-pii"
SEALED = "sealed_pii"
# The detail fields that are personal data (the audit record's actor, source and target).
PII_FIELDS = ("user", "source_ip", "target_user", "target_email")


def _context(tenant_id: str) -> dict[str, str]:
    return crypto.encryption_context(tenant_id, PURPOSE_EVENT_PII)


class PiiSealer:
    """Seals and opens the personal fields of event details (the audit key's ARN given)."""

    def __init__(self, key_arn: str, account_id: str, partition: str, platform_tenant: str) -> None:
        self.key_arn = key_arn
        self.account_id = account_id
        self.partition = partition
        self.platform_tenant = platform_tenant

    def _tenant(self, detail: Mapping[str, Any]) -> str:
        return str(detail.get("tenant_id") or self.platform_tenant)

    def seal(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        """``detail`` without its personal fields, which ride along sealed."""
        personal = {k: detail[k] for k in PII_FIELDS if detail.get(k) is not None}
        out = {k: v for k, v in detail.items() if k not in PII_FIELDS}
        if personal:
            ciphertext = crypto.encrypt(
                json.dumps(personal).encode(), self.key_arn, _context(self._tenant(detail)), cached=True
            )
            out[SEALED] = base64.b64encode(ciphertext).decode()
        return out

    def open(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        """``detail`` with its sealed personal fields back in place; a seal that does not open
        as this tenant's (moved from another event, or not ours) is dropped."""
        sealed = detail.get(SEALED)
        out = {k: v for k, v in detail.items() if k != SEALED}
        if not isinstance(sealed, str):
            return out
        try:
            plaintext = crypto.decrypt(
                base64.b64decode(sealed, validate=True),
                _context(self._tenant(detail)),
                self.account_id,
                self.partition,
                cached=True,
            )
            personal = json.loads(plaintext)
        except (crypto.DecryptionRefused, ValueError):
            return out
        out.update({k: v for k, v in personal.items() if k in PII_FIELDS})
        return out
