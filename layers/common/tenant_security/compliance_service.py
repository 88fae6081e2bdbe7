"""The compliance API's use cases: a tenant's audit trail (read, verified), its framework
reports and the GDPR rights of one data subject, over the stores ``services`` builds.

The handler (functions/compliance_api) parses the request and shapes the reply; what is asked of
the stores, and the limits of one request, are decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from tenant_security import __version__
from tenant_security.audit.ocsf import ocsf_lines
from tenant_security.audit.page_tokens import LAST_SEQUENCE
from tenant_security.errors import ValidationFailed
from tenant_security.observability import metrics

if TYPE_CHECKING:
    from tenant_security.audit.reader import AuditReader
    from tenant_security.audit.store import ChainHeads
    from tenant_security.audit.verify import ChainVerifier
    from tenant_security.callers import TenantContext
    from tenant_security.compliance.tenant_controls import TenantControls
    from tenant_security.config import Settings
    from tenant_security.gdpr import SubjectRights
    from tenant_security.identity.users import UserStore
    from tenant_security.tenants import TenantProfile

# Records verified per request: a longer chain is verified in from/to ranges, so that one request
# stays within the function's timeout.
MAX_VERIFY_SPAN = 5000
# Records per page of the OCSF export: ~2 KB of NDJSON each, a reply of a few MB at most (API
# Gateway's 10 MB, Lambda's 6 MB), decrypted well within the function's timeout.
EXPORT_PAGE = 1000


@dataclass(frozen=True)
class AuditExport:
    """One page of the OCSF export: the NDJSON body, how many records, their first and last
    sequence, and the first sequence of the next page (None: the range is done)."""

    body: bytes
    count: int
    first: int | None
    last: int | None
    next_from: int | None


class ComplianceService:
    """Audit query and verification, SOX/GDPR/ISO 27001 reports and GDPR export and erasure."""

    def __init__(
        self,
        settings: Settings,
        users: UserStore,
        reader: AuditReader,
        heads: ChainHeads,
        verifier: ChainVerifier,
        controls: TenantControls,
        subjects: SubjectRights,
    ) -> None:
        self.settings = settings
        self.users = users
        self.reader = reader
        self.heads = heads
        self.verifier = verifier
        self.controls = controls
        self.subjects = subjects

    def read_audit(
        self,
        tenant_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        action: str | None,
        actor: str | None,
        limit: int,
        after: str | None,
    ) -> dict[str, Any]:
        """One page of the tenant's audit trail, filtered; ``after`` is the previous page's ``next``."""
        return self.reader.query(
            tenant_id, start=start, end=end, action=action, actor=actor, limit=limit, after=after
        )

    def export_audit(
        self, tenant_id: str, first: int, last: int | None, limit: int = EXPORT_PAGE
    ) -> AuditExport:
        """Records ``first``..``last`` (the end of the trail when None) as OCSF NDJSON, at most
        ``limit`` (≤ :data:`EXPORT_PAGE`); 400 for a reversed range or a limit beyond the page."""
        if last is not None and last < first:
            raise ValidationFailed(
                "to is before from", fields=[{"field": "query.to", "message": "must be >= from"}]
            )
        if not 1 <= limit <= EXPORT_PAGE:
            raise ValidationFailed(
                f"export at most {EXPORT_PAGE} records per request",
                fields=[{"field": "query.limit", "message": f"between 1 and {EXPORT_PAGE}"}],
            )
        end = LAST_SEQUENCE if last is None else last
        records, following = self.reader.stored_range(tenant_id, first, end, limit)
        body = b"".join(ocsf_lines(records, tenant_id, __version__, region=self.settings.region))
        sequences = [r["sequence"] for r in records if isinstance(r.get("sequence"), int)]
        metrics.add_metric(name="AuditExportedRecords", unit=MetricUnit.Count, value=len(records))
        return AuditExport(
            body,
            len(records),
            sequences[0] if sequences else None,
            sequences[-1] if sequences else None,
            following,
        )

    def verify_audit(self, tenant_id: str, first: int, last: int | None) -> dict[str, Any]:
        """Verify records ``first``..``last`` (the chain's head when None) of the tenant's chain:
        400 for a reversed range or one of more than :data:`MAX_VERIFY_SPAN` records."""
        if last is not None and last < first:
            raise ValidationFailed(
                "to is before from", fields=[{"field": "query.to", "message": "must be >= from"}]
            )
        head = self.heads.get(tenant_id).sequence
        end = head if last is None else min(last, head)
        if end - first + 1 > MAX_VERIFY_SPAN:
            raise ValidationFailed(
                f"verify at most {MAX_VERIFY_SPAN} records per request (the chain has {head}); "
                "use from and to",
                fields=[{"field": "query.to", "message": f"at most {MAX_VERIFY_SPAN} records from 'from'"}],
            )
        report = self.verifier.verify(tenant_id, first, end)
        metrics.add_metric(name="AuditVerifications", unit=MetricUnit.Count, value=1)
        return report

    def report(self, tenant: TenantProfile, framework: str, period: str) -> dict[str, Any]:
        """The framework's report (sox, gdpr, iso27001) of the tenant for ``period``."""
        from tenant_security.compliance.evidence import gather_evidence
        from tenant_security.compliance.frameworks import FrameworkReporter

        reporter = FrameworkReporter(
            framework,
            tenant.policies.compliance.segregation_of_duties,
            platform_tenant=self.settings.platform_tenant_id,
        )
        evidence = gather_evidence(
            tenant,
            period,
            self.users,
            self.reader,
            self.settings.audit_bucket(tenant.tenant_id),
            self.verifier,
            self.controls,
        )
        return reporter.from_evidence(evidence)

    def export_subject(
        self, caller: TenantContext, tenant: TenantProfile, username: str, after: str | None
    ) -> dict[str, Any]:
        """What the tenant holds about one user, paged by ``after`` (the previous page's ``next``)."""
        return self.subjects.export(tenant.tenant_id, username, caller.permissions(tenant), after)

    def erase_subject(self, caller: TenantContext, tenant: TenantProfile, username: str) -> dict[str, Any]:
        """Erase one user of the tenant (the rules are :meth:`SubjectRights.erase`'s)."""
        return self.subjects.erase(
            (caller.tenant_id, caller.user), caller.permissions(tenant), tenant.tenant_id, username
        )
