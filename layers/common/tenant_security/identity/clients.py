"""API clients (machine identities of a tenant) in DynamoDB: key (tenant_id, client_id).

A client id is ``<tenant_id>_<20 hex digits>``: its tenant is read off it (the token endpoint is
told nothing else), and the ``_`` that no user name holds keeps a client apart from every user in
the trail. Besides its clients a tenant's partition holds two items of its own: the wrapped
verifier key (:mod:`.client_secrets`) and the count of its clients, which a creation raises and a
deletion lowers in the same transaction, so no number of parallel creations passes
:data:`MAX_CLIENTS_PER_TENANT`.

A client is live until ``expires_at`` (checked on every read). An expired client stays, listed
as expired and counted, until a tenant-admin deletes it: no TTL removes items behind the count's
back. Its secrets are verifiers only: the current one and,
after a rotation with a grace period, the previous one until its ``not_after``. A rotation writes
conditioned on the ``secret_version`` it read: of two rotations made from one version, one lands
and the other is a 409 (its new secret was never valid). ``last_used_at`` is written at most once
a minute per client (a conditional write), whatever the rate of token requests.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import CONTENTION_CODES, from_item, is_conditional_failure, query_pages
from tenant_security.errors import Conflict, DomainError, NotFound
from tenant_security.identity.users import GuardFailed
from tenant_security.models.policies import address_allowed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

CLIENT_ID_PATTERN = r"^(?P<tenant>[a-z][a-z0-9-]{2,31})_[0-9a-f]{20}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)
VERIFIER_KEY_ITEM = "#verifier-key"
COUNT_ITEM = "#count"
MAX_CLIENTS_PER_TENANT = 100
LAST_USED_RESOLUTION_SECONDS = 60


class ClientLimitReached(DomainError):
    status, code = 409, "client_limit_reached"


class ClientExists(Conflict):
    code = "client_exists"


class RotationConflict(Conflict):
    """Another rotation of the client landed first: this one's secret was never valid."""

    code = "rotation_conflict"


def new_client_id(tenant_id: str, creation_id: str | None = None) -> str:
    """A new client id of ``tenant_id``: random, or derived from an Idempotency-Key's creation id
    (the same for every retry of the request)."""
    if creation_id:
        return f"{tenant_id}_{uuid.UUID(creation_id).hex[:20]}"
    return f"{tenant_id}_{secrets.token_hex(10)}"


def tenant_of_client(client_id: str) -> str | None:
    """The tenant a client id names, or None for a string that is no client id."""
    found = _CLIENT_ID.fullmatch(client_id)
    return found.group("tenant") if found else None


def iso_time(epoch: int | None) -> str | None:
    """An epoch time as the API shows it (ISO 8601, UTC); None stays None."""
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None


@dataclass(frozen=True)
class Verifier:
    """One verifier of a client's secret; ``not_after``: the end of a rotated-away secret's grace."""

    value: str
    not_after: int | None = None

    def valid(self, now: float) -> bool:
        return self.not_after is None or now < self.not_after


@dataclass(frozen=True)
class ApiClient:
    tenant_id: str
    client_id: str
    name: str
    roles: tuple[str, ...]
    created_at: int
    expires_at: int
    # An allow-list of its own (CIDRs), narrower than the tenant's: both must admit the caller.
    ip_whitelist: tuple[str, ...] = ()
    last_used_at: int | None = None
    secret_version: int = 1
    verifiers: tuple[Verifier, ...] = field(default_factory=tuple)
    # the id of the tenant's verifier key its verifiers were made under (client_secrets.py)
    verifier_key: str = ""

    def live(self, now: float) -> bool:
        """Not expired (a deleted client has no item)."""
        return now < self.expires_at

    def valid_verifiers(self, now: float) -> list[str]:
        """The verifiers a secret may match now (the current one; a previous one in its grace)."""
        return [v.value for v in self.verifiers if v.valid(now)]

    def allows(self, address: str | None) -> bool:
        """True when the client's own allow-list (if any) holds ``address``."""
        return address_allowed(self.ip_whitelist, address)

    def public(self) -> dict[str, Any]:
        """What the API shows of a client (never a secret or a verifier)."""
        return {
            "client_id": self.client_id,
            "name": self.name,
            "roles": list(self.roles),
            "ip_whitelist": list(self.ip_whitelist),
            "created_at": iso_time(self.created_at),
            "expires_at": iso_time(self.expires_at),
            "last_used_at": iso_time(self.last_used_at),
        }


