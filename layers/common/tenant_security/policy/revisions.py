"""The stored policy's revisions: the conditional write of a change with its history entry, the
history itself, and the rollout status of a revision.

A change is one DynamoDB transaction: the tenant's profile (document, revision + 1, rollout
pending when the change has fields that live in AWS), conditioned on the revision the change was
made from, and the history entry of the new revision, conditioned on its absence. Two changes
made from one revision: exactly one commits, the other is :class:`StaleRevision`. Each commit's
ClientRequestToken makes botocore's retry of a lost reply a success, not a conflict.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import cancellation_codes, from_item, is_conditional_failure
from tenant_security.errors import DomainError
from tenant_security.policy.changes import FieldChange
from tenant_security.tenants import TenantStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Tenants whose policy may change: a live one, and a suspended one (an incident's first step is
# often to tighten the allow-list or MFA of the tenant it suspended).
CHANGEABLE_STATUSES = (TenantStatus.ACTIVE, TenantStatus.SUSPENDED)
MAX_HISTORY_PAGE = 100


class RolloutStatus(StrEnum):
    """Where the AWS side of a policy revision stands (GET /tenants/{t}/policies ``rollout``)."""

    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"


class StaleRevision(DomainError):
    """The policy changed since the revision a change was made from (412)."""

    status, code = 412, "precondition_failed"


@dataclass(frozen=True)
class Revision:
    """One entry of a tenant's policy history."""

    revision: int
    changed_at: str
    changed_by: str
    changes: tuple[dict[str, Any], ...]

    def public(self) -> dict[str, Any]:
        """As GET /tenants/{t}/policies/history shows it."""
        return {
            "revision": self.revision,
            "changed_at": self.changed_at,
            "changed_by": self.changed_by,
            "changes": list(self.changes),
        }


def etag(revision: int) -> str:
    """The ETag header of a revision (a strong validator)."""
    return f'"{revision}"'


def if_match_allows(header: str | None, revision: int) -> bool:
    """RFC 9110 §13.1.1: True without the header, for ``*``, or when one listed entity tag is the
    revision's (strong comparison: a weak ``W/`` tag never matches)."""
    if header is None:
        return True
    tags = [t.strip() for t in header.split(",") if t.strip()]
    return "*" in tags or etag(revision) in tags


def rollout_state(status: RolloutStatus, revision: int, detail: str = "") -> dict[str, Any]:
    """The ``rollout`` a profile keeps."""
    return {"status": status.value, "revision": revision, "detail": detail[:1000]}


class PolicyRevisions:
    """The tenants table's policy attributes and the policy history table."""

    def __init__(self, client: DynamoDBClient, tenants_table: str, history_table: str) -> None:
        self.client = client
        self.tenants_table = tenants_table
        self.history_table = history_table

    def commit(
        self,
        tenant_id: str,
        document_json: str,
        expected_revision: int,
        changed_by: str,
        changes: Sequence[FieldChange],
        rollout: dict[str, Any] | None,
        roles_revision: int | None = None,
    ) -> Revision:
        """Store the document as revision ``expected_revision + 1``; :class:`StaleRevision` when
        the stored revision is another, or the tenant is no longer one whose policy may change.

        ``roles_revision``: the custom roles as the document was checked against them (its
        segregation-of-duties pairs name some); a role change since makes the commit stale too,
        so a pair never names a role deleted meanwhile."""
        revision = expected_revision + 1
        now = datetime.now(UTC).isoformat()
        entry = Revision(revision, now, changed_by, tuple(c.as_dict() for c in changes))
        update = "SET security_policies = :p, policy_revision = :new, updated_at = :t"
        values: dict[str, Any] = {
            ":p": {"S": document_json},
            ":new": {"N": str(revision)},
            ":old": {"N": str(expected_revision)},
            ":t": {"S": now},
            **{f":s{i}": {"S": s.value} for i, s in enumerate(CHANGEABLE_STATUSES)},
        }
        if rollout is not None:
            update += ", rollout = :r, rollout_revision = :new"
            values[":r"] = {"S": json.dumps(rollout)}
        same_revision = (
            "(attribute_not_exists(policy_revision) OR policy_revision = :old)"
            if expected_revision == 0
            else "policy_revision = :old"
        )
        statuses = ", ".join(f":s{i}" for i in range(len(CHANGEABLE_STATUSES)))
        condition = f"{same_revision} AND #s IN ({statuses})"
        if roles_revision is not None:
            values[":roles"] = {"N": str(roles_revision)}
            condition += (
                " AND (attribute_not_exists(roles_revision) OR roles_revision = :roles)"
                if roles_revision == 0
                else " AND roles_revision = :roles"
            )
        # one token per commit: botocore's retry of this very call resends it (a success if the
        # first attempt landed); another commit, even of the same document, is its own
        token = uuid.uuid4().hex
        try:
            self.client.transact_write_items(
                ClientRequestToken=token,
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.tenants_table,
                            "Key": {"tenant_id": {"S": tenant_id}},
                            "UpdateExpression": update,
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": values,
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.history_table,
                            "Item": {
                                "tenant_id": {"S": tenant_id},
                                "revision": {"N": str(revision)},
                                "changed_at": {"S": now},
                                "changed_by": {"S": changed_by[:200]},
                                "changes": {"S": json.dumps(list(entry.changes), default=str)},
                            },
                            "ConditionExpression": "attribute_not_exists(revision)",
                        }
                    },
                ],
            )
        except Exception as exc:
            if is_conditional_failure(exc) and "ConditionalCheckFailed" in cancellation_codes(exc):
                raise StaleRevision(
                    f"the policy of {tenant_id!r} changed since revision {expected_revision}"
                ) from exc
            raise
        return entry

    def history(
        self, tenant_id: str, limit: int, before: int | None = None
    ) -> tuple[list[Revision], int | None]:
        """The newest ``limit`` revisions (older than ``before``), and the revision to continue
        before, if there are more."""
        args: dict[str, Any] = {
            "TableName": self.history_table,
            "KeyConditionExpression": "tenant_id = :t",
            "ExpressionAttributeValues": {":t": {"S": tenant_id}},
            "ScanIndexForward": False,
            "Limit": max(1, min(limit, MAX_HISTORY_PAGE)),
            "ConsistentRead": True,
        }
        if before is not None:
            args["ExclusiveStartKey"] = {"tenant_id": {"S": tenant_id}, "revision": {"N": str(before)}}
        reply = self.client.query(**args)
        entries = []
        for item in reply.get("Items", []):
            values = from_item(item)
            entries.append(
                Revision(
                    revision=int(values["revision"]),
                    changed_at=str(values.get("changed_at", "")),
                    changed_by=str(values.get("changed_by", "")),
                    changes=tuple(json.loads(values.get("changes", "[]"))),
                )
            )
        more = reply.get("LastEvaluatedKey")
        return entries, int(more["revision"]["N"]) if more else None

    def set_rollout(self, tenant_id: str, revision: int, status: RolloutStatus, detail: str = "") -> bool:
        """Record how revision ``revision``'s rollout stands; False (nothing written) when a newer
        revision started its own rollout, which speaks for the tenant now (a change without fields
        that live in AWS leaves the rollout of the revision before it in place)."""
        try:
            self.client.update_item(
                TableName=self.tenants_table,
                Key={"tenant_id": {"S": tenant_id}},
                UpdateExpression="SET rollout = :r",
                ConditionExpression="rollout_revision = :rev",
                ExpressionAttributeValues={
                    ":r": {"S": json.dumps(rollout_state(status, revision, detail))},
                    ":rev": {"N": str(revision)},
                },
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True
