"""The scheduled work on tenant files: expired uploads retired, unsettled keys settled, noncurrent
versions the lifecycle rule removed released."""

from __future__ import annotations

from datetime import UTC, datetime

from tenant_security.aws import error_code
from tenant_security.observability import logger
from tenant_security.storage.file_keys import NONCURRENT_DAYS, STAGING_PREFIX
from tenant_security.storage.ledger_states import FileBusy, UploadReservation, UploadState
from tenant_security.storage.s3_replies import bucket_gone
from tenant_security.storage.settle import KeySettlement


class FileSweep(KeySettlement):
    """What the storage sweep (every 5 minutes) does for every tenant's files."""

    def release_expired_uploads(self, now: float | None = None) -> int:
        """For each granted upload whose link expired: remove every version S3 keeps under its
        staging key (whatever was posted to it, however often) and forget it, giving back the
        reservation of one never completed; how many were given back. One upload's trouble does
        not stop the others: the next run retries it."""
        released = 0
        for upload in self.ledger.expired_uploads(now if now is not None else datetime.now(UTC).timestamp()):
            try:
                released += self._retire(upload)
            except Exception as exc:
                logger.warning(
                    "expired upload not retired: the next sweep retries it",
                    extra={"tenant_id": upload.tenant_id, "error_type": type(exc).__name__},
                )
        return released

    def _retire(self, upload: UploadReservation) -> int:
        """One expired upload's staging versions removed and its item forgotten (1: released)."""
        if upload.state == UploadState.COMPLETING:
            # a completion is running, or died: the key's lock settles it (file_busy: next run)
            try:
                self.ledger.unlock(self._locked(upload.tenant_id, upload.key))
            except FileBusy:
                return 0
            again = self.ledger.upload(upload.tenant_id, upload.upload_id)
            if again is None or again.state == UploadState.COMPLETING:
                return 0
            upload = again
        try:
            self._delete_staging(
                self.settings.data_bucket(upload.tenant_id), f"{STAGING_PREFIX}{upload.upload_id}"
            )
        except Exception as exc:
            if not bucket_gone(exc):  # (an offboarded tenant's bucket went with its staging)
                raise
        if upload.state == UploadState.COMPLETED:
            self.ledger.forget_upload(upload)
            return 0
        return 1 if self.ledger.release_upload(upload) else 0

    def settle_unsettled(self, now: float | None = None) -> int:
        """Settle the keys whose write or delete had an outcome S3 could not tell, once their
        locks expired: the ledger made equal to what S3 keeps of each; how many."""
        settled = 0
        for left in self.ledger.unsettled(now if now is not None else self.ledger.clock()):
            try:
                self.ledger.unlock(self._locked(left.tenant_id, left.key))
            except FileBusy:
                continue  # being written: that writer settled it; the next run forgets it
            except Exception as exc:
                if not bucket_gone(exc):
                    logger.warning(
                        "unsettled key not settled: the next sweep retries it",
                        extra={"tenant_id": left.tenant_id, "error_type": type(exc).__name__},
                    )
                    continue
            self.ledger.settled(left)
            settled += 1
        return settled

    def release_expired_versions(self, tenant_id: str, now: float | None = None) -> int:
        """Release the tenant's noncurrent versions the lifecycle rule has removed; how many."""
        moment = now if now is not None else datetime.now(UTC).timestamp()
        cutoff = moment - (NONCURRENT_DAYS + 1) * 86400
        released = 0
        for old in self.ledger.noncurrent_before(tenant_id, cutoff):
            try:
                self.s3.head_object(
                    Bucket=self.settings.data_bucket(tenant_id), Key=old.key, VersionId=old.version
                )
            except Exception as exc:
                if error_code(exc) not in ("404", "NoSuchKey", "NoSuchVersion", "NotFound", "400"):
                    raise
                released += self.ledger.release_noncurrent(tenant_id, old)
        return released
