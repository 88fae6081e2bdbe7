"""Builds the domain services from the settings and the shared AWS clients.

Handlers call these; each service is made once per execution environment, and imports what it
needs only when first built (so the authorizer's cold start loads no sign-in, MFA or pydantic
code it never uses). Domain code itself never calls this module: it receives its stores.

The builders live in five modules (``base`` below ``identity``, ``data`` and ``policies``, ``data``
below ``audit``); this package hands every one of them on, so callers write ``services.users()``.
"""

from __future__ import annotations

from tenant_security.services.audit import (
    audit_objects,
    audit_reader,
    audit_writer,
    chain_heads,
    chain_verifier,
    checkpoints,
    compliance_service,
    pii,
    record_cipher,
    subject_keys,
    subject_rights,
    tenant_controls,
)
from tenant_security.services.base import (
    configure,
    faults,
    leases,
    outbox,
    pii_sealer,
    publisher,
    quota_guard,
    rate_limiter,
    refusals,
    sessions,
    settings,
    storage_quota,
    tenant_store,
    tenants,
    users,
)
from tenant_security.services.data import (
    idempotency_middleware,
    idempotent_replies,
    provisioner,
    tenant_admin,
    tenant_databases,
    tenant_files,
    tenant_records,
    tenant_secrets,
)
from tenant_security.services.identity import (
    incidents,
    initial_passwords,
    issuer,
    mfa,
    public_keys,
    request_authorizer,
    request_middleware,
    session_admin,
    sign_in_throttle,
    signin,
    user_admin,
    verifier,
)
from tenant_security.services.policies import (
    policy_admin,
    policy_revisions,
    policy_rollout,
    role_admin,
    role_store,
)

__all__ = [
    "audit_objects",
    "audit_reader",
    "audit_writer",
    "chain_heads",
    "chain_verifier",
    "checkpoints",
    "compliance_service",
    "configure",
    "faults",
    "idempotency_middleware",
    "idempotent_replies",
    "incidents",
    "initial_passwords",
    "issuer",
    "leases",
    "mfa",
    "outbox",
    "pii",
    "pii_sealer",
    "policy_admin",
    "policy_revisions",
    "policy_rollout",
    "provisioner",
    "public_keys",
    "publisher",
    "quota_guard",
    "rate_limiter",
    "record_cipher",
    "refusals",
    "request_authorizer",
    "request_middleware",
    "role_admin",
    "role_store",
    "session_admin",
    "sessions",
    "settings",
    "sign_in_throttle",
    "signin",
    "storage_quota",
    "subject_keys",
    "subject_rights",
    "tenant_admin",
    "tenant_controls",
    "tenant_databases",
    "tenant_files",
    "tenant_records",
    "tenant_secrets",
    "tenant_store",
    "tenants",
    "user_admin",
    "users",
    "verifier",
]
