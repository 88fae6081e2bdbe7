"""S3 Object Lock's COMPLIANCE mode, as S3 keeps it (installed by the local cloud).

A version under a COMPLIANCE retention that has not expired cannot have its retention shortened
or its mode changed, by anyone, the account's root user included: PutObjectRetention is
AccessDenied. Lengthening it is allowed. moto stores whatever it is given.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

COMPLIANCE = "COMPLIANCE"


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def refused(
    current_mode: str | None, current_until: str | None, mode: str | None, until: str | None, now: datetime
) -> bool:
    """Whether S3 refuses to set (``mode``, ``until``) over the version's current retention."""
    held = _instant(current_until)
    if current_mode != COMPLIANCE or held is None or held <= now:
        return False
    wanted = _instant(until)
    return mode != COMPLIANCE or wanted is None or wanted < held


def install() -> None:
    """Patch moto's S3 backend (idempotent)."""
    models: Any = importlib.import_module("moto.s3.models")
    backend = models.S3Backend
    if getattr(backend, "_localcloud_compliance_retention", False):
        return
    access_denied = importlib.import_module("moto.s3.exceptions").AccessDeniedByLock
    original = backend.put_object_retention

    def put_object_retention(
        self: Any,
        bucket_name: str,
        key_name: str,
        version_id: str | None,
        retention: tuple[str | None, str | None],
    ) -> None:
        key = self.get_object(bucket_name, key_name, version_id=version_id)
        if key is not None and refused(
            key.lock_mode, key.lock_until, retention[0], retention[1], datetime.now(UTC)
        ):
            raise access_denied()
        original(self, bucket_name, key_name, version_id, retention)

    backend.put_object_retention = put_object_retention
    backend._localcloud_compliance_retention = True
