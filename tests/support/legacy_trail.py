"""Chains as a deployment from before the Merkle tree left them: a head without a frontier, no
audit index items, records one an object (``<16-digit sequence>.json``) -- and the ways such a
trail can be tampered with before its tree is rebuilt."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from tenant_security.audit.chain import canonical, lines_of, object_plaintext, record_key, seal
from tenant_security.audit.events import record_content
from tenant_security.audit.pii import PiiProtector
from tests.support.audit import AuditStack, activity_event

Tamper = Callable[[dict[str, Any]], dict[str, Any]]


def strip_tree(stack: AuditStack, tenant_id: str) -> None:
    """Take the tree away: the tenant's index partition deleted, the head's frontier removed."""
    table = stack.settings.audit_index_table
    for item in stack.index.partition(tenant_id).values():
        stack.ddb.delete_item(
            TableName=table, Key={"tenant_id": item["tenant_id"], "position": item["position"]}
        )
    stack.ddb.update_item(
        TableName=stack.settings.audit_heads_table,
        Key={"tenant_id": {"S": tenant_id}},
        UpdateExpression="REMOVE frontier",
    )


def legacy_records(
    stack: AuditStack,
    tenant_id: str,
    n: int,
    *,
    tamper: dict[int, Tamper] | None = None,
    skip: tuple[int, ...] = (),
    beyond_head: int = 0,
    pending_last: bool = False,
) -> list[dict[str, Any]]:
    """Append ``n`` records after the head as the previous version did: each its own object,
    encrypted as the writer encrypts, Object Lock COMPLIANCE; the head moved to the last one
    with no frontier. ``tamper[sequence]`` changes a record before it is stored (the head still
    commits to the genuine chain), ``skip`` stores no object for those sequences, ``beyond_head``
    stores that many further records the head does not count, and ``pending_last`` leaves the
    last record's object unwritten, carried in the head's ``pending`` (a writer that died)."""
    head = stack.heads.get(tenant_id)
    previous, sequence, now = head.hash, head.sequence, datetime.now(UTC)
    protector = PiiProtector(stack.keys)
    records, pending = [], {}
    for i in range(n + beyond_head):
        sequence += 1
        content = record_content(activity_event(tenant_id, 1000 + sequence), tenant_id)
        record = seal(
            {
                **protector.protect(content, "encrypt_and_redact"),
                "sequence": sequence,
                "prev_hash": previous,
                "recorded_at": max(now.isoformat(), _last_time(head)),
            }
        )
        previous = record["hash"]
        stored = (tamper or {}).get(sequence, lambda r: r)(record)
        key = record_key(sequence, datetime.fromisoformat(record["recorded_at"]))
        body = stack.cipher.encrypt_bytes(tenant_id, object_plaintext([canonical(stored)]))
        if i < n:
            records.append(record)
        if pending_last and i == n - 1:
            pending = {"key": key, "body": body, "sequence": sequence, "event_id": record["event_id"]}
            continue
        if sequence in skip:
            continue
        stack.objects.put_once(
            stack.settings.audit_bucket(tenant_id),
            key,
            body,
            now + timedelta(days=30),
            "application/vnd.aws.encryption-sdk",
        )
    last = records[-1]
    values: dict[str, Any] = {":seq": {"N": str(last["sequence"])}, ":hash": {"S": last["hash"]}}
    update = "SET #seq = :seq, #hash = :hash REMOVE frontier"
    if pending_last:
        update = "SET #seq = :seq, #hash = :hash, pending = :pending REMOVE frontier"
        values[":pending"] = {
            "M": {
                "sequence": {"N": str(pending["sequence"])},
                "event_id": {"S": pending["event_id"]},
                "key": {"S": pending["key"]},
                "body": {"B": pending["body"]},
                "retain_until": {"S": (now + timedelta(days=30)).isoformat()},
            }
        }
    else:
        update += ", pending"
    stack.ddb.update_item(
        TableName=stack.settings.audit_heads_table,
        Key={"tenant_id": {"S": tenant_id}},
        UpdateExpression=update,
        ExpressionAttributeNames={"#seq": "sequence", "#hash": "hash"},
        ExpressionAttributeValues=values,
    )
    return records


def _last_time(head: Any) -> str:
    return str(head.pending.recorded_at) if head.pending is not None else ""


def stored_in_objects(stack: AuditStack, tenant_id: str) -> list[bytes]:
    """Every record's stored bytes, read from the bucket (not the index), in sequence order."""
    bucket = stack.settings.audit_bucket(tenant_id)
    stored = []
    for key in stack.object_keys(tenant_id):
        body = stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        plaintext = stack.cipher.plaintext(tenant_id, body)
        assert plaintext is not None
        stored.extend(lines_of(plaintext))
    by_sequence = {int(json.loads(b)["sequence"]): b for b in stored}
    return [by_sequence[s] for s in sorted(by_sequence)]


def index_positions(stack: AuditStack, tenant_id: str) -> list[str]:
    return sorted(stack.index.partition(tenant_id))


class FailingCalls:
    """A boto3 client whose ``method`` fails (an AWS error) once it has been called ``after``
    times; everything else goes to the client."""

    def __init__(self, client: Any, method: str, after: int = 0) -> None:
        self.client, self.method, self.after, self.calls = client, method, after, 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name != self.method:
            return attribute

        def call(**kwargs: Any) -> Any:
            if self.calls >= self.after:
                error = {"Error": {"Code": "InternalServerError", "Message": "injected"}}
                raise ClientError(error, name)  # type: ignore[arg-type]
            self.calls += 1
            return attribute(**kwargs)

        return call
