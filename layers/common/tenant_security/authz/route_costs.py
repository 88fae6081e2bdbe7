"""What one request of each route costs in AWS, in US dollars: its AWS calls at list prices.

The one table of route costs (``RouteRule.cost`` reads it; the quotas' ``cost`` section counts it):

- :data:`ROUTE_CALLS`: for each route of ``authz.routes.ROUTES``, the function that serves it, a
  typical duration, the AWS calls its handler makes **by operation** (beyond the request path every
  route shares, :data:`REQUEST_PATH_CALLS`), the activity events it puts, and the workflow it
  starts (onboarding, offboarding);
- ``aws_prices.BILLING``: what one call of each operation is billed as (a ``PriceKind``, units);
- ``aws_prices.PRICES``: the price of one unit of each kind (us-east-1 on-demand list prices).

A route's cost is ``sum(units * price)`` over every call a request makes, rounded up to whole
nano-dollars (:attr:`RouteCost.nanodollars`, what the rate limiter counts). Counted per request:

- the API Gateway request, the authorizer's invocation **in full** (not amortised: API Gateway
  keeps an answer per token and source address for ``AuthorizerCacheTtl`` seconds, so a busy
  client pays less; a client with one request per token pays exactly this), the route function's
  invocation and its GB-seconds at the function's memory for the route's typical duration;
- the request path's DynamoDB calls (quota counter with its lease, the release, session, tenant
  record);
  reads that a worker caches for a few seconds are counted as made (an upper bound);
- each activity event (EventBridge PutEvents entry) and what the audit writer does with it
  (its invocation, chain head, write-once S3 record: :data:`AUDIT_RECORD`).

Not counted (documented in README "Quotas and rate limits"): monthly charges (KMS keys, secrets,
storage, the database), CloudWatch Logs and X-Ray, data transfer, free tiers and volume tiers,
PostgreSQL work. Item sizes are assumed small (writes ≤ 1 KB, strongly consistent reads ≤ 4 KB).
Each route's **budget** is :meth:`RouteCost.warm_calls`: the AWS calls of a warm request of the
route, by operation, exactly as tests/e2e/test_route_budgets_http.py measures them; a change that
makes a route call AWS more often fails that test until the table says so.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from functools import cache

from tenant_security.authz.aws_prices import PRICES, Invocation, PriceKind, Workflow

NANOS_PER_USD = Decimal(1_000_000_000)


# The authorizer on every request: the session, and the tenant record (cached a few seconds).
AUTHORIZER = Invocation("AuthorizerFunction", 50, {"dynamodb:GetItem": 2})
# The request middleware of every route behind the authorizer: the quota counter's one
# UpdateItem (rate, cost and the concurrency lease at once) and the lease's release (another),
# the session, the caller's tenant record (a few seconds' cache) and the policy's freshness.
REQUEST_PATH_CALLS: Mapping[str, int] = {
    "dynamodb:GetItem": 3,
    "dynamodb:UpdateItem": 2,
}
# A warm request's own request path, the part of the budget every route behind the authorizer
# pays (the authorizer's answer is kept by API Gateway for the token, the caller's tenant record by
# the function for a few seconds): the session, read on every request (revocable from the next
# one), the rate counter's one write, which takes the concurrency lease too, and the lease's
# release once answered.
WARM_REQUEST_PATH: Mapping[str, int] = {
    "dynamodb:GetItem": 1,
    "dynamodb:UpdateItem": 2,
}
# A write (POST, PUT, PATCH, DELETE) reads its tenant's record now, not from the cache: a
# suspension stops writes at once (tenant_directory.WRITE_STATUS_MAX_AGE).
WRITE_STATUS_READ: Mapping[str, int] = {"dynamodb:GetItem": 1}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What the audit writer does with one activity event: its invocation, the tenant record and the
# chain head, the head's move with the record's entry (one transaction), the write-once record.
AUDIT_RECORD = Invocation(
    "AuditWriterFunction",
    100,
    {"dynamodb:GetItem": 2, "dynamodb:TransactWriteItems": 1, "s3:PutObject": 1},
)

# Onboarding's happy path: 10 states (Validate, Register, Registered?, CreateKeys, CreateBuckets,
# CreateDatabase, CreateAdmin, Activate, OnboardedEvent, Onboarded), 7 of them Lambda steps.
ONBOARDING = Workflow(
    transitions=10,
    invocations=(
        Invocation("OnboardingFunction", 300, {"dynamodb:GetItem": 1}),  # Validate
        Invocation("OnboardingFunction", 300, {"dynamodb:PutItem": 1, "dynamodb:GetItem": 1}),  # Register
        Invocation(  # CreateKeys: data and secrets keys, aliases, rotation
            "OnboardingFunction",
            2000,
            {"kms:CreateKey": 2, "kms:CreateAlias": 2, "kms:EnableKeyRotation": 2, "dynamodb:UpdateItem": 1},
        ),
        Invocation(  # CreateBuckets: data and audit buckets and their settings
            "OnboardingFunction",
            3000,
            {"s3:CreateBucket": 2, "s3:PutBucketConfiguration": 14, "dynamodb:UpdateItem": 1},
        ),
        Invocation(  # CreateDatabase: the login's secret (PostgreSQL work is not AWS-billed)
            "OnboardingFunction",
            3000,
            {"secretsmanager:CreateSecret": 1, "secretsmanager:GetSecretValue": 1, "dynamodb:UpdateItem": 1},
        ),
        Invocation("OnboardingFunction", 500, {"dynamodb:TransactWriteItems": 1}),  # CreateAdmin
        Invocation("OnboardingFunction", 300, {"dynamodb:UpdateItem": 1}),  # Activate
    ),
    events=1,  # Tenant Onboarded (OnboardedEvent, a Step Functions PutEvents)
)
# Offboarding: BeginOffboarding, Offboard, OffboardedEvent.
OFFBOARDING = Workflow(
    transitions=3,
    invocations=(
        Invocation("OnboardingFunction", 300, {"dynamodb:UpdateItem": 1, "dynamodb:GetItem": 1}),
        Invocation(  # sessions revoked, database dropped, keys scheduled for deletion, secrets
            "OnboardingFunction",
            5000,
            {
                "dynamodb:Query": 2,
                "dynamodb:TransactWriteItems": 2,
                "dynamodb:UpdateItem": 2,
                "kms:ScheduleKeyDeletion": 2,
                "secretsmanager:DeleteSecret": 1,
                "s3:PutBucketConfiguration": 2,
            },
        ),
    ),
    events=1,  # Tenant Offboarded
)


@dataclass(frozen=True)
class RouteCalls:
    """A route's row: its function, typical duration, its handler's own calls (beyond
    :data:`REQUEST_PATH_CALLS`), the activity events it puts, the workflow it starts."""

    function: str
    calls: Mapping[str, int] = field(default_factory=dict)
    duration_ms: int = 100
    events: int = 1
    workflow: Workflow | None = None
    # The handler's calls when warm, where they differ from ``calls`` (which counts a cold one's
    # key fetches too): what the budget (:meth:`RouteCost.warm_calls`) holds it to.
    warm: Mapping[str, int] | None = None


@dataclass(frozen=True)
class RouteCost:
    """What one request of a route costs: calls by operation, units by kind, US dollars."""

    method: str
    resource: str
    row: RouteCalls

    def request_calls(self) -> Counter[str]:
        """The AWS calls of the request path by operation (authorizer and route function), as the
        local cloud measures them; the audit writer and the workflow are not in it."""
        calls: Counter[str] = Counter(AUTHORIZER.calls)
        calls.update(REQUEST_PATH_CALLS)
        calls.update(self.row.calls)
        calls["events:PutEvents"] += self.row.events
        return calls

    def warm_calls(self) -> Counter[str]:
        """The route's budget: the AWS calls of a warm request (the route function's, with the
        authorizer's answer cached), by operation."""
        calls: Counter[str] = Counter(WARM_REQUEST_PATH)
        if self.method in WRITE_METHODS:
            calls.update(WRITE_STATUS_READ)
        calls.update(self.row.warm if self.row.warm is not None else self.row.calls)
        calls["events:PutEvents"] += self.row.events
        return +calls

    def invocations(self) -> tuple[Invocation, ...]:
        """Every Lambda invocation one request causes, its own and those after its reply."""
        function = Invocation(
            self.row.function,
            self.row.duration_ms,
            {**(Counter(REQUEST_PATH_CALLS) + Counter(self.row.calls)), "events:PutEvents": self.row.events},
        )
        workflow = self.row.workflow
        events = self.row.events + (workflow.events if workflow else 0)
        return (
            AUTHORIZER,
            function,
            *(workflow.invocations if workflow else ()),
            *([AUDIT_RECORD] * events),
        )

    def units(self) -> dict[PriceKind, Decimal]:
        """Billed units by kind, for one request."""
        units: dict[PriceKind, Decimal] = defaultdict(Decimal)
        units[PriceKind.API_GATEWAY_REQUEST] += 1
        for invocation in self.invocations():
            for kind, n in invocation.units().items():
                units[kind] += n
        if self.row.workflow is not None:
            units[PriceKind.STEP_FUNCTIONS_TRANSITION] += self.row.workflow.transitions
            units[PriceKind.EVENTBRIDGE_EVENT] += self.row.workflow.events
        return dict(units)

    @property
    def usd(self) -> Decimal:
        """The request's estimated AWS cost in US dollars."""
        return sum((Decimal(n) * PRICES[kind] for kind, n in self.units().items()), Decimal(0))

    @property
    def nanodollars(self) -> int:
        """The cost in whole nano-dollars (rounded up): what the quotas count."""
        return int((self.usd * NANOS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


_ADMIN, _AUTH, _DATA, _COMPLIANCE = (
    "AdminApiFunction",
    "AuthApiFunction",
    "DataApiFunction",
    "ComplianceApiFunction",
)
_GET = "dynamodb:GetItem"

# A compliance report (SOX or another framework): users and roles, key rotation, bucket
# settings, a page of the trail.
_REPORT = RouteCalls(
    _COMPLIANCE,
    {
        "dynamodb:Query": 5,
        _GET: 2,
        "kms:DescribeKey": 2,
        "kms:GetKeyRotationStatus": 2,
        "s3:GetBucketConfiguration": 6,
        "s3:ListObjectsV2": 1,
        "s3:GetObject": 50,
    },
    duration_ms=3000,
)

# The one table: (method, resource as in authz/routes.py) → the route's row. Counted from each
# route's code path; tests/e2e/test_route_costs_http.py measures several through the local cloud.
ROUTE_CALLS: Mapping[tuple[str, str], RouteCalls] = {
    ("POST", "/auth/logout"): RouteCalls(_AUTH, {"dynamodb:TransactWriteItems": 1}),
    ("GET", "/auth/sessions"): RouteCalls(_AUTH, {"dynamodb:Query": 1}),
    # the grant judged (custom roles read), the verifier key (its Decrypt cached for 5 minutes,
    # not counted), one transaction with the tenant's client count
    ("POST", "/tenants/{tenant_id}/clients"): RouteCalls(_AUTH, {_GET: 2, "dynamodb:TransactWriteItems": 1}),
    ("GET", "/tenants/{tenant_id}/clients"): RouteCalls(_AUTH, {"dynamodb:Query": 1}),
    ("DELETE", "/tenants/{tenant_id}/clients/{client_id}"): RouteCalls(
        _AUTH, {"dynamodb:TransactWriteItems": 1}
    ),
    ("POST", "/tenants/{tenant_id}/clients/{client_id}/secret"): RouteCalls(
        _AUTH, {_GET: 2, "dynamodb:UpdateItem": 1}
    ),
    ("DELETE", "/auth/sessions/{session_id}"): RouteCalls(_AUTH, {_GET: 1, "dynamodb:TransactWriteItems": 1}),
    # the request goes on the bus (Tenant Onboarding Requested), which starts the workflow
    ("POST", "/tenants"): RouteCalls(
        _ADMIN, {_GET: 1, "dynamodb:PutItem": 1}, duration_ms=200, events=2, workflow=ONBOARDING
    ),
    ("GET", "/tenants/{tenant_id}"): RouteCalls(_ADMIN, {_GET: 1}),
    ("DELETE", "/tenants/{tenant_id}"): RouteCalls(
        _ADMIN, {_GET: 1, "dynamodb:UpdateItem": 1}, duration_ms=200, events=2, workflow=OFFBOARDING
    ),
    # suspending ends the tenant's sessions too (one transaction per ~95 sessions)
    ("POST", "/tenants/{tenant_id}/suspend"): RouteCalls(
        _ADMIN, {_GET: 1, "dynamodb:UpdateItem": 1, "dynamodb:Query": 1, "dynamodb:TransactWriteItems": 1}
    ),
    ("POST", "/tenants/{tenant_id}/reinstate"): RouteCalls(_ADMIN, {_GET: 1, "dynamodb:UpdateItem": 1}),
    ("GET", "/tenants/{tenant_id}/quotas"): RouteCalls(_ADMIN),
    ("PUT", "/tenants/{tenant_id}/quotas"): RouteCalls(_ADMIN, {_GET: 1, "dynamodb:UpdateItem": 1}),
    # the counter item per shard (its leases with it) and the storage ledger
    ("GET", "/tenants/{tenant_id}/quotas/usage"): RouteCalls(_ADMIN, {_GET: 2}),
    ("GET", "/tenants/{tenant_id}/policies"): RouteCalls(_ADMIN, {_GET: 1}),
    # the policy and its history entry in one transaction
    ("PUT", "/tenants/{tenant_id}/policies"): RouteCalls(_ADMIN, {_GET: 1, "dynamodb:TransactWriteItems": 1}),
    ("PATCH", "/tenants/{tenant_id}/policies"): RouteCalls(
        _ADMIN, {_GET: 1, "dynamodb:TransactWriteItems": 1}
    ),
    ("GET", "/tenants/{tenant_id}/policies/history"): RouteCalls(_ADMIN, {"dynamodb:Query": 1}),
    # custom roles live in the tenant record; a deletion first looks for users holding the role
    ("GET", "/tenants/{tenant_id}/roles"): RouteCalls(_ADMIN, {_GET: 1}),
    ("PUT", "/tenants/{tenant_id}/roles/{role}"): RouteCalls(_ADMIN, {_GET: 1, "dynamodb:UpdateItem": 1}),
    ("DELETE", "/tenants/{tenant_id}/roles/{role}"): RouteCalls(
        _ADMIN, {_GET: 1, "dynamodb:Query": 1, "dynamodb:UpdateItem": 1}
    ),
    # hashing the one-time password is the long part
    ("POST", "/tenants/{tenant_id}/users"): RouteCalls(
        _ADMIN, {_GET: 1, "dynamodb:TransactWriteItems": 1}, duration_ms=300
    ),
    ("GET", "/tenants/{tenant_id}/users"): RouteCalls(_ADMIN, {"dynamodb:Query": 1}),
    ("DELETE", "/tenants/{tenant_id}/users/{username}"): RouteCalls(
        _ADMIN, {_GET: 1, "dynamodb:Query": 1, "dynamodb:TransactWriteItems": 2}
    ),
    ("PUT", "/tenants/{tenant_id}/users/{username}/roles"): RouteCalls(
        _ADMIN, {_GET: 1, "dynamodb:TransactWriteItems": 1}
    ),
    ("DELETE", "/tenants/{tenant_id}/sessions"): RouteCalls(
        _ADMIN, {"dynamodb:Query": 1, "dynamodb:TransactWriteItems": 1}
    ),
    ("GET", "/tenants/{tenant_id}/sessions"): RouteCalls(_ADMIN, {"dynamodb:Query": 1}),
    ("DELETE", "/tenants/{tenant_id}/users/{username}/sessions"): RouteCalls(
        _ADMIN, {"dynamodb:Query": 1, "dynamodb:TransactWriteItems": 1}
    ),
    ("GET", "/tenants/{tenant_id}/files"): RouteCalls(_DATA, {"s3:ListObjectsV2": 1}),
    # the key's lock, the bytes reserved, the envelope-encrypted object, the version committed
    ("PUT", "/tenants/{tenant_id}/files/{key+}"): RouteCalls(
        _DATA,
        {
            _GET: 1,
            "dynamodb:PutItem": 1,
            "dynamodb:UpdateItem": 1,
            "dynamodb:TransactWriteItems": 1,
            "kms:GenerateDataKey": 1,
            "s3:PutObject": 1,
        },
        duration_ms=300,
        # measured warm: the key's lock taken (a put) and released (a delete), the reservation and
        # the commit (a transaction each) and one ledger update; the data key is fetched for every
        # file even warm (its encryption context names the file's key, and the cache is by context)
        warm={
            "dynamodb:PutItem": 1,
            "dynamodb:DeleteItem": 1,
            "dynamodb:UpdateItem": 1,
            "dynamodb:TransactWriteItems": 2,
            "kms:GenerateDataKey": 1,
            "s3:PutObject": 1,
        },
    ),
    ("GET", "/tenants/{tenant_id}/files/{key+}"): RouteCalls(
        _DATA, {"s3:GetObject": 1, "kms:Decrypt": 1}, duration_ms=200
    ),
    # every version of the key listed and removed, each released
    ("DELETE", "/tenants/{tenant_id}/files/{key+}"): RouteCalls(
        _DATA,
        {
            "dynamodb:PutItem": 1,
            "s3:ListObjectVersions": 1,
            "s3:DeleteObjects": 1,
            "dynamodb:TransactWriteItems": 1,
            "dynamodb:DeleteItem": 1,
        },
        duration_ms=200,
    ),
    # a presigned upload: the upload's record and its reservation (presigning calls no AWS API)
    ("POST", "/tenants/{tenant_id}/uploads"): RouteCalls(
        _DATA, {"dynamodb:PutItem": 1, "dynamodb:UpdateItem": 1}
    ),
    # the staged object checked, copied into place, counted, the staging key removed
    ("POST", "/tenants/{tenant_id}/uploads/{upload_id}/complete"): RouteCalls(
        _DATA,
        {
            _GET: 2,
            "dynamodb:PutItem": 1,
            "s3:HeadObject": 1,
            "s3:CopyObject": 1,
            "dynamodb:TransactWriteItems": 1,
            "s3:DeleteObject": 1,
        },
        duration_ms=300,
    ),
    ("POST", "/tenants/{tenant_id}/downloads"): RouteCalls(_DATA, {"s3:HeadObject": 1}),
    # the record's idempotency hold, the storage ledger (the record itself goes to PostgreSQL)
    ("POST", "/tenants/{tenant_id}/records"): RouteCalls(
        _DATA, {"dynamodb:PutItem": 1, "dynamodb:DeleteItem": 1, "dynamodb:UpdateItem": 1}
    ),
    ("GET", "/tenants/{tenant_id}/records/{record_id}"): RouteCalls(_DATA),
    # a fresh data key per secret; a replacement is a CreateSecret refused, then PutSecretValue
    ("PUT", "/tenants/{tenant_id}/secrets/{name}"): RouteCalls(
        _DATA,
        {
            "dynamodb:PutItem": 1,
            "dynamodb:DeleteItem": 1,
            "kms:GenerateDataKey": 1,
            "secretsmanager:CreateSecret": 1,
            "secretsmanager:PutSecretValue": 1,
        },
    ),
    ("GET", "/tenants/{tenant_id}/secrets/{name}"): RouteCalls(
        _DATA, {"kms:Decrypt": 1, "secretsmanager:GetSecretValue": 1}
    ),
    # a page of the trail from the audit index: one Query (a filter: an index's, and the bodies
    # by BatchGetItem), the page's subject keys in one BatchGetItem (the Encryption SDK's and
    # the subject keys' caches: no KMS call when warm; a cold one unwraps, counted once)
    ("GET", "/tenants/{tenant_id}/audit"): RouteCalls(
        _COMPLIANCE, {"dynamodb:Query": 1, "dynamodb:BatchGetItem": 2, "kms:Decrypt": 1}, duration_ms=200
    ),
    # a page of the OCSF export (1,000 records at most): Query pages of the table, bodies included
    # (~2 KB each: 2 MB, two 1 MB pages), decrypted with cached data keys
    ("GET", "/tenants/{tenant_id}/audit/export"): RouteCalls(
        _COMPLIANCE, {"dynamodb:Query": 2, "kms:Decrypt": 1}, duration_ms=2000
    ),
    # the whole chain (a thousand records assumed) and its signed checkpoints
    ("GET", "/tenants/{tenant_id}/audit/verify"): RouteCalls(
        _COMPLIANCE,
        # and the tree in the audit index (2,000 nodes and 1,000 record copies: ~10 query pages)
        {
            "s3:ListObjectsV2": 1,
            "s3:GetObject": 1000,
            "dynamodb:GetItem": 1,
            "dynamodb:Query": 10,
            "kms:Verify": 24,
        },
        duration_ms=5000,
    ),
    # the latest checkpoint: the head (its position) and the checkpoint object
    ("GET", "/tenants/{tenant_id}/audit/checkpoint"): RouteCalls(
        _COMPLIANCE, {_GET: 1, "s3:GetObject": 1}, duration_ms=100
    ),
    # a record by sequence: its index entry, decrypted (a cached data key, or one Decrypt)
    ("GET", "/tenants/{tenant_id}/audit/records/{sequence}"): RouteCalls(
        _COMPLIANCE, {_GET: 1, "kms:Decrypt": 1}, duration_ms=100
    ),
    # a proof: the head (the tree's size) and the O(log n) nodes it needs, in one batch
    ("GET", "/tenants/{tenant_id}/audit/proofs/inclusion"): RouteCalls(
        _COMPLIANCE, {_GET: 1, "dynamodb:BatchGetItem": 1}, duration_ms=100
    ),
    ("GET", "/tenants/{tenant_id}/audit/proofs/consistency"): RouteCalls(
        _COMPLIANCE, {_GET: 1, "dynamodb:BatchGetItem": 1}, duration_ms=100
    ),
    ("GET", "/tenants/{tenant_id}/reports/sox"): _REPORT,
    ("GET", "/tenants/{tenant_id}/reports/{framework}"): _REPORT,
    # what the tenant holds about the subject: user, sessions, trail, records (database login)
    ("GET", "/tenants/{tenant_id}/gdpr/subjects/{username}"): RouteCalls(
        _COMPLIANCE,
        {
            "dynamodb:Query": 3,
            _GET: 2,
            "s3:ListObjectsV2": 1,
            "s3:GetObject": 50,
            "kms:Decrypt": 2,
            "secretsmanager:GetSecretValue": 1,
        },
        duration_ms=2000,
    ),
    # the user removed, sessions ended, the subject key deleted (crypto-shredding)
    ("DELETE", "/tenants/{tenant_id}/gdpr/subjects/{username}"): RouteCalls(
        _COMPLIANCE,
        {_GET: 2, "dynamodb:Query": 1, "dynamodb:TransactWriteItems": 2, "dynamodb:DeleteItem": 1},
        duration_ms=500,
        events=2,
    ),
}

# A route with no row (one a handler added before its row was written; the table test names
# it): the cost of a route that reads one item.
DEFAULT_ROW = RouteCalls(_ADMIN, {_GET: 1})


@cache
def cost_of(method: str, resource: str) -> RouteCost:
    """The cost of one request of a route (the default row's for a route the table lacks)."""
    return RouteCost(method, resource, ROUTE_CALLS.get((method, resource), DEFAULT_ROW))


DEFAULT_COST = RouteCost("*", "*", DEFAULT_ROW)
