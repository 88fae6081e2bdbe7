"""The credentials onboarding hands over: the tenant's secrets in Secrets Manager (under the
tenant secrets key) and its first tenant-admin, whose one-time password is one of them."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

from tenant_security.authz.rbac import TENANT_ADMIN
from tenant_security.aws import error_code
from tenant_security.config import Settings
from tenant_security.database import CREDENTIALS_SECRET
from tenant_security.errors import Conflict
from tenant_security.identity.passwords import generate_password, hash_password
from tenant_security.identity.users import User, UserStore
from tenant_security.models.onboarding import OnboardingRequest
from tenant_security.tenant_secrets import INITIAL_PASSWORD_SECRET

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import TagTypeDef


class OnboardingSecrets:
    """A tenant's secrets, named ``<prefix>/tenants/<id>/<what>`` (a Secrets Manager client given)."""

    def __init__(self, settings: Settings, secrets: SecretsManagerClient) -> None:
        self.settings = settings
        self.secrets = secrets

    def name(self, tenant_id: str, what: str) -> str:
        """The name of the tenant's secret ``what``."""
        return self.settings.tenant_secret_name(tenant_id, what)

    def put(self, name: str, value: str, tenant_id: str, description: str, username: str = "") -> None:
        """Store ``value`` under the tenant secrets key, tagged with the tenant (and ``username``);
        a secret already there gets the new value."""
        key = self.settings.secrets_key_arn(tenant_id)
        tags: list[TagTypeDef] = [{"Key": "TenantId", "Value": tenant_id}]
        if username:
            tags.append({"Key": "Username", "Value": username})
        try:
            self.secrets.create_secret(
                Name=name, SecretString=value, KmsKeyId=key, Description=description, Tags=tags
            )
        except Exception as exc:
            if error_code(exc) != "ResourceExistsException":
                raise
            self.secrets.put_secret_value(SecretId=name, SecretString=value)

    def delete_all(self, tenant_id: str) -> int:
        """Every secret of the tenant (the admin's one-time password, the database login, the
        application secrets), at once and without recovery; how many."""
        prefix = self.name(tenant_id, "")
        names = {self.name(tenant_id, what) for what in (INITIAL_PASSWORD_SECRET, CREDENTIALS_SECRET)}
        for page in self.secrets.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "name", "Values": [prefix]}]
        ):
            names |= {str(s["Name"]) for s in page.get("SecretList", []) if str(s["Name"]).startswith(prefix)}
        for name in sorted(names):
            self._delete(name)
        return len(names)

    def _delete(self, name: str) -> None:
        try:
            self.secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise


def create_first_admin(
    request: OnboardingRequest, users: UserStore, secrets: OnboardingSecrets
) -> dict[str, str]:
    """The tenant's first tenant-admin, with a one-time password kept for the operator.

    Created before activation: the admin cannot sign in until the tenant is ACTIVE. A retry
    that finds the user changes nothing.
    """
    tenant_id, username = request.tenant_id, request.admin.username
    secret = secrets.name(tenant_id, INITIAL_PASSWORD_SECRET)
    if users.get(tenant_id, username) is None:
        password = generate_password(24)
        secrets.put(
            secret,
            json.dumps({"username": username, "password": password}),
            tenant_id,
            "One-time password of the tenant's first admin (deleted at first sign-in)",
            username=username,
        )
        with contextlib.suppress(Conflict):  # a retry of this step created it first
            users.create(
                User(
                    tenant_id=tenant_id,
                    username=username,
                    email=request.admin.email,
                    roles=[TENANT_ADMIN],
                    password_hash=hash_password(password),
                    password_change_required=True,
                )
            )
    return {"username": username, "initial_password_secret": secret}
