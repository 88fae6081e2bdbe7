"""KMS key states moto does not keep, as KMS keeps them (installed by the local cloud).

- Scheduling the deletion of a multi-Region primary key that has replicas leaves it
  ``PendingReplicaDeletion`` (it becomes ``PendingDeletion`` only once its replicas are deleted,
  which a local cloud never sees); moto says ``PendingDeletion``.
- EnableKeyRotation on a key pending deletion (either state) is KMSInvalidStateException.
"""

from __future__ import annotations

import importlib
from typing import Any

PENDING_STATES = ("PendingDeletion", "PendingReplicaDeletion")


def _has_replicas(key: Any) -> bool:
    configuration = getattr(key, "multi_region_configuration", None) or {}
    primary = (configuration.get("PrimaryKey") or {}).get("Arn")
    return bool(key.multi_region and primary == key.arn and configuration.get("ReplicaKeys"))


def install() -> None:
    """Patch moto's KMS backend (idempotent)."""
    models: Any = importlib.import_module("moto.kms.models")
    backend = models.KmsBackend
    if getattr(backend, "_localcloud_key_states", False):
        return
    json_error = importlib.import_module("moto.core.exceptions").JsonRESTError

    class KMSInvalidStateException(json_error):  # type: ignore[misc, valid-type]
        code = 400

        def __init__(self, message: str) -> None:
            super().__init__("KMSInvalidStateException", message)

    schedule = backend.schedule_key_deletion
    enable_rotation = backend.enable_key_rotation

    def schedule_key_deletion(self: Any, key_id: str, pending_window_in_days: int) -> Any:
        key = self.keys.get(key_id)
        if key is not None and key.key_state in PENDING_STATES:
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")
        result = schedule(self, key_id, pending_window_in_days)
        if key is not None and _has_replicas(key):
            key.key_state = "PendingReplicaDeletion"
        return result

    def enable_key_rotation(self: Any, key_id: str, *args: Any, **kwargs: Any) -> Any:
        key = self.keys.get(self.get_key_id(key_id))
        if key is not None and key.key_state in PENDING_STATES:
            raise KMSInvalidStateException(f"{key.arn} is {key.key_state}.")
        return enable_rotation(self, key_id, *args, **kwargs)

    backend.schedule_key_deletion = schedule_key_deletion
    backend.enable_key_rotation = enable_key_rotation
    backend._localcloud_key_states = True
