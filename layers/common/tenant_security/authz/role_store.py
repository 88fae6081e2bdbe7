"""A tenant's custom roles in its tenants-table item (``custom_roles``, JSON), under a revision.

``roles_revision`` on the tenant's item counts every change of the custom roles *and* every grant
of a custom role to a user. Each write conditions on the revision it read, so that:

- two definitions made from one revision cannot both land (the second is retried on the new one);
- a grant and a deletion of the same role cannot both land: the deletion read the revision, then
  found (reading consistently) no user holding the role; a grant that lands in between moves the
  revision, so the deletion's write fails and it looks again; a grant made after the deletion
  read the role set without the role (or failed its condition) and is refused as unknown.

A grant of built-in roles only takes no part in it (it cannot meet a deleted role).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import is_conditional_failure, query_pages
from tenant_security.errors import Conflict, NotFound
from tenant_security.tenants import TenantProfile, TenantStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


class StaleRoles(Conflict):
    """The roles changed since they were read (the caller reads them again and retries)."""

    code = "roles_changed"


@dataclass(frozen=True)
class RoleSet:
    """A tenant's custom roles as read, with the revisions a write conditions on."""

    tenant: TenantProfile
    revision: int

    @property
    def roles(self) -> dict[str, list[str]]:
        return self.tenant.custom_roles


def _unchanged(attribute: str, placeholder: str, value: int) -> str:
    # Revision 0 is "never written": an item made before the attribute existed has none.
    if value == 0:
        return f"(attribute_not_exists({attribute}) OR {attribute} = {placeholder})"
    return f"{attribute} = {placeholder}"


class RoleStore:
    """The custom roles of the tenants table, and the users table's holders of a role."""

    def __init__(self, client: DynamoDBClient, tenants_table: str, users_table: str) -> None:
        self.client = client
        self.tenants_table = tenants_table
        self.users_table = users_table

    def _key(self, tenant_id: str) -> dict[str, Any]:
        return {"tenant_id": {"S": tenant_id}}

    def read(self, tenant_id: str) -> RoleSet:
        """The tenant's roles now (a consistent read); 404 when there is no such tenant."""
        reply = self.client.get_item(
            TableName=self.tenants_table, Key=self._key(tenant_id), ConsistentRead=True
        )
        item = reply.get("Item")
        if item is None:
            raise NotFound(f"no tenant {tenant_id!r}")
        return RoleSet(TenantProfile.from_item(item), int(item.get("roles_revision", {}).get("N", "0")))

    def write(self, read: RoleSet, roles: dict[str, list[str]], *, policy_unchanged: bool = False) -> int:
        """Store ``roles`` (every custom role of the tenant) over ``read``: the new revision.

        Only while the tenant is ACTIVE and its roles are at ``read``'s revision (and, with
        ``policy_unchanged``, its policy at ``read``'s: a deletion checked the policy's pairs);
        :class:`StaleRoles` otherwise, a 409 ``tenant_not_active`` when it is no longer active.
        """
        condition = f"#s = :active AND {_unchanged('roles_revision', ':rev', read.revision)}"
        values: dict[str, Any] = {
            ":roles": {"S": json.dumps(roles, sort_keys=True)},
            ":rev": {"N": str(read.revision)},
            ":next": {"N": str(read.revision + 1)},
            ":active": {"S": TenantStatus.ACTIVE},
            ":t": {"S": datetime.now(UTC).isoformat()},
        }
        if policy_unchanged:
            condition += f" AND {_unchanged('policy_revision', ':policy', read.tenant.policy_revision)}"
            values[":policy"] = {"N": str(read.tenant.policy_revision)}
        try:
            self.client.update_item(
                TableName=self.tenants_table,
                Key=self._key(read.tenant.tenant_id),
                UpdateExpression="SET custom_roles = :roles, roles_revision = :next, updated_at = :t",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                raise StaleRoles("the tenant's roles changed meanwhile") from exc
            raise
        return read.revision + 1

    def grant_guard(self, read: RoleSet) -> TransactWriteItemTypeDef:
        """A transaction item for a user write that grants a custom role: it holds only while the
        roles are at ``read``'s revision, and moves the revision on (see the module's notes)."""
        return {
            "Update": {
                "TableName": self.tenants_table,
                "Key": self._key(read.tenant.tenant_id),
                "UpdateExpression": "SET roles_revision = :next",
                "ConditionExpression": f"attribute_exists(tenant_id) AND "
                f"{_unchanged('roles_revision', ':rev', read.revision)}",
                "ExpressionAttributeValues": {
                    ":rev": {"N": str(read.revision)},
                    ":next": {"N": str(read.revision + 1)},
                },
            }
        }

    def grant_check(self, read: RoleSet) -> TransactWriteItemTypeDef:
        """A transaction item for an API client's creation that grants a custom role: it holds only
        while the roles are at ``read``'s revision (a condition check: the function that makes
        clients does not write the tenant's item). A role deleted after the check leaves the
        client holding a name that grants nothing."""
        return {
            "ConditionCheck": {
                "TableName": self.tenants_table,
                "Key": self._key(read.tenant.tenant_id),
                "ConditionExpression": f"attribute_exists(tenant_id) AND "
                f"{_unchanged('roles_revision', ':rev', read.revision)}",
                "ExpressionAttributeValues": {":rev": {"N": str(read.revision)}},
            }
        }

    def holders(self, tenant_id: str, role: str) -> list[str]:
        """The users of the tenant who hold ``role``, by name, read consistently (a grant that
        landed before this read is seen)."""
        names: list[str] = []
        for page in query_pages(
            self.client,
            TableName=self.users_table,
            KeyConditionExpression="tenant_id = :t",
            FilterExpression="contains(#r, :role)",
            ProjectionExpression="username",
            ExpressionAttributeNames={"#r": "roles"},
            ExpressionAttributeValues={":t": {"S": tenant_id}, ":role": {"S": role}},
            ConsistentRead=True,
        ):
            names.extend(str(item["username"]["S"]) for item in page.get("Items", []))
        return sorted(names)
