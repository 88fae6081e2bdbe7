"""Tenant application secrets (PUT/GET /tenants/{t}/secrets/{name}), and the operator's copy
of a first admin's one-time password (:class:`InitialPasswords`).

Each value is encrypted with the Encryption SDK under the tenant secrets key (tenant_id, purpose
and the secret's name in the context: a value can never be read back as another tenant's or
another name's) and stored in Secrets Manager as `<prefix>/tenants/<t>/app/<name>`, itself
encrypted under the same key and tagged with the tenant.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tenant_security import crypto
from tenant_security.aws import error_code
from tenant_security.config import Settings
from tenant_security.errors import NotFound, ValidationFailed
from tenant_security.locality import check_writable_in
from tenant_security.tenants import TenantProfile

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

PURPOSE_TENANT_SECRET = "tenant-secret"  # noqa: S105 - a label, not a secret
# Where onboarding leaves a tenant's first admin's one-time password for the operator
# (``<prefix>/tenants/<t>/admin-initial-password``, tagged with the user name).
INITIAL_PASSWORD_SECRET = "admin-initial-password"  # noqa: S105 - a secret's name, not a secret
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_VALUE_BYTES = 32 * 1024  # Secrets Manager holds 64 KiB; the ciphertext needs room
_NAME = re.compile(NAME_PATTERN)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValidationFailed(
            "invalid secret name",
            fields=[
                {
                    "field": "path.name",
                    "message": "1-64 letters, digits, '_', '.', '-'; starting alphanumeric",
                }
            ],
        )
    return name


class TenantSecrets:
    """A tenant's named secrets in Secrets Manager (client given)."""

    def __init__(self, settings: Settings, client: SecretsManagerClient) -> None:
        self.settings = settings
        self.client = client

    def _id(self, tenant_id: str, name: str) -> str:
        return self.settings.tenant_secret_name(tenant_id, f"app/{check_name(name)}")

    def _context(self, tenant_id: str, name: str) -> dict[str, str]:
        return crypto.encryption_context(tenant_id, PURPOSE_TENANT_SECRET, name=name)

    def put(self, tenant: TenantProfile, name: str, value: str) -> dict[str, Any]:
        """Create or replace the secret; its version (403 outside the tenant's data locality)."""
        tenant_id = tenant.tenant_id
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise ValidationFailed(
                "secret value too large",
                fields=[{"field": "value", "message": f"at most {MAX_VALUE_BYTES} bytes"}],
            )
        secret_id = self._id(tenant_id, name)
        check_writable_in(tenant, self.settings.region)
        key = self.settings.secrets_key_arn(tenant_id)
        ciphertext = crypto.encrypt(value.encode(), key, self._context(tenant_id, name))
        try:
            version = self.client.create_secret(
                Name=secret_id,
                SecretBinary=ciphertext,
                KmsKeyId=key,
                Description="tenant application secret",
                Tags=[{"Key": "TenantId", "Value": tenant_id}],
            )["VersionId"]
        except Exception as exc:
            if error_code(exc) != "ResourceExistsException":
                raise
            version = self.client.put_secret_value(SecretId=secret_id, SecretBinary=ciphertext)["VersionId"]
        return {"name": name, "version": version, "updated_at": datetime.now(UTC).isoformat()}

    def get(self, tenant_id: str, name: str) -> dict[str, Any]:
        """The value; 404 for a name the tenant has not set."""
        try:
            reply = self.client.get_secret_value(SecretId=self._id(tenant_id, name))
        except Exception as exc:
            if error_code(exc) in ("ResourceNotFoundException", "InvalidRequestException"):
                raise NotFound(f"no secret {name!r}") from None
            raise
        plaintext = crypto.decrypt(
            bytes(reply["SecretBinary"]),
            self._context(tenant_id, name),
            self.settings.account_id,
            self.settings.partition,
        )
        return {"name": name, "value": plaintext.decode(), "version": reply["VersionId"]}


class InitialPasswords:
    """The operator's copies of first admins' one-time passwords in Secrets Manager (client given)."""

    def __init__(self, settings: Settings, client: SecretsManagerClient) -> None:
        self.settings = settings
        self.client = client

    def forget(self, tenant_id: str, username: str) -> None:
        """At a first sign-in, delete the operator's copy of that user's one-time password (if any):
        the password is spent, and its copy would only be something to steal."""
        name = self.settings.tenant_secret_name(tenant_id, INITIAL_PASSWORD_SECRET)
        try:
            described = self.client.describe_secret(SecretId=name)
        except self.client.exceptions.ResourceNotFoundException:
            return
        tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        if tags.get("Username") == username:
            self.client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
