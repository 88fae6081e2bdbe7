"""The builders of the audit trail (chain, objects, checkpoints, PII), GDPR subject rights and
the compliance service."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from tenant_security import aws
from tenant_security.services.base import faults, pii_sealer, publisher, sessions, settings, tenants, users
from tenant_security.services.data import tenant_files, tenant_records

if TYPE_CHECKING:
    from tenant_security.audit.checkpoints import Checkpoints
    from tenant_security.audit.cipher import RecordCipher
    from tenant_security.audit.objects import LockedObjects
    from tenant_security.audit.pii import PiiProtector, SubjectKeys
    from tenant_security.audit.reader import AuditReader
    from tenant_security.audit.store import ChainHeads
    from tenant_security.audit.tree import AuditIndex, TrailProofs
    from tenant_security.audit.verify import ChainVerifier
    from tenant_security.audit.writer import AuditWriter
    from tenant_security.compliance.tenant_controls import TenantControls
    from tenant_security.compliance_service import ComplianceService
    from tenant_security.gdpr import SubjectRights


@cache
def chain_heads() -> ChainHeads:
    from tenant_security.audit.store import ChainHeads

    return ChainHeads(aws.dynamodb(), settings().audit_heads_table)


@cache
def audit_objects() -> LockedObjects:
    from tenant_security.audit.objects import LockedObjects

    return LockedObjects(aws.s3(), settings().audit_key_arn)


@cache
def record_cipher() -> RecordCipher:
    from tenant_security.audit.cipher import RecordCipher

    return RecordCipher(settings().audit_key_arn, settings().account_id, settings().partition)


@cache
def audit_index() -> AuditIndex:
    from tenant_security.audit import index_entries
    from tenant_security.audit.tree import AuditIndex

    return AuditIndex(
        aws.dynamodb(), settings().audit_index_table, entry_attributes=index_entries.entry_attributes
    )


@cache
def trail_proofs() -> TrailProofs:
    from tenant_security.audit.tree import TrailProofs

    return TrailProofs(
        chain_heads(), audit_index(), audit_objects(), settings().audit_bucket, record_cipher().plaintext
    )


@cache
def checkpoints() -> Checkpoints:
    from tenant_security.audit.checkpoints import Checkpoints
    from tenant_security.services.identity import audit_public_keys

    return Checkpoints(aws.kms(), audit_public_keys(), audit_objects())


@cache
def subject_keys() -> SubjectKeys:
    from tenant_security.audit.pii import KmsSubjectKeyWrapping, SubjectKeys

    wrapping = KmsSubjectKeyWrapping(settings())
    return SubjectKeys(aws.dynamodb(), settings().audit_subject_keys_table, wrapping.wrap, wrapping.unwrap)


@cache
def pii() -> PiiProtector:
    from tenant_security.audit.pii import PiiProtector

    return PiiProtector(subject_keys())


@cache
def audit_writer() -> AuditWriter:
    from tenant_security.activity import AUDIT_CHECKPOINT
    from tenant_security.audit.writer import AuditWriter

    return AuditWriter(
        settings(),
        chain_heads(),
        audit_objects(),
        record_cipher(),
        tenants(),
        pii(),
        checkpoints(),
        audit_index(),
        fault=lambda tenant_id, step: faults().check("audit", tenant_id, step),
        sealer=pii_sealer(),
        announce=lambda checkpoint: publisher().put(AUDIT_CHECKPOINT, checkpoint, raw=True),
    )


@cache
def chain_verifier() -> ChainVerifier:
    from tenant_security.audit.verify import ChainVerifier

    return ChainVerifier(
        chain_heads(),
        audit_objects(),
        checkpoints(),
        record_cipher().decode_lines,
        settings().audit_bucket,
        audit_index(),
    )


@cache
def audit_reader() -> AuditReader:
    from tenant_security.audit.reader import AuditReader

    return AuditReader(
        aws.dynamodb(), settings().audit_index_table, record_cipher().decode, pii(), subject_keys()
    )


@cache
def subject_rights() -> SubjectRights:
    from tenant_security.gdpr import SubjectRights

    return SubjectRights(
        users(),
        sessions(),
        subject_keys(),
        audit_reader(),
        settings().audit_bucket,
        # the tenant's record (cached) tells a tenant without a database from one with
        records_of=lambda tenant, user: tenant_records().created_by(tenants().get(tenant) or tenant, user),
        files_of=lambda tenant, user: tenant_files().ledger.created_by(tenant, user),  # noqa: PLW0108 - built lazily
    )


@cache
def compliance_service() -> ComplianceService:
    from tenant_security.compliance_service import ComplianceService

    return ComplianceService(
        settings(),
        users(),
        audit_reader(),
        chain_heads(),
        chain_verifier(),
        tenant_controls(),
        subject_rights(),
    )


@cache
def tenant_controls() -> TenantControls:
    from tenant_security.compliance.tenant_controls import TenantControls

    return TenantControls(settings(), aws.kms(), aws.s3())
