"""Tenant records (POST /tenants/{t}/records, GET /tenants/{t}/records/{id}) in the tenant's own
PostgreSQL database or schema, reached only through the tenant's own login role
(:mod:`tenant_security.tenant_connections`).

Sensitive fields (named by the caller) never reach the database in clear: they are taken out of
``data`` and sealed together with :func:`tenant_security.crypto.encrypt_data` (tenant data key;
tenant, purpose ``record`` and the record id in the encryption context), so a row copied to
another record or tenant does not decrypt.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from tenant_security import crypto
from tenant_security.config import Settings
from tenant_security.errors import Conflict, NotFound, ValidationFailed
from tenant_security.locality import check_writable_in
from tenant_security.models.onboarding import Isolation
from tenant_security.quotas.storage import StorageQuota
from tenant_security.tenant_connections import NoTenantDatabase, TenantPools
from tenant_security.tenants import TenantProfile

PURPOSE_RECORD = "record"
MAX_DEPTH = 32
MAX_FIELD_NAME = 128
MAX_SENSITIVE_FIELDS = 100


# ---------------------------------------------------------------------------------- validation
def _problem(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed("invalid record", fields=[{"field": field_name, "message": message}])


def _check_value(value: Any, where: str, depth: int) -> None:
    """What PostgreSQL's jsonb cannot hold or a reader cannot trust: NUL characters (jsonb refuses
    them), NaN and infinities (not JSON), nesting deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise _problem(where, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise _problem(where, "text may not contain NUL (\\u0000) characters")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _problem(where, "numbers must be finite")
    elif isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str) or "\x00" in name or len(name) > MAX_FIELD_NAME:
                raise _problem(where, f"field names are text of at most {MAX_FIELD_NAME} characters, no NUL")
            _check_value(item, f"{where}.{name}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{where}.{index}", depth + 1)
    elif value is not None and not isinstance(value, bool | int):
        raise _problem(where, "not a JSON value")


def check_record(data: Mapping[str, Any], sensitive: list[str]) -> None:
    """400 for a record PostgreSQL could not store faithfully, or sensitive names not in ``data``."""
    _check_value(dict(data), "data", 1)
    if len(set(sensitive)) != len(sensitive):
        raise _problem("sensitive", "names must be unique")
    missing = [name for name in sensitive if name not in data]
    if missing:
        raise _problem("sensitive", f"not fields of data: {sorted(missing)[:10]}")


def check_record_id(record_id: str) -> str:
    """A record id is a UUID (400 otherwise), in its canonical form."""
    try:
        return str(uuid.UUID(record_id))
    except (ValueError, AttributeError):
        raise ValidationFailed(
            "invalid record id", fields=[{"field": "path.record_id", "message": "a UUID"}]
        ) from None


def _tenant_id(tenant: TenantProfile | str) -> str:
    return tenant if isinstance(tenant, str) else tenant.tenant_id


def _without_database(tenant: TenantProfile | str) -> bool:
    """Whether the tenant's profile says it was onboarded without a database. Asking Secrets
    Manager instead is no answer on AWS: IAM is evaluated first, against the bare name of a secret
    that does not exist, which the functions' `.../database-*` grants do not match --
    AccessDeniedException (a 500), not ResourceNotFoundException."""
    return not isinstance(tenant, str) and tenant.isolation == Isolation.NONE


# ---------------------------------------------------------------------------------- records
MAX_EXPORTED = 1000  # records of one subject in one export


def _created(record_id: str, sensitive: list[str], actor: str, created_at: datetime) -> dict[str, Any]:
    """What creating a record answers (and a retry of a keyed creation answers again)."""
    return {
        "id": record_id,
        "sensitive": sorted(sensitive),
        "created_by": actor,
        "created_at": created_at.isoformat(),
    }


