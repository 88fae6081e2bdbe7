"""Removing what onboarding built for a tenant: the one teardown of both compensation (a failed
onboarding, undone by the execution that owns it) and offboarding (a tenant leaving, its keys
crypto-shredded).

Every resource is found by its name, so a teardown removes whatever exists however far the
onboarding got, and each part is idempotent: a retried step finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenant_security.config import Settings
from tenant_security.identity.clients import ApiClientStore
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.users import UserStore
from tenant_security.onboarding.buckets import TenantBuckets
from tenant_security.onboarding.credentials import OnboardingSecrets
from tenant_security.onboarding.keys import TenantKeys
from tenant_security.onboarding.tenant_database import TenantDatabase


@dataclass(frozen=True)
class Removed:
    """What a teardown removed: counts of sessions, users and secrets; bucket names; key ids."""

    sessions: int
    users: int
    secrets: int
    buckets: list[str]
    keys: list[str]
    clients: int = 0


class Teardown:
    """Removes a tenant's sessions, users, secrets, database, buckets, API clients and keys."""

    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        users: UserStore,
        secrets: OnboardingSecrets,
        database: TenantDatabase,
        buckets: TenantBuckets,
        keys: TenantKeys,
        clients: ApiClientStore | None = None,
    ) -> None:
        """``clients``: the API clients table (its tenant's items go before the keys are shredded,
        which voids every verifier of the tenant anyway)."""
        self.clients = clients
        self.settings = settings
        self.sessions = sessions
        self.users = users
        self.secrets = secrets
        self.database = database
        self.buckets = buckets
        self.keys = keys

    def remove(self, tenant_id: str, *, keep_audit_trail: bool) -> Removed:
        """Revoke the sessions, delete the users and secrets, drop the database, delete the data
        bucket -- and the audit bucket unless ``keep_audit_trail`` -- and schedule the keys'
        deletion, in this order."""
        sessions = self.sessions.revoke_all(tenant_id)
        users = self.users.list_users(tenant_id)
        for user in users:
            self.users.delete(tenant_id, user.username)
        secrets = self.secrets.delete_all(tenant_id)
        self.database.drop(tenant_id)
        names = [self.settings.data_bucket(tenant_id)]
        if not keep_audit_trail:
            names.append(self.settings.audit_bucket(tenant_id))
        buckets = [name for name in names if self.buckets.delete(name)]
        clients = self.clients.delete_tenant(tenant_id) if self.clients is not None else 0
        keys = self.keys.shred(tenant_id)
        return Removed(sessions, len(users), secrets, buckets, keys, clients)
