"""The API's reply bodies, as the OpenAPI document describes them (``responses=`` of each route).

They document what the services return; the handlers do not build replies from them (a reply is
the service's dict), and schemathesis's response-schema check holds the two together
(tests/security/test_schema_fuzzing.py). A model lists the fields every reply carries; where a
part of a reply is open-ended (an audit record, a report's evidence) it is a JSON object.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from tenant_security.models.policies import SecurityPolicies

JsonObject = dict[str, JsonValue]


class Reply(BaseModel):
    """Base of the reply models: documented field by field, titled by the class name."""

    model_config = ConfigDict(populate_by_name=True)


# ---------------------------------------------------------------- sign-in
class SignInStep(Reply):
    """The password was right: the second factor comes next (or, at first sign-in, enrolment)."""

    status: Literal["MFA_REQUIRED", "MFA_ENROLLMENT_REQUIRED"]
    challenge_token: str | None = Field(None, description="for POST /auth/mfa/verify (MFA_REQUIRED)")
    enrollment_token: str | None = Field(
        None, description="for POST /auth/mfa/enroll and /auth/mfa/activate (MFA_ENROLLMENT_REQUIRED)"
    )


class AccessToken(Reply):
    """A session and its access token (an ES256 JWT)."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds")
    session_id: str
    password_change_required: bool = Field(
        description="true: the token is good only for POST /auth/password until the password is changed"
    )


class ClientToken(Reply):
    """An API client's access token (RFC 6749 §5.1): an ES256 JWT of at most 15 minutes."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds")
    scope: str = Field(description="the roles the token carries, space-separated")


class OAuthErrorReply(Reply):
    """A token endpoint error (RFC 6749 §5.2)."""

    error: Literal[
        "invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope", "unauthorized_client"
    ]
    error_description: str
    message: str = Field(description="the same text, as every error of the API has it")


class AuthorizationServerMetadata(Reply):
    """RFC 8414 metadata of the token endpoint."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    response_types_supported: list[str]
    service_documentation: str


class MfaEnrollment(Reply):
    """A new TOTP secret and backup codes, shown once."""

    secret: str
    otpauth_uri: str
    qr_svg: str
    backup_codes: list[str]


class JsonWebKey(Reply):
    kty: str
    kid: str
    alg: str
    use: str


class JsonWebKeySet(Reply):
    """The public keys that verify access tokens."""

    keys: list[JsonWebKey]


class Health(Reply):
    status: str
    version: str
    stage: str


# ---------------------------------------------------------------- tenants
class TenantState(Reply):
    """A tenant's id and the status a request left it in."""

    tenant_id: str
    status: str


class Suspension(TenantState):
    sessions_revoked: int | None = Field(None, description="sessions ended by the suspension")


class SessionsRevoked(Reply):
    revoked: int


class SessionView(Reply):
    """A live session: whose, since when, until when and where from."""

    session_id: str
    username: str
    created_at: str
    expires_at: str
    source_ip: str | None = Field(
        description="the address the sign-in came from (null for a session older than this field)"
    )
    user_agent: str | None = Field(
        description="the sign-in's User-Agent header, printable characters only, at most 256 of them"
    )
    current: bool = Field(description="true: the session of the token this request came with")


class SessionList(Reply):
    """The caller's own live sessions, oldest first."""

    items: list[SessionView]


class SessionPage(Reply):
    """A page of the tenant's live sessions."""

    items: list[SessionView]
    next: str | None = Field(description="pass as ?next= for the following page; null on the last")


class Tenant(Reply):
    """A tenant as GET /tenants/{tenant_id} shows it."""

    tenant_id: str
    name: str
    status: str
    isolation: str
    created_at: str
    updated_at: str
    failure_reason: str | None = Field(None, description="present when the status is FAILED")


class ConcurrencyUsage(Reply):
    active: int
    limit: int


