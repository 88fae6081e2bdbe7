"""Pydantic models of a tenant's configuration documents (security policy, resource quotas,
onboarding request) and of the public API."""

from tenant_security.models.policies import SecurityPolicies, parse_security_policies
from tenant_security.models.quotas import ResourceQuotas, parse_resource_quotas

__all__ = ["ResourceQuotas", "SecurityPolicies", "parse_resource_quotas", "parse_security_policies"]