class TenantRecords:
    """A tenant's records, through its own database role (pools, quota and key ARN rule given)."""

    def __init__(
        self,
        settings: Settings,
        pools: TenantPools,
        quota: StorageQuota,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self.settings = settings
        self.pools = pools
        self.quota = quota
        self.new_id = new_id

    def _seal(self, tenant_id: str, record_id: str, fields: Mapping[str, Any]) -> bytes:
        plaintext = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
        return crypto.encrypt_data(
            tenant_id, plaintext, self.settings.data_key_arn(tenant_id), PURPOSE_RECORD, record_id=record_id
        )

    def _unseal(self, tenant_id: str, record_id: str, sealed: bytes) -> dict[str, Any]:
        plaintext = crypto.decrypt_data(
            tenant_id,
            sealed,
            PURPOSE_RECORD,
            self.settings.account_id,
            self.settings.partition,
            record_id=record_id,
        )
        fields: dict[str, Any] = json.loads(plaintext)
        return fields

    def create(
        self,
        tenant: TenantProfile,
        actor: str,
        data: Mapping[str, Any],
        sensitive: list[str],
        record_id: str | None = None,
    ) -> dict[str, Any]:
        """Store a record; ``{id, sensitive, created_by, created_at}`` (201). 409 for a tenant
        onboarded without a database (a deployment with none): it has nowhere to keep records.

        ``record_id``: the id an Idempotency-Key gives the request
        (:func:`tenant_security.idempotency.creation_id`), the same on every retry. A retry whose
        first attempt committed but lost its reply finds that record and answers with it (charged
        once); a record of that id by someone else is 409. None: a new random id.
        """
        tenant_id = tenant.tenant_id
        if tenant.isolation == Isolation.NONE:
            raise Conflict("the tenant has no database: the deployment has none (DatabaseSecretArn empty)")
        check_record(data, sensitive)
        check_writable_in(tenant, self.settings.region)
        if record_id:
            record_id = check_record_id(record_id)
            # before the quota: a retry is not charged again, nor refused for its own record's room
            made = self._made_before(tenant_id, record_id, actor)
            if made is not None:
                return _created(record_id, sensitive, actor, made)
        else:
            record_id = str(self.new_id())
        plain = {k: v for k, v in data.items() if k not in sensitive}
        sealed = self._seal(tenant_id, record_id, {k: data[k] for k in sensitive}) if sensitive else None
        size = len(json.dumps(plain).encode()) + len(sealed or b"")
        self.quota.reserve(tenant_id, size, tenant.quotas, files=0)
        try:
            with self.pools.connection(tenant_id) as (conn, login):
                row = conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (id, data, sealed, created_by) VALUES (%s, %s, %s, %s)"
                        " ON CONFLICT (id) DO NOTHING RETURNING created_at"
                    ).format(sql.Identifier(login.schema, "records")),
                    (record_id, Jsonb(plain), sealed, actor),
                ).fetchone()
        except Exception:
            self.quota.release(tenant_id, size, files=0)
            raise
        if row is not None:
            return _created(record_id, sensitive, actor, row[0])
        # a parallel attempt of the same keyed request inserted it first (and was charged for it)
        self.quota.release(tenant_id, size, files=0)
        made = self._made_before(tenant_id, record_id, actor)
        if made is None:
            raise Conflict(f"record {record_id} exists already")
        return _created(record_id, sensitive, actor, made)

    def _made_before(self, tenant_id: str, record_id: str, actor: str) -> datetime | None:
        """When ``actor`` created record ``record_id`` (None: there is none); 409 when someone else
        did -- an id is another caller's only by a collision, never to be answered with."""
        row = self._row(tenant_id, record_id, "created_by", "created_at")
        if row is None:
            return None
        if row[0] != actor:
            raise Conflict(f"record {record_id} exists already")
        made: datetime = row[1]
        return made

    def _row(self, tenant_id: str, record_id: str, *columns: str) -> tuple[Any, ...] | None:
        """``columns`` of record ``record_id`` in the tenant's own schema, through its own login."""
        with self.pools.connection(tenant_id) as (conn, login):
            return conn.execute(
                sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in columns),
                    sql.Identifier(login.schema, "records"),
                ),
                (record_id,),
            ).fetchone()

    def get(self, tenant: TenantProfile | str, record_id: str) -> dict[str, Any]:
        """``{id, data, sensitive, created_by, created_at}``; 404 when the tenant has no such record
        (a tenant without a database has none: answered at once, not after the pool's wait).

        ``tenant``: its profile where the caller has it, so that a tenant onboarded without a
        database is known as such without asking Secrets Manager for a login that does not exist.
        """
        record_id = check_record_id(record_id)
        if _without_database(tenant):
            raise NotFound(f"no record {record_id}: the tenant has no database")
        tenant_id = _tenant_id(tenant)
        try:
            self.pools.logins.current(tenant_id)
        except NoTenantDatabase:
            raise NotFound(f"no record {record_id}: the tenant has no database") from None
        row = self._row(tenant_id, record_id, "data", "sealed", "created_by", "created_at")
        if row is None:
            raise NotFound(f"no record {record_id}")
        data, sealed, created_by, created_at = row
        hidden = self._unseal(tenant_id, record_id, bytes(sealed)) if sealed is not None else {}
        return {
            "id": record_id,
            "data": {**data, **hidden},
            "sensitive": sorted(hidden),
            "created_by": created_by,
            "created_at": created_at.isoformat(),
        }

    def created_by(
        self, tenant: TenantProfile | str, username: str, limit: int = MAX_EXPORTED
    ) -> dict[str, Any]:
        """The records ``username`` created (GDPR export), newest first, by reference only:
        ``{items: [{id, created_at}], truncated}`` -- their content is the tenant's data, often about
        other people, and an export shows the subject's own (none for a tenant without a database)."""
        if _without_database(tenant):
            return {"items": [], "truncated": False}
        tenant_id = _tenant_id(tenant)
        try:
            self.pools.logins.current(tenant_id)  # (the pool would wait out a missing login)
            with self.pools.connection(tenant_id) as (conn, login):
                rows = conn.execute(
                    sql.SQL(
                        "SELECT id, created_at FROM {} WHERE created_by = %s"
                        " ORDER BY created_at DESC LIMIT %s"
                    ).format(sql.Identifier(login.schema, "records")),
                    (username, limit + 1),
                ).fetchall()
        except NoTenantDatabase:
            return {"items": [], "truncated": False}
        items = [
            {"id": str(record_id), "created_at": created_at.isoformat()}
            for record_id, created_at in rows[:limit]
        ]
        return {"items": items, "truncated": len(rows) > limit}
