"""An audit trail stack in in-process moto: tables, keys, an object-locked bucket per tenant."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from tenant_security import crypto
from tenant_security.audit.checkpoints import Checkpoints
from tenant_security.audit.cipher import RecordCipher
from tenant_security.audit.index_entries import entry_attributes
from tenant_security.audit.objects import LockedObjects
from tenant_security.audit.pii import PiiProtector, SubjectKeys
from tenant_security.audit.reader import AuditReader
from tenant_security.audit.store import IN_FLIGHT_SECONDS, ChainHeads
from tenant_security.audit.tree import AuditIndex, TrailProofs, record_position
from tenant_security.audit.verify import ChainVerifier
from tenant_security.audit.writer import AuditWriter
from tenant_security.config import Settings
from tenant_security.identity.tokens import PublicKeys
from tenant_security.models.policies import SecurityPolicies
from tenant_security.tenants import TenantProfile
from tests.support.moto import create_table, create_template_table, mocked_aws
from tests.support.settings import deploy_settings_function, local_settings

PREFIX = "tst"


@dataclass
class AuditStack:
    settings: Settings
    s3: Any
    ddb: Any
    kms: Any
    tenants: dict[str, TenantProfile]
    faults: dict[str, str] = field(default_factory=dict)
    announced: list[dict[str, Any]] = field(default_factory=list)  # `Audit Checkpoint` events

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.tenants.get(tenant_id)

    def add_tenant(
        self, tenant_id: str, policies: SecurityPolicies | None = None, status: str = "ACTIVE"
    ) -> str:
        """A tenant record, its data key alias and its object-locked audit bucket."""
        self.tenants[tenant_id] = TenantProfile(
            tenant_id=tenant_id, name=tenant_id, status=status, policies=policies or SecurityPolicies()
        )
        key = self.kms.create_key(Description=f"{tenant_id} data")["KeyMetadata"]["KeyId"]
        self.kms.create_alias(AliasName=self.settings.tenant_key_alias(tenant_id, "data"), TargetKeyId=key)
        bucket = self.settings.audit_bucket(tenant_id)
        self.s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        return bucket

    def fault(self, tenant_id: str, step: str) -> None:
        if self.faults.get(tenant_id) == step:
            raise RuntimeError(f"injected crash at {step}")

    # the services, built as services.py builds them
    @property
    def heads(self) -> ChainHeads:
        return ChainHeads(self.ddb, self.settings.audit_heads_table)

    @property
    def objects(self) -> LockedObjects:
        return LockedObjects(self.s3, self.settings.audit_key_arn)

    @property
    def cipher(self) -> RecordCipher:
        return RecordCipher(self.settings.audit_key_arn, self.settings.account_id, self.settings.partition)

    @property
    def index(self) -> AuditIndex:
        return AuditIndex(self.ddb, self.settings.audit_index_table, entry_attributes=entry_attributes)

    def proofs(self) -> TrailProofs:
        return TrailProofs(
            self.heads, self.index, self.objects, self.settings.audit_bucket, self.cipher.plaintext
        )

    @property
    def checkpoints(self) -> Checkpoints:
        keys = PublicKeys(self.kms, self.settings.audit_checkpoint_key_ids)
        return Checkpoints(self.kms, keys, self.objects)

    @property
    def keys(self) -> SubjectKeys:
        settings = self.settings

        def context(tenant_id: str, key_id: str) -> dict[str, str]:
            return crypto.encryption_context(tenant_id, "audit-subject-key", key_id=key_id)

        return SubjectKeys(
            self.ddb,
            settings.audit_subject_keys_table,
            lambda t, k, key: crypto.encrypt(key, settings.data_key_arn(t), context(t, k)),
            lambda t, k, wrapped: crypto.decrypt(wrapped, context(t, k), settings.account_id),
            cache_seconds=0,
        )

    def writer(self) -> AuditWriter:
        return AuditWriter(
            self.settings,
            self.heads,
            self.objects,
            self.cipher,
            self,
            PiiProtector(self.keys),
            self.checkpoints,
            self.index,
            self.fault,
            announce=self.announced.append,
        )

    def verifier(self) -> ChainVerifier:
        return ChainVerifier(
            self.heads,
            self.objects,
            self.checkpoints,
            self.cipher.decode_lines,
            self.settings.audit_bucket,
            self.index,
        )

    def reader(self) -> AuditReader:
        keys = self.keys
        return AuditReader(
            self.ddb, self.settings.audit_index_table, self.cipher.decode, PiiProtector(keys), keys
        )

    # what the tests look at
    def object_keys(self, tenant_id: str, prefix: str = "audit/") -> list[str]:
        """The keys of the tenant's audit bucket under ``prefix``, sorted."""
        listed = self.s3.list_objects_v2(Bucket=self.settings.audit_bucket(tenant_id), Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def stored(self, tenant_id: str, n: int) -> list[bytes]:
        """The stored bytes (the leaves' input) of records 1 to ``n``, as the API serves them."""
        proofs = self.proofs()
        return [proofs.stored_bytes(tenant_id, sequence) for sequence in range(1, n + 1)]

    def problems(self, tenant_id: str) -> list[tuple[int | None, str]]:
        """The verifier's problems with the tenant's trail: (sequence, kind)."""
        return [(p["sequence"], p["kind"]) for p in self.verifier().verify(tenant_id)["problems"]]

    def valid(self, tenant_id: str) -> dict[str, Any]:
        """The verifier's report, asserted VALID."""
        report = self.verifier().verify(tenant_id)
        assert report["status"] == "VALID", report["problems"][:5]
        return report


def audit_stack(checkpoint_every: int = 100) -> AuditStack:
    """Call inside ``mocked_aws``: the platform tenant and its chain, ready to append."""
    region = "us-east-1"
    ddb, s3, kms = (boto3.client(n, region_name=region) for n in ("dynamodb", "s3", "kms"))
    audit_key = kms.create_key(Description="audit")["KeyMetadata"]["KeyId"]
    master_key = kms.create_key(Description="master")["KeyMetadata"]["KeyId"]
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    settings = local_settings(
        resource_prefix=PREFIX,
        audit_log_key_id=audit_key,
        platform_master_key_id=master_key,
        audit_checkpoint_key_id=signing,
        audit_checkpoint_every=checkpoint_every,
        account_id="123456789012",
    )
    create_table(ddb, settings.audit_heads_table, "tenant_id")
    create_template_table(ddb, "AuditIndexTable", settings.audit_index_table)  # its indexes too
    create_table(ddb, settings.audit_subject_keys_table, "tenant_id", "sk")
    deploy_settings_function(settings)  # where the CLI reads them (`tenant-security audit verify`)
    stack = AuditStack(settings, s3, ddb, kms, {})
    stack.tenants[settings.platform_tenant_id] = TenantProfile(
        tenant_id=settings.platform_tenant_id, name="platform", status="ACTIVE"
    )
    s3.create_bucket(
        Bucket=settings.audit_bucket(settings.platform_tenant_id), ObjectLockEnabledForBucket=True
    )
    return stack


@contextmanager
def mocked_audit_stack(
    monkeypatch: pytest.MonkeyPatch,
    checkpoint_every: int,
    *tenants: str,
    policies: Mapping[str, SecurityPolicies] | None = None,
) -> Iterator[AuditStack]:
    """An audit stack in moto with ``tenants`` added (then those of ``policies``, with theirs)."""
    with mocked_aws(monkeypatch):
        stack = audit_stack(checkpoint_every=checkpoint_every)
        for tenant_id in tenants:
            stack.add_tenant(tenant_id)
        for tenant_id, policy in (policies or {}).items():
            stack.add_tenant(tenant_id, policy)
        yield stack


def activity_event(tenant_id: str, n: int, **detail: Any) -> dict[str, Any]:
    """An EventBridge `User Activity` event as the bus delivers it."""
    return {
        "id": f"eb-{tenant_id}-{n}",
        "source": "dcisionai.tenant-security",
        "detail-type": "User Activity",
        "time": "2026-11-26T12:00:00Z",
        "detail": {
            "event_id": f"{tenant_id}-{n}",
            "tenant_id": tenant_id,
            "action": "files:Read",
            "category": "data",
            "outcome": "success",
            "user": "alice",
            "source_ip": "10.1.2.3",
            "resource": "GET /tenants/{tenant_id}/files/{key+}",
            **detail,
        },
    }


def activity_events(tenant_id: str, numbers: range) -> list[dict[str, Any]]:
    """The tenant's activity events numbered ``numbers``."""
    return [activity_event(tenant_id, n) for n in numbers]


def crash_after_the_head(stack: AuditStack, tenant_id: str, numbers: range) -> None:
    """The events ``numbers`` claimed by a writer that dies before their batch's object."""
    stack.faults[tenant_id] = "after_head"
    assert all(
        isinstance(o, RuntimeError) for o in stack.writer().append_all(activity_events(tenant_id, numbers))
    )
    stack.faults.clear()


def delete_index_records(stack: AuditStack, tenant_id: str, sequences: range) -> None:
    """Delete the records' entries from the audit index (someone with write access to it)."""
    for sequence in sequences:
        stack.ddb.delete_item(
            TableName=stack.settings.audit_index_table,
            Key={"tenant_id": {"S": tenant_id}, "position": {"S": record_position(sequence)}},
        )


def age_the_claim(stack: AuditStack, tenant_id: str, seconds: float = IN_FLIGHT_SECONDS + 1) -> None:
    """Date the head's pending claim ``seconds`` back (negative: ahead), as if its writer's
    claim were older than the in-flight window."""
    stack.ddb.update_item(
        TableName=stack.settings.audit_heads_table,
        Key={"tenant_id": {"S": tenant_id}},
        UpdateExpression="SET pending.claimed_at = :then",
        ExpressionAttributeValues={":then": {"N": str(time.time() - seconds)}},
    )


def lose_a_batch(stack: AuditStack, tenant_id: str) -> None:
    """Records 1..2 written; 3..12 claimed by a writer that died before their object, their
    index entries then deleted, the claim older than the in-flight window."""
    stack.writer().append_all(activity_events(tenant_id, range(2)))
    crash_after_the_head(stack, tenant_id, range(2, 12))
    delete_index_records(stack, tenant_id, range(3, 13))
    age_the_claim(stack, tenant_id)
