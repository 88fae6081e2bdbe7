"""The reservations of presigned uploads: granted, claimed once by a completion, released or
forgotten by the sweep once their link expired."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tenant_security.dynamo import query_pages
from tenant_security.models.quotas import ResourceQuotas
from tenant_security.quotas.storage import StorageQuotaExceeded
from tenant_security.storage.ledger_items import LedgerItems
from tenant_security.storage.ledger_states import (
    UPLOADS_PK,
    Lock,
    Op,
    UploadReservation,
    UploadState,
    number,
    upload_from,
)


class UploadLedger(LedgerItems):
    """Granted uploads and their reservations."""

    # ------------------------------------------------------------------ presigned uploads
    def reserve_upload(
        self, tenant_id: str, upload_id: str, key: str, size: int, quotas: ResourceQuotas, expires_at: float
    ) -> UploadReservation | None:
        """Reserve a granted upload (one file of ``size`` bytes) until it is completed or expires.

        None once reserved; the reservation granted before under ``upload_id`` when there is one
        (a retried request whose first attempt reserved but lost its reply: nothing reserved
        again). 413 when the quota has no room for it."""
        item = {
            "pk": {"S": UPLOADS_PK},
            "sk": {"S": f"{expires_at:017.3f}#{tenant_id}#{upload_id}"},
            "tenant_id": {"S": tenant_id},
            "upload_id": {"S": upload_id},
            "file_key": {"S": key},
            "file_bytes": number(size),
            "expires_at": number(expires_at),
            "upload_state": {"S": UploadState.PENDING},
        }
        put = {
            "Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        }
        reserve = self._reserve_update(tenant_id, size, 1, quotas)
        upload_ref = {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "pk": {"S": f"storage#{tenant_id}#upload"},
                    "sk": {"S": upload_id},
                    "reservation": item["sk"],
                    "expires_at": number(expires_at),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        if self._transact([reserve, put, upload_ref]):
            return None
        # a condition failed: the upload reference's (this id granted already) or the quota's
        granted = self.upload(tenant_id, upload_id)
        if granted is not None:
            return granted
        raise StorageQuotaExceeded("the tenant's storage quota is used up")

    def upload(self, tenant_id: str, upload_id: str) -> UploadReservation | None:
        """The tenant's granted upload ``upload_id`` (None: never granted, or expired and swept)."""
        ref = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"storage#{tenant_id}#upload"}, "sk": {"S": upload_id}},
            ConsistentRead=True,
        ).get("Item")
        if ref is None:
            return None
        main = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": UPLOADS_PK}, "sk": ref["reservation"]}, ConsistentRead=True
        ).get("Item")
        return None if main is None else upload_from(main)

    def claim_upload(self, lock: Lock, upload: UploadReservation) -> bool:
        """Hand a pending upload's reservation (its bytes and one file) to the lock holder's write,
        the upload ``completing``; False when it is not pending (another completion claimed it)."""
        claim = {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": UPLOADS_PK}, "sk": {"S": upload.sk}},
                "UpdateExpression": "SET upload_state = :completing",
                # (an item granted before upload states existed is pending)
                "ConditionExpression": "attribute_exists(pk) AND "
                "(attribute_not_exists(upload_state) OR upload_state = :pending)",
                "ExpressionAttributeValues": {
                    ":completing": {"S": UploadState.COMPLETING},
                    ":pending": {"S": UploadState.PENDING},
                },
            }
        }
        return self._transact([claim, self._pending(lock, Op.PUT, upload.size, 1, upload.sk)])

    def expired_uploads(self, now: float) -> Iterator[UploadReservation]:
        """Granted uploads whose time is up (oldest first), whatever their state."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk < :now",
            ExpressionAttributeValues={":pk": {"S": UPLOADS_PK}, ":now": {"S": f"{now:017.3f}"}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                yield upload_from(item)

    def _upload_deletes(self, upload: UploadReservation, condition: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": UPLOADS_PK}, "sk": {"S": upload.sk}},
                    **condition,
                }
            },
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": f"storage#{upload.tenant_id}#upload"}, "sk": {"S": upload.upload_id}},
                }
            },
        ]

    def release_upload(self, upload: UploadReservation) -> bool:
        """Give back an expired upload's reservation; True for the one call that did (never one a
        completion claimed)."""
        pending = {
            "ConditionExpression": "attribute_exists(pk) AND "
            "(attribute_not_exists(upload_state) OR upload_state = :pending)",
            "ExpressionAttributeValues": {":pending": {"S": UploadState.PENDING}},
        }
        return self._transact(
            [*self._upload_deletes(upload, pending), self._usage_update(upload.tenant_id, -upload.size, -1)]
        )

    def forget_upload(self, upload: UploadReservation) -> bool:
        """Drop a completed upload whose link expired (its reservation is its file's now)."""
        completed = {
            "ConditionExpression": "upload_state = :completed",
            "ExpressionAttributeValues": {":completed": {"S": UploadState.COMPLETED}},
        }
        return self._transact(self._upload_deletes(upload, completed))
