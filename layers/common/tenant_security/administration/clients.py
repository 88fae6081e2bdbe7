"""API client administration of a tenant: create (the secret shown once), list, delete, rotate.

A client's roles are a grant like a user's (:func:`tenant_security.authz.grants.judge_grant`):
known roles, never beyond the grantor, platform-admin only in the platform tenant by a
platform-admin. A new secret for an existing client is that grant made again (whoever holds the
secret holds the roles), so a rotation is judged by the same rule on the client's roles. In the
platform tenant only a platform-admin manages clients at all: a machine credential there reaches
every tenant. Who made a client is in the trail (its creation's record), not on the client: a
name there would outlive the user's erasure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tenant_security.authz.grants import judge_grant
from tenant_security.errors import Forbidden, NotFound
from tenant_security.identity.client_secrets import VerifierKeys, new_secret, verifier
from tenant_security.identity.clients import ApiClient, ApiClientStore, Verifier, iso_time, new_client_id
from tenant_security.identity.users import GuardFailed

if TYPE_CHECKING:
    from tenant_security.actors import Actor
    from tenant_security.authz.role_store import RoleStore
    from tenant_security.tenants import TenantProfile

DAY_SECONDS = 86400
# A creation granting a custom role that met a change of the tenant's roles reads them again.
_GRANT_ATTEMPTS = 10


class ClientAdmin:
    """What tenant-admins (and platform-admins) do to a tenant's API clients."""

    def __init__(
        self,
        clients: ApiClientStore,
        keys: VerifierKeys,
        platform_tenant: str,
        custom_roles: RoleStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.keys = keys
        self.platform_tenant = platform_tenant
        self.custom_roles = custom_roles
        self.clock = clock

    def _may_manage(self, actor: Actor, tenant_id: str) -> None:
        """403 for a caller who may not manage the tenant's clients at all: an API client (a
        machine never mints machine credentials), anyone but a platform-admin in the platform
        tenant."""
        if actor.client_id is not None:
            raise Forbidden("an API client cannot manage API clients")
        if tenant_id == self.platform_tenant and not actor.platform_admin:
            raise Forbidden("only a platform-admin manages API clients of the platform tenant")

    def create(
        self,
        actor: Actor,
        tenant: TenantProfile,
        name: str,
        roles: Sequence[str],
        expires_in_days: int,
        ip_whitelist: Sequence[str] = (),
        creation_id: str | None = None,
    ) -> dict[str, Any]:
        """A new client and its secret (returned once; only its verifier is kept).

        ``creation_id``: the Idempotency-Key's (idempotency.creation_id), which names the client:
        a retry whose first attempt created it but lost the reply finds it (409
        ``client_exists``), never a second client beside an orphan."""
        self._may_manage(actor, tenant.tenant_id)
        wanted = tuple(dict.fromkeys(roles))
        for _attempt in range(_GRANT_ATTEMPTS):
            read = judge_grant(actor, tenant, wanted, self.platform_tenant, self.custom_roles)
            guard = self.custom_roles.grant_check(read) if read is not None and self.custom_roles else None
            key = self.keys.current(tenant.tenant_id)
            client_id = new_client_id(tenant.tenant_id, creation_id)
            secret, now = new_secret(), int(self.clock())
            client = ApiClient(
                tenant_id=tenant.tenant_id,
                client_id=client_id,
                name=name,
                roles=wanted,
                created_at=now,
                expires_at=now + expires_in_days * DAY_SECONDS,
                ip_whitelist=tuple(dict.fromkeys(ip_whitelist)),
                verifiers=(Verifier(verifier(key.material, client_id, secret)),),
                verifier_key=key.key_id,
            )
            try:
                self.clients.create(client, guard)
            except GuardFailed:
                continue  # the tenant's roles changed meanwhile: judge the grant again
            return {**client.public(), "client_secret": secret}
        raise GuardFailed("the tenant's roles keep changing; try again")

    def list_clients(self, actor: Actor, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's clients, by id (never a secret)."""
        self._may_manage(actor, tenant_id)
        return [client.public() for client in self.clients.list_clients(tenant_id)]

    def delete(self, actor: Actor, tenant_id: str, client_id: str) -> None:
        """Remove a client: its tokens are refused from the next request; 404 if there is none."""
        self._may_manage(actor, tenant_id)
        self.clients.delete(tenant_id, client_id)

    def rotate(
        self, actor: Actor, tenant: TenantProfile, client_id: str, grace_seconds: int
    ) -> dict[str, Any]:
        """A new secret for the client (returned once); the one it replaces works for
        ``grace_seconds`` more (0: not at all), and any older one no longer. Only a caller who
        could grant the client's roles may: the new secret is those roles, given anew."""
        self._may_manage(actor, tenant.tenant_id)
        now = self.clock()
        client = self.clients.get(tenant.tenant_id, client_id)
        if client is None or not client.live(now):
            raise NotFound("no such client")
        judge_grant(actor, tenant, client.roles, self.platform_tenant, self.custom_roles)
        key = self.keys.current(tenant.tenant_id)
        if key.key_id != client.verifier_key:
            raise NotFound("no such client")  # made under a key since shredded: it verifies nothing
        secret = new_secret()
        verifiers = [Verifier(verifier(key.material, client_id, secret))]
        until = int(now) + grace_seconds if grace_seconds > 0 else None
        if until is not None:
            verifiers += [Verifier(v.value, until) for v in client.verifiers if v.not_after is None]
        self.clients.rotate(client, verifiers, now)
        return {
            "client_id": client_id,
            "client_secret": secret,
            "previous_secret_expires_at": iso_time(until),
        }
