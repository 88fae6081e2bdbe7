"""The exact accounting behind a tenant's storage quota: every change is a conditional write.

What counts: every version S3 keeps of a tenant's files -- the current ones, and the versions a
replacement made noncurrent until the bucket's lifecycle rule removes them -- and every presigned
upload from the moment it is granted until it is completed or expires. ``files_used`` counts keys
with a current version.

Items in the counters table (IAM: ``storage#*`` leading keys):

- ``storage#<tenant>#file / <key>``: the key's current version and size (``file_version``,
  ``file_bytes``), and while a request changes it, that request's lock (``lock_id``,
  ``lock_until``) and what it reserved (``pending_bytes``, ``pending_files``, ``lock_op``; and
  ``pending_upload``, the upload it completes). Writers of one key take turns; a lock outlives
  any function timeout, so only a dead holder's lock expires, and the next holder settles what it
  left against what S3 keeps (:meth:`FileLedger.lock` returns it as ``stale``).
- ``storage#<tenant>#noncurrent / <key>\\x1f<version>``: a version a replacement made noncurrent,
  with its size; released by the call that removes it (a DELETE, or the sweep once lifecycle
  expired it), under a condition, so two callers never release it twice.
- ``storage#uploads / <expires_at>#<tenant>#<upload_id>`` (and ``storage#<tenant>#upload /
  <upload_id>`` pointing at it): a granted presigned upload, in one of the :class:`UploadState`
  states. A presigned POST is accepted by S3 until it expires, however often it is sent, so the
  item outlives its completion: claimed once by a completion (``completing``: its reservation
  moves to the key's lock), then ``completed`` with the version it made, it stays until its link
  expired; the sweep then removes every version S3 keeps under its staging key and the item
  (releasing the reservation of one never completed). A completed upload is never completed again.
- ``storage#unsettled / <tenant>\\x1f<key>``: a key whose write or delete had an outcome S3 did not
  tell (the reply lost, then S3 unreachable to ask): its lock still holds what was reserved, and
  the sweep settles it against what S3 keeps once the lock expired.

When the outcome of a write is unknown, :meth:`FileLedger.reconcile` makes the ledger equal what
S3 keeps of the key -- never a guess that nothing happened.

Releases carry the condition ``bytes_used >= :size``: no race can take the counter below zero.
"""

from __future__ import annotations

from typing import Any

from tenant_security.dynamo import query_pages
from tenant_security.storage.ledger_settle import LedgerSettlement
from tenant_security.storage.ledger_uploads import UploadLedger
from tenant_security.storage.ledger_writes import KeyWrites


class FileLedger(KeyWrites, UploadLedger, LedgerSettlement):
    """The per-version accounting of tenant files (DynamoDB client, counters table, quota given)."""

    def created_by(self, tenant_id: str, username: str) -> list[dict[str, Any]]:
        """The files ``username`` created in the tenant that are still stored (GDPR export)."""
        pages = query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            FilterExpression="created_by = :u AND attribute_exists(file_version)",
            ExpressionAttributeValues={":pk": {"S": f"storage#{tenant_id}#file"}, ":u": {"S": username}},
            ConsistentRead=True,
        )
        return [
            {"key": item["sk"]["S"], "size": int(item["file_bytes"]["N"])}
            for page in pages
            for item in page.get("Items", [])
        ]
