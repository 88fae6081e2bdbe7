"""The transaction items every change of the file ledger is made of (one conditional write each)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from tenant_security.dynamo import is_conditional_failure, is_contention
from tenant_security.models.base import size_in_bytes
from tenant_security.models.quotas import ResourceQuotas
from tenant_security.quotas.storage import StorageQuota
from tenant_security.storage.ledger_states import (
    LOCK_ATTRIBUTES,
    SEPARATOR,
    UPLOADS_PK,
    Lock,
    Op,
    UploadReservation,
    UploadState,
    number,
    upload_from,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


class LedgerItems:
    """The ledger's table (DynamoDB client, counters table, quota given) and its items."""

    def __init__(
        self, client: DynamoDBClient, table: str, quota: StorageQuota, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.table = table
        self.quota = quota
        self.clock = clock

    # ------------------------------------------------------------------ keys
    @staticmethod
    def _file_key(tenant_id: str, key: str) -> dict[str, Any]:
        return {"pk": {"S": f"storage#{tenant_id}#file"}, "sk": {"S": key}}

    @staticmethod
    def _noncurrent_key(tenant_id: str, key: str, version: str) -> dict[str, Any]:
        return {"pk": {"S": f"storage#{tenant_id}#noncurrent"}, "sk": {"S": f"{key}{SEPARATOR}{version}"}}

    def _usage_update(self, tenant_id: str, bytes_delta: int, files_delta: int) -> dict[str, Any]:
        """A change of the usage whose releases (negative deltas) cannot take the counter below
        zero; an increase (what S3 already keeps, counted) is not refused."""
        values = {":b": number(bytes_delta), ":f": number(files_delta)}
        conditions = []
        if bytes_delta < 0:
            conditions.append("bytes_used >= :size")
            values[":size"] = number(-bytes_delta)
        if files_delta < 0:
            conditions.append("files_used >= :files")
            values[":files"] = number(-files_delta)
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": self.quota.key(tenant_id),
            "UpdateExpression": "ADD bytes_used :b, files_used :f",
            "ExpressionAttributeValues": values,
        }
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        return {"Update": update}

    def _reserve_update(
        self, tenant_id: str, size: int, files: int, quotas: ResourceQuotas
    ) -> dict[str, Any]:
        storage = quotas.storage
        return {
            "Update": {
                "TableName": self.table,
                "Key": self.quota.key(tenant_id),
                "UpdateExpression": "ADD bytes_used :b, files_used :f",
                "ConditionExpression": "(attribute_not_exists(bytes_used) OR bytes_used <= :maxb) "
                "AND (attribute_not_exists(files_used) OR files_used <= :maxf)",
                "ExpressionAttributeValues": {
                    ":b": number(size),
                    ":f": number(files),
                    ":maxb": number(size_in_bytes(storage.max_data_size) - size),
                    ":maxf": number(storage.max_file_count - files),
                },
            }
        }

    def _pending(
        self, lock: Lock, op: Op, size: int, files: int, upload: str | None = None
    ) -> dict[str, Any]:
        """Record with the lock what its holder reserved (a successor undoes or adopts it)."""
        values: dict[str, Any] = {
            ":me": {"S": lock.lock_id},
            ":op": {"S": op},
            ":b": number(size),
            ":f": number(files),
        }
        expression = "SET lock_op = :op, pending_bytes = :b, pending_files = :f"
        if upload is not None:
            values[":u"] = {"S": upload}
            expression += ", pending_upload = :u"
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._file_key(lock.tenant_id, lock.key),
                "UpdateExpression": expression,
                "ConditionExpression": "lock_id = :me",
                "ExpressionAttributeValues": values,
            }
        }

    def _noncurrent_put(self, lock: Lock, now: float) -> dict[str, Any]:
        """The lock's current version, counted from now on as noncurrent."""
        return self._noncurrent_item(lock.tenant_id, lock.key, str(lock.version), lock.size, now)

    def _noncurrent_item(
        self, tenant_id: str, key: str, version: str, size: int, now: float
    ) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    **self._noncurrent_key(tenant_id, key, version),
                    "file_bytes": number(size),
                    "noncurrent_since": number(now),
                },
            }
        }

    def _upload_update(self, upload: str, to: UploadState, version: str | None = None) -> dict[str, Any]:
        """Move an upload being completed on (condition: it is ``completing``, which only the holder
        of its key's lock changes)."""
        values: dict[str, Any] = {":to": {"S": to}, ":completing": {"S": UploadState.COMPLETING}}
        expression = "SET upload_state = :to"
        if version is not None:
            values[":v"] = {"S": version}
            expression += ", file_version = :v"
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": UPLOADS_PK}, "sk": {"S": upload}},
                "UpdateExpression": expression,
                "ConditionExpression": "upload_state = :completing",
                "ExpressionAttributeValues": values,
            }
        }

    def _lock_check(self, lock: Lock) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": self._file_key(lock.tenant_id, lock.key),
                **self._held(lock),
            }
        }

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        """One transaction; False when one of its conditions failed (nothing written). One
        cancelled for contention on an item (another write at once) is raised: a transient error
        (503, retry), never taken for a failed condition (a full quota's 413)."""
        try:
            self.client.transact_write_items(TransactItems=cast("list[TransactWriteItemTypeDef]", items))
        except Exception as exc:
            if is_conditional_failure(exc) and not is_contention(exc):
                return False
            raise
        return True

    def _held(self, lock: Lock) -> dict[str, Any]:
        return {
            "ConditionExpression": "lock_id = :me",
            "ExpressionAttributeValues": {":me": {"S": lock.lock_id}},
        }

    def _release_lock(self, lock: Lock) -> dict[str, Any]:
        """The lock given back in a transaction (an absent key's placeholder goes)."""
        if lock.exists:
            return {
                "Update": {
                    "TableName": self.table,
                    "Key": self._file_key(lock.tenant_id, lock.key),
                    "UpdateExpression": f"REMOVE {LOCK_ATTRIBUTES}",
                    **self._held(lock),
                }
            }
        return {
            "Delete": {
                "TableName": self.table,
                "Key": self._file_key(lock.tenant_id, lock.key),
                **self._held(lock),
            }
        }

    def _upload_at(self, sk: str) -> UploadReservation | None:
        item = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": UPLOADS_PK}, "sk": {"S": sk}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else upload_from(item)
