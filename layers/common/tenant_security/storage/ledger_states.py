"""The values of the file ledger: a key's lock, what a lock holder reserved, upload states, and the
items' attribute names the ledger's modules share."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tenant_security.errors import Conflict

# Longer than any function's timeout: a lock expires only when its holder is dead.
LOCK_SECONDS = 120
LOCK_ATTEMPTS = 12
UPLOADS_PK = "storage#uploads"
UNSETTLED_PK = "storage#unsettled"
SEPARATOR = "\x1f"  # a control character: never part of a file key
LOCK_ATTRIBUTES = "lock_id, lock_until, lock_op, pending_bytes, pending_files, pending_upload"
PENDING_ATTRIBUTES = ["lock_op", "pending_bytes", "pending_files", "pending_upload"]
# One transaction writes at most 100 items: chunks leave room for the usage counter and a check.
CHUNK = 90


class Op(StrEnum):
    """What the holder of a key's lock is doing (a successor finishes or undoes it)."""

    PUT = "put"
    DELETE = "delete"


class UploadState(StrEnum):
    """Where a granted presigned upload is (its item stays until its link expired)."""

    PENDING = "pending"  # granted, its bytes reserved; not completed (yet)
    COMPLETING = "completing"  # claimed by the holder of its key's lock, which holds the reservation
    COMPLETED = "completed"  # its file is stored (``version``); never completed again


class FileBusy(Conflict):
    """Another request is changing this file right now: try again."""

    code = "file_busy"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


@dataclass(frozen=True)
class Stale:
    """What a lock holder reserved for its operation (what a dead one left, or one whose outcome is
    unknown); ``upload``: the reservation item of the upload it completes, if it does."""

    op: str
    pending_bytes: int
    pending_files: int
    upload: str | None = None


@dataclass(frozen=True)
class Lock:
    """A key held by one request: the key's state as the lock found it."""

    tenant_id: str
    key: str
    lock_id: str
    version: str | None
    size: int
    created_by: str | None
    stale: Stale | None = None

    @property
    def exists(self) -> bool:
        return self.version is not None


@dataclass(frozen=True)
class Noncurrent:
    key: str
    version: str
    size: int
    since: float


@dataclass(frozen=True)
class UploadReservation:
    tenant_id: str
    upload_id: str
    key: str
    size: int
    expires_at: float
    sk: str
    state: UploadState = UploadState.PENDING
    version: str | None = None


@dataclass(frozen=True)
class Stored:
    """What S3 keeps of one key: its versions (delete markers left out), the current one (None
    when there is none, or a delete marker is on top), and the plaintext sizes of the versions the
    ledger does not count yet."""

    versions: tuple[str, ...]
    current: str | None
    sizes: dict[str, int]


@dataclass(frozen=True)
class Unsettled:
    """A key left for the sweep to settle, from ``settle_after`` on (when its lock has expired)."""

    tenant_id: str
    key: str
    settle_after: float


def number(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def noncurrent_from(item: dict[str, Any]) -> Noncurrent:
    key, _, version = item["sk"]["S"].rpartition(SEPARATOR)
    return Noncurrent(
        key=key,
        version=version,
        size=int(item["file_bytes"]["N"]),
        since=float(item["noncurrent_since"]["N"]),
    )


def upload_from(item: dict[str, Any]) -> UploadReservation:
    return UploadReservation(
        tenant_id=item["tenant_id"]["S"],
        upload_id=item["upload_id"]["S"],
        key=item["file_key"]["S"],
        size=int(item["file_bytes"]["N"]),
        expires_at=float(item["expires_at"]["N"]),
        sk=item["sk"]["S"],
        # (an item granted before upload states existed is pending)
        state=UploadState(item.get("upload_state", {}).get("S", UploadState.PENDING)),
        version=item["file_version"]["S"] if "file_version" in item else None,
    )