class Spend(Reply):
    """What the tenant's requests cost in AWS, estimated (each route's AWS calls at list prices:
    authz/route_costs.py), in US dollars; counted by the same write that admits a request."""

    currency: Literal["USD"]
    day: str = Field(description="UTC day of `today`, YYYY-MM-DD")
    month: str = Field(description="UTC month of `this_month`, YYYY-MM")
    today: float
    this_month: float
    daily_limit: float = Field(description="cost.daily_limit")
    monthly_budget: float = Field(description="cost.monthly_budget")
    cost_threshold: float = Field(description="the security policy's rate_limiting.cost_threshold")
    monthly_limit: float = Field(description="the month's limit in force: the stricter of the two")
    remaining_today: float
    remaining_this_month: float
    alert_at: float = Field(description="the month's spend that puts `Quota Threshold Reached`")


class QuotaUsage(Reply):
    """What the tenant uses now of its quotas."""

    tenant_id: str
    requests: JsonObject
    spend: Spend
    concurrent_requests: ConcurrencyUsage
    storage: JsonObject
    compute: JsonObject


# ---------------------------------------------------------------- security policy
class PolicyRollout(Reply):
    """How the AWS side of the policy (key rotation, key replicas, audit retention) stands."""

    status: Literal["pending", "applied", "failed"]
    revision: int = Field(description="the policy revision this rollout applies")
    detail: str = ""


class PolicyView(SecurityPolicies):
    """The tenant's security policy document, with two read-only keys (a PUT or PATCH that
    carries them leaves them alone). The ETag header holds the revision."""

    revision: int = Field(description="the document's revision (its ETag)")
    rollout: PolicyRollout


class FieldChangeView(Reply):
    field: str = Field(description="dotted path, e.g. access_control.ip_whitelist")
    old: JsonValue
    new: JsonValue


class PolicyRevisionView(Reply):
    revision: int
    changed_at: str
    changed_by: str = Field(description="tenant/user of who made the change")
    changes: list[FieldChangeView]


class PolicyHistory(Reply):
    """Newest first; ``next`` continues before the last revision shown."""

    items: list[PolicyRevisionView]
    next: str | None


# ---------------------------------------------------------------- users
class NewUserCreated(Reply):
    """The new user and their one-time password (shown once; MFA enrolment and a new password
    follow at first sign-in)."""

    username: str
    temporary_password: str


class ApiClientView(Reply):
    """An API client as the API shows one (never its secret)."""

    client_id: str
    name: str
    roles: list[str]
    ip_whitelist: list[str] = Field(description="its own allow-list (CIDRs); empty: the tenant's only")
    created_at: str
    expires_at: str = Field(description="after it, the client gets no token and its tokens are refused")
    last_used_at: str | None = Field(description="to the minute: the last token it was issued")


class ApiClientList(Reply):
    items: list[ApiClientView]


class NewApiClient(ApiClientView):
    """The new client and its secret, shown once (``tsk_`` + 49 characters)."""

    client_secret: str


class RotatedSecret(Reply):
    """The client's new secret, shown once; the one it replaces works until
    ``previous_secret_expires_at`` (null: no longer)."""

    client_id: str
    client_secret: str
    previous_secret_expires_at: str | None


class UserView(Reply):
    """A user as the API shows one (never hashes or secrets)."""

    username: str
    email: str
    roles: list[str]
    status: str
    mfa_enrolled: bool
    password_change_required: bool
    created_at: str


class UserList(Reply):
    items: list[UserView]


class RoleView(Reply):
    """A role: the patterns it is defined by and the concrete actions they grant."""

    name: str
    builtin: bool = Field(description="true: the platform's own role, never redefined or deleted")
    permissions: list[str] = Field(
        description="action patterns (a custom role's are its concrete tenant-scoped actions)"
    )
    actions: list[str] = Field(description="every action the role grants, sign-out and own sessions included")


class RoleList(Reply):
    """The tenant's built-in roles, then its custom roles by name."""

    items: list[RoleView]


# ---------------------------------------------------------------- data
class SecretWritten(Reply):
    name: str
    version: str
    updated_at: str


