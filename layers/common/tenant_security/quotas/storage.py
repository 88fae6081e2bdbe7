"""The storage quota (max_data_size, max_file_count, max_file_size).

One item per tenant, ``{pk: "storage#<tenant>", sk: "usage"}``, reserved before a write by a
conditional ADD and released on delete or failed writes. The per-version accounting of files
(:mod:`tenant_security.storage.ledger`) changes this same item inside its transactions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import is_conditional_failure
from tenant_security.errors import DomainError, PayloadTooLarge
from tenant_security.models.base import size_in_bytes
from tenant_security.models.quotas import ResourceQuotas

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class StorageQuotaExceeded(DomainError):
    status, code = 413, "storage_quota_exceeded"


class StorageQuota:
    """Bytes and files stored by a tenant, reserved before a write and released after a delete."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def key(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's usage counter item (``bytes_used``, ``files_used``)."""
        return {"pk": {"S": f"storage#{tenant_id}"}, "sk": {"S": "usage"}}

    def reserve(self, tenant_id: str, size: int, quotas: ResourceQuotas, files: int = 1) -> None:
        """Reserve ``size`` bytes and ``files`` files; 413 past max_file_size or the tenant's totals."""
        storage = quotas.storage
        if size > size_in_bytes(storage.max_file_size):
            raise PayloadTooLarge(f"file larger than max_file_size ({storage.max_file_size})")
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self.key(tenant_id),
                UpdateExpression="ADD bytes_used :b, files_used :f",
                ConditionExpression="(attribute_not_exists(bytes_used) OR bytes_used <= :maxb) "
                "AND (attribute_not_exists(files_used) OR files_used <= :maxf)",
                ExpressionAttributeValues={
                    ":b": {"N": str(size)},
                    ":f": {"N": str(files)},
                    ":maxb": {"N": str(size_in_bytes(storage.max_data_size) - size)},
                    ":maxf": {"N": str(storage.max_file_count - files)},
                },
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                raise StorageQuotaExceeded("the tenant's storage quota is used up") from exc
            raise

    def check_room(self, tenant_id: str, size: int, quotas: ResourceQuotas) -> None:
        """413 when one more file of ``size`` bytes would not fit now (nothing reserved)."""
        storage = quotas.storage
        if size > size_in_bytes(storage.max_file_size):
            raise PayloadTooLarge(f"file larger than max_file_size ({storage.max_file_size})")
        used = self.usage(tenant_id)
        if (
            used["bytes"] + size > size_in_bytes(storage.max_data_size)
            or used["files"] >= storage.max_file_count
        ):
            raise StorageQuotaExceeded("the tenant's storage quota is used up")

    def release(self, tenant_id: str, size: int, files: int = 1) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=self.key(tenant_id),
            UpdateExpression="ADD bytes_used :b, files_used :f",
            ExpressionAttributeValues={":b": {"N": str(-size)}, ":f": {"N": str(-files)}},
        )

    def usage(self, tenant_id: str) -> dict[str, int]:
        item = (
            self.client.get_item(TableName=self.table, Key=self.key(tenant_id), ConsistentRead=True).get(
                "Item"
            )
            or {}
        )
        return {
            "bytes": int(item.get("bytes_used", {}).get("N", 0)),
            "files": int(item.get("files_used", {}).get("N", 0)),
        }
