"""AWS list prices and what each AWS operation is billed as: the price half of the route cost
table (authz/route_costs.py holds the calls each route makes).

Prices are us-east-1 on-demand list prices (2026), first volume tier, free tiers ignored; each
names the AWS pricing page it comes from. A change of price is a change here and nowhere else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class PriceKind(StrEnum):
    """A billing dimension: what AWS charges one unit of."""

    API_GATEWAY_REQUEST = "apigateway:RestApiRequest"
    LAMBDA_REQUEST = "lambda:Request"
    LAMBDA_GB_SECOND = "lambda:GB-second"
    DYNAMODB_WRITE_UNIT = "dynamodb:WriteRequestUnit"
    DYNAMODB_READ_UNIT = "dynamodb:ReadRequestUnit"
    KMS_REQUEST = "kms:SymmetricRequest"
    KMS_ASYMMETRIC_REQUEST = "kms:AsymmetricRequest"
    S3_TIER1_REQUEST = "s3:PutCopyPostListRequest"
    S3_TIER2_REQUEST = "s3:GetAndOtherRequest"
    S3_FREE_REQUEST = "s3:DeleteRequest"
    EVENTBRIDGE_EVENT = "events:CustomEvent"
    SECRETS_MANAGER_CALL = "secretsmanager:ApiCall"
    STEP_FUNCTIONS_TRANSITION = "states:StateTransition"


# USD per unit, us-east-1, on-demand list prices (2026), first volume tier, free tier ignored.
PRICES: Mapping[PriceKind, Decimal] = {
    # https://aws.amazon.com/api-gateway/pricing/ -- REST APIs: $3.50 per million requests
    PriceKind.API_GATEWAY_REQUEST: Decimal("3.50") / 1_000_000,
    # https://aws.amazon.com/lambda/pricing/ -- $0.20 per million requests
    PriceKind.LAMBDA_REQUEST: Decimal("0.20") / 1_000_000,
    # https://aws.amazon.com/lambda/pricing/ -- x86: $0.0000166667 per GB-second
    PriceKind.LAMBDA_GB_SECOND: Decimal("0.0000166667"),
    # https://aws.amazon.com/dynamodb/pricing/on-demand/ -- $0.625 per million write request units
    PriceKind.DYNAMODB_WRITE_UNIT: Decimal("0.625") / 1_000_000,
    # https://aws.amazon.com/dynamodb/pricing/on-demand/ -- $0.125 per million read request units
    PriceKind.DYNAMODB_READ_UNIT: Decimal("0.125") / 1_000_000,
    # https://aws.amazon.com/kms/pricing/ -- $0.03 per 10,000 requests (symmetric, HMAC)
    PriceKind.KMS_REQUEST: Decimal("0.03") / 10_000,
    # https://aws.amazon.com/kms/pricing/ -- $0.15 per 10,000 asymmetric requests (ECC, RSA > 2048)
    PriceKind.KMS_ASYMMETRIC_REQUEST: Decimal("0.15") / 10_000,
    # https://aws.amazon.com/s3/pricing/ -- S3 Standard: PUT, COPY, POST, LIST $0.005 per 1,000
    PriceKind.S3_TIER1_REQUEST: Decimal("0.005") / 1_000,
    # https://aws.amazon.com/s3/pricing/ -- S3 Standard: GET, SELECT and all other $0.0004 per 1,000
    PriceKind.S3_TIER2_REQUEST: Decimal("0.0004") / 1_000,
    # https://aws.amazon.com/s3/pricing/ -- DELETE and CANCEL requests are free
    PriceKind.S3_FREE_REQUEST: Decimal(0),
    # https://aws.amazon.com/eventbridge/pricing/ -- custom events: $1.00 per million (64 KB chunks)
    PriceKind.EVENTBRIDGE_EVENT: Decimal("1.00") / 1_000_000,
    # https://aws.amazon.com/secrets-manager/pricing/ -- $0.05 per 10,000 API calls
    PriceKind.SECRETS_MANAGER_CALL: Decimal("0.05") / 10_000,
    # https://aws.amazon.com/step-functions/pricing/ -- Standard: $0.025 per 1,000 state transitions
    PriceKind.STEP_FUNCTIONS_TRANSITION: Decimal("0.025") / 1_000,
}

_R, _W = PriceKind.DYNAMODB_READ_UNIT, PriceKind.DYNAMODB_WRITE_UNIT
_KMS, _T1, _T2 = PriceKind.KMS_REQUEST, PriceKind.S3_TIER1_REQUEST, PriceKind.S3_TIER2_REQUEST
_SM = PriceKind.SECRETS_MANAGER_CALL

# What one call of an operation is billed as: (kind, units). DynamoDB: a write of ≤ 1 KB is one
# write unit, a strongly consistent read (or a query page) of ≤ 4 KB one read unit, a transaction
# two units per item (two items assumed). Operations the handlers call and that AWS does not bill
# per request (Step Functions' StartExecution, presigning) are not listed.
BILLING: Mapping[str, tuple[PriceKind, Decimal]] = {
    "dynamodb:GetItem": (_R, Decimal(1)),
    "dynamodb:Query": (_R, Decimal(1)),
    "dynamodb:Scan": (_R, Decimal(1)),
    "dynamodb:TransactGetItems": (_R, Decimal(4)),
    # a proof's nodes: up to 2 log2(n) items of 38 bytes, each a read unit (62 at 10^9 records)
    "dynamodb:BatchGetItem": (_R, Decimal(32)),
    "dynamodb:PutItem": (_W, Decimal(1)),
    "dynamodb:UpdateItem": (_W, Decimal(1)),
    "dynamodb:DeleteItem": (_W, Decimal(1)),
    "dynamodb:TransactWriteItems": (_W, Decimal(4)),
    "kms:Decrypt": (_KMS, Decimal(1)),
    "kms:Encrypt": (_KMS, Decimal(1)),
    "kms:GenerateDataKey": (_KMS, Decimal(1)),
    "kms:GenerateMac": (_KMS, Decimal(1)),
    "kms:DescribeKey": (_KMS, Decimal(1)),
    "kms:GetKeyRotationStatus": (_KMS, Decimal(1)),
    "kms:CreateKey": (_KMS, Decimal(1)),
    "kms:CreateAlias": (_KMS, Decimal(1)),
    "kms:EnableKeyRotation": (_KMS, Decimal(1)),
    "kms:ScheduleKeyDeletion": (_KMS, Decimal(1)),
    "kms:Sign": (PriceKind.KMS_ASYMMETRIC_REQUEST, Decimal(1)),
    "kms:Verify": (PriceKind.KMS_ASYMMETRIC_REQUEST, Decimal(1)),
    "kms:GetPublicKey": (PriceKind.KMS_ASYMMETRIC_REQUEST, Decimal(1)),
    "s3:PutObject": (_T1, Decimal(1)),
    "s3:CopyObject": (_T1, Decimal(1)),
    "s3:ListObjectsV2": (_T1, Decimal(1)),
    "s3:ListObjectVersions": (_T1, Decimal(1)),
    "s3:CreateBucket": (_T1, Decimal(1)),
    "s3:PutBucketConfiguration": (_T1, Decimal(1)),  # versioning, encryption, lock, policy, ...
    "s3:GetObject": (_T2, Decimal(1)),
    "s3:HeadObject": (_T2, Decimal(1)),
    "s3:GetBucketConfiguration": (_T2, Decimal(1)),  # the compliance evidence's GetBucket*
    "s3:DeleteObject": (PriceKind.S3_FREE_REQUEST, Decimal(1)),
    "s3:DeleteObjects": (PriceKind.S3_FREE_REQUEST, Decimal(1)),
    "events:PutEvents": (PriceKind.EVENTBRIDGE_EVENT, Decimal(1)),  # one entry per call
    "secretsmanager:GetSecretValue": (_SM, Decimal(1)),
    "secretsmanager:CreateSecret": (_SM, Decimal(1)),
    "secretsmanager:PutSecretValue": (_SM, Decimal(1)),
    "secretsmanager:DeleteSecret": (_SM, Decimal(1)),
}

# Each function's MemorySize in template.yaml (Globals: 512 MB); a unit test holds them equal.
FUNCTION_MEMORY_MB: Mapping[str, int] = {
    "AuthorizerFunction": 512,
    "AuthApiFunction": 512,
    "AdminApiFunction": 512,
    "DataApiFunction": 512,
    "ComplianceApiFunction": 1024,
    "OnboardingFunction": 512,
    "AuditWriterFunction": 512,
}


@dataclass(frozen=True)
class Invocation:
    """One Lambda invocation: the function, a typical duration, the AWS calls it makes."""

    function: str
    duration_ms: int
    calls: Mapping[str, int] = field(default_factory=dict)

    def units(self) -> dict[PriceKind, Decimal]:
        """Billed units by kind: the invocation, its GB-seconds, its calls."""
        out: dict[PriceKind, Decimal] = defaultdict(Decimal)
        out[PriceKind.LAMBDA_REQUEST] += 1
        memory_gb = Decimal(FUNCTION_MEMORY_MB[self.function]) / 1024
        out[PriceKind.LAMBDA_GB_SECOND] += memory_gb * Decimal(self.duration_ms) / 1000
        for operation, count in self.calls.items():
            kind, units = BILLING[operation]
            out[kind] += units * count
        return dict(out)


@dataclass(frozen=True)
class Workflow:
    """What a route starts and runs after its reply (onboarding, offboarding): state transitions,
    invocations, and the activity events they put."""

    transitions: int
    invocations: tuple[Invocation, ...]
    events: int