class SecretView(Reply):
    name: str
    value: str
    version: str


class RecordCreated(Reply):
    id: str
    sensitive: list[str]
    created_by: str
    created_at: str


class RecordView(RecordCreated):
    data: JsonObject


class FileWritten(Reply):
    key: str
    size: int
    version: str | None


class FileEntry(Reply):
    key: str
    stored_bytes: int
    last_modified: str


class FileList(Reply):
    items: list[FileEntry]
    next: str | None = Field(description="pass as ?next= for the following page; null on the last")


class UploadCreated(Reply):
    """A presigned POST: send the file to ``url`` with ``fields``, then POST .../complete."""

    upload_id: str
    key: str
    size: int
    url: str
    fields: dict[str, str]
    expires_at: str


class DownloadLink(Reply):
    key: str
    url: str
    expires_at: str


# ---------------------------------------------------------------- audit
class AuditPage(Reply):
    items: list[JsonObject]
    next: str | None = Field(description="pass as ?next= for the following page; null on the last")


class AuditVerification(Reply):
    """Whether the stored records of a range are the chain the head and checkpoints say."""

    tenant_id: str
    status: Literal["VALID", "INVALID"]
    checked: int
    first: int = Field(alias="from")
    last: int = Field(alias="to")
    head_sequence: int
    checkpoints_checked: int
    problems: list[JsonObject]


class StoredAuditRecord(Reply):
    """An audit record as stored: its canonical JSON, byte for byte what its Merkle leaf hashes
    (personal data only as ciphertext in `pii` or as a pseudonym)."""

    model_config = ConfigDict(extra="allow")

    sequence: int
    tenant_id: str
    event_id: str
    action: str
    recorded_at: str
    prev_hash: str
    hash: str


class AuditCheckpoint(Reply):
    """A signed statement of the tenant's Merkle tree: size and root at a time (RFC 9162's STH)."""

    tenant_id: str
    tree_size: int = Field(description="Records in the tree (sequences 1..tree_size)")
    root_hash: str = Field(description="RFC 9162 MTH of the first tree_size records, base64")
    timestamp: str
    key_id: str = Field(description="The signing key: a kid of GET /.well-known/audit-keys.json")
    signature: str = Field(description="ECDSA P-256 over SHA-256 of `signed`, base64 DER")
    signed: str = Field(
        description="The exact text signed (C2SP tlog-checkpoint: origin, tree size, root hash, "
        "then `timestamp` and `chain` lines)"
    )


class InclusionProof(Reply):
    """RFC 9162 §2.1.3: the audit path of leaf_index (= sequence - 1) in the tree of tree_size."""

    leaf_index: int
    tree_size: int
    audit_path: list[str] = Field(description="Node hashes, base64, leaf to root")


class ConsistencyProof(Reply):
    """RFC 9162 §2.1.4: the tree of `first` records is a prefix of the tree of `second`."""

    first: int
    second: int
    proof: list[str] = Field(description="Node hashes, base64")


# ---------------------------------------------------------------- compliance
class ReportPeriod(Reply):
    id: str
    start: str = Field(alias="from")
    end: str = Field(alias="to")


class ComplianceReport(Reply):
    """A framework's controls and checks over a period, from the evidence held."""

    tenant_id: str
    framework: str
    in_policy: bool | None
    period: ReportPeriod
    generated_at: str
    status: str
    records_examined: int
    records_truncated: bool
    controls: list[JsonObject]
    checks: list[JsonObject]
    activity_by_day: JsonValue


class SubjectExport(Reply):
    """What is held about a data subject (GDPR art. 15)."""

    tenant_id: str
    subject: str
    exported_at: str
    profile: UserView | None
    sessions: list[JsonObject]
    audit: JsonValue


class SubjectErased(Reply):
    """A data subject erased (GDPR art. 17): user, sessions and their audit PII key."""

    tenant_id: str
    subject: str
    user_removed: bool
    sessions_revoked: int
    pii_key_destroyed: bool
