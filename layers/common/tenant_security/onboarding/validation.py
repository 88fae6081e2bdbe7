"""The onboarding request, checked against the deployment before anything is done."""

from __future__ import annotations

from typing import Any

from tenant_security.config import Settings
from tenant_security.errors import ValidationFailed
from tenant_security.models.onboarding import OnboardingRequest, parse_onboarding_request


def validate_request(settings: Settings, data: Any, *, check_database: bool = True) -> OnboardingRequest:
    """The request, checked (400 with fields when it is not valid).

    ``check_database``: whether ``settings`` are the deployment's, which know if it has a
    platform database (the CLI's do not; the API and the validate step check it).
    """
    request = parse_onboarding_request(data)
    problems = []
    tenant_id = request.tenant_id
    if tenant_id == settings.platform_tenant_id:
        problems.append({"field": "tenant_id", "message": "the platform tenant cannot be onboarded"})
    if settings.region not in request.security_policies.data_protection.data_locality:
        problems.append(
            {
                "field": "security_policies.data_protection.data_locality",
                "message": f"must include {settings.region}: this deployment stores the tenant's data there",
            }
        )
    if max(len(settings.data_bucket(tenant_id)), len(settings.audit_bucket(tenant_id))) > 63:
        problems.append(
            {"field": "tenant_id", "message": "too long for the S3 bucket names with this prefix"}
        )
    if check_database:
        problems += database_problems(settings, request)
    if problems:
        raise ValidationFailed("onboarding request is not valid", fields=problems)
    return request


def database_problems(settings: Settings, request: OnboardingRequest) -> list[dict[str, str]]:
    """``isolation`` against the deployment: required with a platform database, refused without
    one (DatabaseSecretArn empty means "no tenant databases")."""
    if not settings.database_secret_arn and request.isolation is not None:
        return [
            {
                "field": "isolation",
                "message": "this deployment has no tenant databases (DatabaseSecretArn is empty): "
                "omit isolation, or deploy with a platform database",
            }
        ]
    if settings.database_secret_arn and request.isolation is None:
        return [{"field": "isolation", "message": "required: 'database' or 'schema'"}]
    return []
