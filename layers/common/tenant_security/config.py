"""The one place that reads the environment: every setting as a pydantic settings model.

Domain code receives a ``Settings`` (or the values it needs) as a parameter; only handlers and
the local cloud call :func:`get_settings`. What names the deployment (its prefix, account,
region, tables, keys) has no default: every function gets it from template.yaml's
Globals.Function.Environment, and a function without one fails at its cold start, naming it.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tenant_security.tenancy import PREFIX_PATTERN

# The tenant keys onboarding creates, by purpose (alias ``<prefix>-tenant-<id>-<purpose>``).
KEY_PURPOSES = ("data", "secrets", "api-keys")


class Settings(BaseSettings):
    """Environment of a function, as template.yaml sets it (see Globals.Function.Environment)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # ---- the deployment: required (template.yaml's Globals.Function.Environment; AWS_REGION is
    # the Lambda runtime's)
    resource_prefix: str = Field(pattern=PREFIX_PATTERN)
    region: str = Field(validation_alias="AWS_REGION")
    stage: str
    platform_tenant_id: str
    event_bus_name: str

    tenants_table: str
    policy_history_table: str
    users_table: str
    sessions_table: str
    api_clients_table: str
    counters_table: str
    audit_heads_table: str
    # Each tenant's Merkle tree nodes and record entries (audit/tree.py).
    audit_index_table: str
    audit_subject_keys_table: str
    idempotency_table: str
    idempotency_mac_key_id: str

    token_signing_key_id: str
    audit_log_key_id: str
    audit_checkpoint_key_id: str
    # A signed checkpoint every this many records (and on the writer's schedule).
    audit_checkpoint_every: int = Field(ge=1, le=1_000_000)
    platform_master_key_id: str
    event_dlq_url: str
    # "" where the deployment has no platform database (DatabaseSecretArn empty).
    database_secret_arn: str
    # Where the cluster is when its secret does not say (an RDS-managed master secret holds only
    # the user name and password): Aurora's endpoint and database name from template.yaml.
    database_host: str
    database_name: str

    account_id: str = Field(pattern=r"^\d{12}$")
    # The first 8 hex digits of the stack's id (template.yaml: DEPLOYMENT_ID), unique per stack,
    # account and region. S3 bucket names are global across every AWS account: without it, the
    # same stack in a second region or account, or anyone who took the name first, makes
    # CreateBucket fail with BucketAlreadyExists. 8 characters keep every 32-character tenant
    # id within S3's 63 with the default prefix.
    deployment_id: str = Field(pattern=r"^[0-9a-f]{8}$")
    partition: str
    # Five failed second-factor attempts in a row lock a user out for this long.
    lockout_seconds: int = Field(ge=1, le=86400)
    # Unauthenticated sign-in steps a minute, per source address and per account (429 beyond).
    sign_in_attempts_per_address: int = Field(ge=1, le=1_000_000)
    sign_in_attempts_per_account: int = Field(ge=1, le=1_000_000)
    fault_injection: str = Field(pattern=r"^(enabled|disabled)$")

    # ---- names of this product, the same in every deployment
    event_source: str = "dcisionai.tenant-security"
    token_issuer: str = "dcisionai-tenant-security"  # noqa: S105 - a name, not a secret
    token_audience: str = "dcisionai-api"  # noqa: S105 - a name, not a secret

    # ---- one function's own (template.yaml sets each on the function that reads it)
    # A failed POST /auth/login is answered no earlier than this after it began, whatever refused
    # it: above every failure path's own time, so the timing tells no unknown user (or tenant).
    sign_in_failure_floor_ms: int = Field(500, ge=0, le=5000)

    # The onboarding function's Timeout (template.yaml): how long a step of an ended execution may
    # still be running, so how long its registration is not taken over.
    onboarding_step_timeout: int = Field(120, ge=1, le=900)
    # The policy rollout workflow (the admin API starts one execution per policy revision whose
    # fields live in AWS); "" where no function starts it.
    policy_rollout_state_machine_arn: str = ""
    # Roles that tenant key policies let use the keys, comma-separated: exact ARNs (the policy's
    # principals; KMS refuses a wildcard in a principal, so none here) and ARN patterns with `*`
    # or `?` (matched by an aws:PrincipalArn condition on the account).
    tenant_key_users: str = Field("", pattern=r"^[^*?]*$")
    tenant_key_user_patterns: str = ""
    # The roles that use a tenant's api-keys key (the auth API's: it makes and unwraps the API
    # client verifier key), exact ARNs, comma-separated: the key policy lets only them use it (the
    # other platform roles read its state). "" keeps the api-keys key like the others.
    tenant_api_key_users: str = Field("", pattern=r"^[^*?]*$")
    # The roles that create, rotate and shred tenant keys and store the tenant's secrets under
    # them (the onboarding function's): named in each key policy, exact ARNs, comma-separated.
    # KMS refuses a key policy that does not let its creator change it later, and a new key's
    # tags and aliases can take minutes to authorize anything: these roles need no IAM for it.
    tenant_key_admins: str = Field("", pattern=r"^[^*?]*$")
    # The break-glass role that may read tenant secrets through Secrets Manager (an operator
    # handing over a first admin's password): an exact ARN, or "" to leave it to the account's
    # IAM policies (the key policy then delegates that one use to the account).
    tenant_secrets_break_glass: str = Field("", pattern=r"^[^*?,]*$")

    # ---- limits with a default that holds for every deployment
    # Largest JSON request body a handler accepts; API Gateway itself stops at 10 MB.
    max_json_body_bytes: int = Field(256 * 1024, ge=1024, le=10 * 1024 * 1024)

    # Tenant database connections of one execution environment: at most this many per tenant, for
    # at most this many tenants at once (the least recently used tenant's pool is closed).
    records_pool_size: int = Field(2, ge=1, le=20)
    records_max_pools: int = Field(8, ge=1, le=100)
    # Seconds a request waits for a tenant database connection before a 503.
    records_connect_wait: float = Field(5.0, gt=0, le=30)
    # Seconds the tenant database credentials are kept before Secrets Manager is asked again.
    records_credentials_max_age: int = Field(300, ge=0, le=3600)

    @property
    def database_location(self) -> dict[str, str]:
        """Host and database name to use where the master secret names none."""
        return {k: v for k, v in (("host", self.database_host), ("dbname", self.database_name)) if v}

    @property
    def signing_key_ids(self) -> list[str]:
        """Key ids whose tokens are accepted (the first one signs); comma-separated for rotation."""
        return [k.strip() for k in self.token_signing_key_id.split(",") if k.strip()]

    @property
    def audit_checkpoint_key_ids(self) -> list[str]:
        """Checkpoint keys whose signatures verify (the first one signs); comma-separated for a
        new key: the old ones stay in GET /.well-known/audit-keys.json."""
        return _comma_separated(self.audit_checkpoint_key_id)

    @property
    def tenant_api_key_user_arns(self) -> list[str]:
        """The exact role ARNs that may use a tenant's api-keys key (TENANT_API_KEY_USERS)."""
        return _comma_separated(self.tenant_api_key_users)

    @property
    def tenant_key_user_arns(self) -> list[str]:
        """The exact role ARNs that may use tenant keys (TENANT_KEY_USERS)."""
        return _comma_separated(self.tenant_key_users)

    @property
    def tenant_key_admin_arns(self) -> list[str]:
        """The exact role ARNs that administer tenant keys (TENANT_KEY_ADMINS)."""
        return _comma_separated(self.tenant_key_admins)

    @property
    def tenant_key_user_arn_patterns(self) -> list[str]:
        """ARN patterns of the roles that may use tenant keys (TENANT_KEY_USER_PATTERNS)."""
        return _comma_separated(self.tenant_key_user_patterns)

    def kms_arn(self, resource: str) -> str:
        """``key/<id>`` or ``alias/<name>`` as an ARN of this account and region."""
        return f"arn:{self.partition}:kms:{self.region}:{self.account_id}:{resource}"

    def tenant_key_alias(self, tenant_id: str, purpose: str) -> str:
        """The alias of a tenant key: ``alias/<prefix>-tenant-<id>-<purpose>``."""
        return f"alias/{self.resource_prefix}-tenant-{tenant_id}-{purpose}"

    def data_bucket(self, tenant_id: str) -> str:
        """The tenant's data bucket: ``<prefix>-<deployment id>-tenant-<id>-data``."""
        return f"{self.resource_prefix}-{self.deployment_id}-tenant-{tenant_id}-data"

    def tenant_secret_name(self, tenant_id: str, what: str) -> str:
        """A tenant's secret in Secrets Manager: ``<prefix>/tenants/<id>/<what>``."""
        return f"{self.resource_prefix}/tenants/{tenant_id}/{what}"

    def audit_bucket(self, tenant_id: str) -> str:
        """The tenant's object-locked audit bucket (the platform's is in template.yaml)."""
        return f"{self.resource_prefix}-{self.deployment_id}-audit-logs-{tenant_id}"

    @property
    def audit_key_arn(self) -> str:
        return self.kms_arn(f"key/{self.audit_log_key_id}")

    def tenant_key_arn(self, tenant_id: str, purpose: str) -> str:
        """A tenant key by purpose; the platform tenant's keys are the platform master key."""
        if tenant_id == self.platform_tenant_id:
            return self.kms_arn(f"key/{self.platform_master_key_id}")
        return self.kms_arn(self.tenant_key_alias(tenant_id, purpose))

    def data_key_arn(self, tenant_id: str) -> str:
        return self.tenant_key_arn(tenant_id, "data")

    def secrets_key_arn(self, tenant_id: str) -> str:
        return self.tenant_key_arn(tenant_id, "secrets")


def _comma_separated(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class MissingSettings(RuntimeError):
    """The environment lacks (or has a bad) variable the function needs: a deployment fault."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once per execution environment); :class:`MissingSettings`
    naming each variable that is missing or bad, at the cold start rather than at first use."""
    try:
        return Settings()
    except ValidationError as exc:
        raise MissingSettings(environment_problems(exc)) from None


def environment_problems(exc: ValidationError) -> str:
    """What a settings ValidationError says, by environment variable (``ACCOUNT_ID: missing``);
    never the values (a variable may hold a secret's ARN)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]).upper() if error["loc"] else "?"
        problems.append(f"{name}: {'missing' if error['type'] == 'missing' else error['msg']}")
    return (
        "the function's environment is incomplete (template.yaml's Globals.Function.Environment "
        "sets these): " + "; ".join(problems)
    )