def _verifiers_value(verifiers: Sequence[Verifier]) -> dict[str, Any]:
    out = []
    for v in verifiers:
        entry: dict[str, Any] = {"v": {"S": v.value}}
        if v.not_after is not None:
            entry["not_after"] = {"N": str(v.not_after)}
        out.append({"M": entry})
    return {"L": out}


def _client(item: dict[str, Any]) -> ApiClient:
    values = from_item(item)
    verifiers = tuple(
        Verifier(str(v["v"]), int(v["not_after"]) if "not_after" in v else None)
        for v in values.get("verifiers", [])
    )
    return ApiClient(
        tenant_id=str(values["tenant_id"]),
        client_id=str(values["client_id"]),
        name=str(values.get("name", "")),
        roles=tuple(values.get("roles", [])),
        created_at=int(values.get("created_at", 0)),
        expires_at=int(values.get("expires_at", 0)),
        ip_whitelist=tuple(values.get("ip_whitelist", [])),
        last_used_at=int(values["last_used_at"]) if "last_used_at" in values else None,
        secret_version=int(values.get("secret_version", 1)),
        verifiers=verifiers,
        verifier_key=str(values.get("verifier_key", "")),
    )


class ApiClientStore:
    """The API clients table."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def _key(self, tenant_id: str, client_id: str) -> dict[str, Any]:
        return {"tenant_id": {"S": tenant_id}, "client_id": {"S": client_id}}

    # ------------------------------------------------------------------ clients
    def create(self, client: ApiClient, guard: TransactWriteItemTypeDef | None = None) -> None:
        """Store a new client, counted against MAX_CLIENTS_PER_TENANT (409 over it); ``guard``:
        a condition of the tenant's item the creation holds on (the custom roles granted)."""
        item: dict[str, Any] = {
            **self._key(client.tenant_id, client.client_id),
            "name": {"S": client.name},
            "roles": {"L": [{"S": r} for r in client.roles]},
            "ip_whitelist": {"L": [{"S": c} for c in client.ip_whitelist]},
            "created_at": {"N": str(client.created_at)},
            "expires_at": {"N": str(client.expires_at)},
            "secret_version": {"N": str(client.secret_version)},
            "verifiers": _verifiers_value(client.verifiers),
            "verifier_key": {"S": client.verifier_key},
        }
        items: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(client.tenant_id, COUNT_ITEM),
                    "UpdateExpression": "ADD clients :one",
                    "ConditionExpression": "attribute_not_exists(clients) OR clients < :max",
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":max": {"N": str(MAX_CLIENTS_PER_TENANT)},
                    },
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(client_id)",
                }
            },
        ]
        if guard is not None:
            items.append(guard)
        try:
            # a token per call: botocore's retry of a call whose reply was lost is that call again
            # (it succeeds), another request's attempt is not (it meets the item: client_exists)
            self.client.transact_write_items(TransactItems=items, ClientRequestToken=str(uuid.uuid4()))
        except Exception as exc:
            codes = getattr(exc, "response", {}).get("CancellationReasons") or []
            reasons = [str(r.get("Code", "None")) for r in codes]
            if (
                guard is not None
                and len(reasons) > 2
                and reasons[2] in ("ConditionalCheckFailed", *CONTENTION_CODES)
            ):
                raise GuardFailed("the tenant's roles changed meanwhile") from exc
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise ClientExists(
                    "a client was made by a request with this Idempotency-Key whose reply was lost: "
                    "delete it (GET /tenants/{t}/clients) and make it again with a new key"
                ) from exc
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise ClientLimitReached(
                    f"the tenant has {MAX_CLIENTS_PER_TENANT} API clients; delete one first"
                ) from exc
            raise

    def get(self, tenant_id: str, client_id: str) -> ApiClient | None:
        """The client, or None (a consistent read: a deletion or rotation just made is seen)."""
        if tenant_of_client(client_id) != tenant_id:
            return None
        reply = self.client.get_item(
            TableName=self.table, Key=self._key(tenant_id, client_id), ConsistentRead=True
        )
        item = reply.get("Item")
        return _client(item) if item else None

    def list_clients(self, tenant_id: str) -> list[ApiClient]:
        """The tenant's clients (expired ones too, until purged), by id."""
        found: list[ApiClient] = []
        for page in query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="tenant_id = :t AND begins_with(client_id, :p)",
            ExpressionAttributeValues={":t": {"S": tenant_id}, ":p": {"S": f"{tenant_id}_"}},
            ConsistentRead=True,
        ):
            found.extend(_client(item) for item in page.get("Items", []))
        return sorted(found, key=lambda c: c.client_id)

    def delete(self, tenant_id: str, client_id: str) -> None:
        """Remove the client (its tokens are refused from the next request); 404 if there is none."""
        if tenant_of_client(client_id) != tenant_id:
            raise NotFound("no such client")
        try:
            self.client.transact_write_items(
                ClientRequestToken=str(uuid.uuid4()),  # a lost reply's retry is this delete again
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": self._key(tenant_id, client_id),
                            "ConditionExpression": "attribute_exists(client_id)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self._key(tenant_id, COUNT_ITEM),
                            "UpdateExpression": "ADD clients :minus",
                            "ExpressionAttributeValues": {":minus": {"N": "-1"}},
                        }
                    },
                ],
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                raise NotFound("no such client") from exc
            raise

    def rotate(self, read: ApiClient, verifiers: Sequence[Verifier], now: float) -> None:
        """Replace the client's verifiers, holding on the secret version read (409
        :class:`RotationConflict` when another rotation landed; 404 when the client is gone or
        expired)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(read.tenant_id, read.client_id),
                UpdateExpression="SET verifiers = :v, secret_version = :next, rotated_at = :now",
                ConditionExpression="secret_version = :read AND expires_at > :now",
                ExpressionAttributeValues={
                    ":v": _verifiers_value(verifiers),
                    ":next": {"N": str(read.secret_version + 1)},
                    ":read": {"N": str(read.secret_version)},
                    ":now": {"N": str(int(now))},
                },
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            fresh = self.get(read.tenant_id, read.client_id)
            if fresh is None or not fresh.live(now):
                raise NotFound("no such client") from exc
            if fresh.secret_version == read.secret_version + 1 and tuple(fresh.verifiers) == tuple(verifiers):
                return  # this rotation landed and its reply was lost (botocore retried it)
            raise RotationConflict("the client's secret was rotated meanwhile; nothing changed") from exc

    def touch(self, client: ApiClient, now: float) -> None:
        """Note a use of the client, at most once per LAST_USED_RESOLUTION_SECONDS (never raises
        for a condition: a use within the minute is the one already noted)."""
        if client.last_used_at is not None and now - client.last_used_at < LAST_USED_RESOLUTION_SECONDS:
            return
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(client.tenant_id, client.client_id),
                UpdateExpression="SET last_used_at = :now",
                ConditionExpression="attribute_exists(client_id) AND "
                "(attribute_not_exists(last_used_at) OR last_used_at <= :before)",
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":before": {"N": str(int(now) - LAST_USED_RESOLUTION_SECONDS)},
                },
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

    # ------------------------------------------------------------------ the tenant's verifier key
    def wrapped_key(self, tenant_id: str) -> tuple[str, bytes] | None:
        """The tenant's (key id, wrapped verifier key), read consistently; None."""
        reply = self.client.get_item(
            TableName=self.table, Key=self._key(tenant_id, VERIFIER_KEY_ITEM), ConsistentRead=True
        )
        item = reply.get("Item")
        return (str(item["key_id"]["S"]), bytes(item["wrapped"]["B"])) if item else None

    def keep_wrapped_key(self, tenant_id: str, key_id: str, wrapped: bytes) -> tuple[str, bytes]:
        """Keep ``wrapped`` as the tenant's key unless it has one (two first creations at once
        keep one key); the (key id, wrapped key) kept."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **self._key(tenant_id, VERIFIER_KEY_ITEM),
                    "key_id": {"S": key_id},
                    "wrapped": {"B": wrapped},
                    "created_at": {"N": str(int(datetime.now(UTC).timestamp()))},
                },
                ConditionExpression="attribute_not_exists(client_id)",
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            kept = self.wrapped_key(tenant_id)
            if kept is None:  # deleted meanwhile (the tenant is being torn down)
                raise
            return kept
        return key_id, wrapped

    def delete_tenant(self, tenant_id: str) -> int:
        """Every item of the tenant's partition gone (offboarding); how many."""
        deleted = 0
        for page in query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="tenant_id = :t",
            ExpressionAttributeValues={":t": {"S": tenant_id}},
            ProjectionExpression="tenant_id, client_id",
            ConsistentRead=True,
        ):
            for item in page.get("Items", []):
                self.client.delete_item(
                    TableName=self.table, Key=self._key(tenant_id, item["client_id"]["S"])
                )
                deleted += 1
        return deleted
