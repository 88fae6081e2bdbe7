"""Tenant records (POST /tenants/{t}/records, GET /tenants/{t}/records/{id}) in the tenant's own
PostgreSQL database or schema, reached only through the tenant's own login role.

- Credentials: the tenant's database secret in Secrets Manager (written by onboarding), cached
  per execution environment for ``max_age`` seconds. A connection attempt that does not succeed
  makes the next attempt fetch the secret again, so a rotated password is picked up at once
  (:class:`TenantLogins`).
- Connections: a bounded psycopg pool per tenant (``pool_size`` connections, one connecting
  worker), for at most ``max_pools`` tenants per execution environment; the least recently used
  tenant's pool is closed when another is needed (:class:`TenantPools`).
- Sensitive fields (named by the caller) never reach the database in clear: they are taken out
  of ``data`` and sealed together with the seed's ``encrypt_data`` (tenant data key; tenant,
  purpose ``record`` and the record id in the encryption context), so a row copied to another
  record or tenant does not decrypt.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from tenant_security import crypto
from tenant_security.aws import error_code
from tenant_security.config import Settings
from tenant_security.database import DatabaseLogin
from tenant_security.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from tenant_security.locality import check_writable_in
from tenant_security.models.onboarding import Isolation
from tenant_security.quotas import StorageQuota
from tenant_security.tenants import TenantRecord

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


def _tenant_id(tenant: TenantRecord | str) -> str:
    return tenant if isinstance(tenant, str) else tenant.tenant_id


def _without_database(tenant: TenantRecord | str) -> bool:
    """Whether the tenant's record says it was onboarded without a database. Asking Secrets
    Manager instead is no answer on AWS: IAM is evaluated first, against the bare name of a secret
    that does not exist, which the functions' `.../database-*` grants do not match --
    AccessDeniedException (a 500), not ResourceNotFoundException."""
    return not isinstance(tenant, str) and tenant.isolation == Isolation.NONE


# ---------------------------------------------------------------------------------- credentials
class NoTenantDatabase(ServiceUnavailable):
    """The tenant has no database (no login in Secrets Manager)."""


@dataclass
class _Cached:
    login: DatabaseLogin
    fetched_at: float
    unconfirmed: bool = False  # handed to a connection attempt that has not succeeded (yet)


class TenantLogins:
    """Tenant database logins from Secrets Manager, cached; fetched again after a failed connect.

    ``for_connect`` is what the pool calls before each connection attempt, ``confirmed`` what it
    calls after one succeeded: an attempt that was never confirmed failed (a rotated password, a
    dropped role), so the next attempt reads the secret again -- at most once per
    ``min_refresh_seconds`` so a database outage does not become a Secrets Manager storm.
    """

    def __init__(
        self,
        client: Any,
        secret_name: Callable[[str], str],
        max_age: float = 300.0,
        min_refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.secret_name = secret_name
        self.max_age = max_age
        self.min_refresh_seconds = min_refresh_seconds
        self.clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def _fetch(self, tenant_id: str) -> _Cached:
        try:
            reply = self.client.get_secret_value(SecretId=self.secret_name(tenant_id))
            login = DatabaseLogin.from_secret(json.loads(reply["SecretString"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ServiceUnavailable("the tenant database credentials are unreadable") from exc
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NoTenantDatabase("the tenant has no database credentials") from None
            raise
        cached = _Cached(login, self.clock())
        self._cache[tenant_id] = cached
        return cached

    def for_connect(self, tenant_id: str) -> DatabaseLogin:
        """The login to try next (fresh from Secrets Manager when stale or after a failed attempt)."""
        with self._lock:
            cached = self._cache.get(tenant_id)
            age = self.clock() - cached.fetched_at if cached else math.inf
            if (
                cached is None
                or age >= self.max_age
                or (cached.unconfirmed and age >= self.min_refresh_seconds)
            ):
                cached = self._fetch(tenant_id)
            cached.unconfirmed = True
            return cached.login

    def current(self, tenant_id: str) -> DatabaseLogin:
        """The cached login (fetched if there is none), without counting as a connection attempt."""
        with self._lock:
            cached = self._cache.get(tenant_id) or self._fetch(tenant_id)
            return cached.login

    def confirmed(self, tenant_id: str) -> None:
        """A connection with the current login succeeded."""
        with self._lock:
            cached = self._cache.get(tenant_id)
            if cached is not None:
                cached.unconfirmed = False

    def forget(self, tenant_id: str) -> None:
        with self._lock:
            self._cache.pop(tenant_id, None)


# ---------------------------------------------------------------------------------- pools
class TenantPools:
    """A bounded connection pool per tenant, for at most ``max_pools`` tenants at once."""

    def __init__(
        self,
        logins: TenantLogins,
        pool_size: int = 2,
        max_pools: int = 8,
        wait_seconds: float = 5.0,
        connect_timeout: int = 5,
    ) -> None:
        self.logins = logins
        self.pool_size = pool_size
        self.max_pools = max_pools
        self.wait_seconds = wait_seconds
        self.connect_timeout = connect_timeout
        self._pools: OrderedDict[str, ConnectionPool[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _new_pool(self, tenant_id: str) -> ConnectionPool[Any]:
        def connect_args() -> dict[str, Any]:
            login = self.logins.for_connect(tenant_id)
            return {
                "host": login.host,
                "port": login.port,
                "user": login.username,
                "password": login.password,
                "dbname": login.dbname,
                "connect_timeout": self.connect_timeout,
                "application_name": f"dcisionai-tenant-{tenant_id}",
                "autocommit": True,
            }

        def configure(_conn: psycopg.Connection[Any]) -> None:
            self.logins.confirmed(tenant_id)

        pool: ConnectionPool[Any] = ConnectionPool(
            kwargs=connect_args,
            min_size=0,
            max_size=self.pool_size,
            configure=configure,
            check=ConnectionPool.check_connection,  # a connection a frozen Lambda kept may be dead
            max_idle=300.0,
            reconnect_timeout=max(self.wait_seconds, 1.0),
            num_workers=1,
            name=f"tenant-{tenant_id}",
            open=True,
        )
        return pool

    def _pool(self, tenant_id: str) -> ConnectionPool[Any]:
        evicted: list[ConnectionPool[Any]] = []
        with self._lock:
            pool = self._pools.get(tenant_id)
            if pool is None:
                pool = self._new_pool(tenant_id)
                self._pools[tenant_id] = pool
                while len(self._pools) > self.max_pools:
                    evicted.append(self._pools.popitem(last=False)[1])
            self._pools.move_to_end(tenant_id)
        for old in evicted:
            old.close(timeout=1.0)
        return pool

    @contextmanager
    def connection(self, tenant_id: str) -> Iterator[tuple[psycopg.Connection[Any], DatabaseLogin]]:
        """A connection of the tenant's own role, and the login it was made with (503 when none comes)."""
        pool = self._pool(tenant_id)
        try:
            with pool.connection(timeout=self.wait_seconds) as conn:
                yield conn, self.logins.current(tenant_id)
        except PoolTimeout:
            raise ServiceUnavailable("the tenant database is not reachable; try again") from None

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            pool.close(timeout=1.0)

    def open_tenants(self) -> list[str]:
        """Tenants with a pool (least recently used first)."""
        with self._lock:
            return list(self._pools)


# ---------------------------------------------------------------------------------- records
MAX_EXPORTED = 1000  # records of one subject in one export


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
        self, tenant: TenantRecord, actor: str, data: Mapping[str, Any], sensitive: list[str]
    ) -> dict[str, Any]:
        """Store a record; ``{id, sensitive, created_by, created_at}`` (201). 409 for a tenant
        onboarded without a database (a deployment with none): it has nowhere to keep records."""
        tenant_id = tenant.tenant_id
        if tenant.isolation == Isolation.NONE:
            raise Conflict("the tenant has no database: the deployment has none (DatabaseSecretArn empty)")
        check_record(data, sensitive)
        check_writable_in(tenant, self.settings.region)
        record_id = str(self.new_id())
        plain = {k: v for k, v in data.items() if k not in sensitive}
        sealed = self._seal(tenant_id, record_id, {k: data[k] for k in sensitive}) if sensitive else None
        size = len(json.dumps(plain).encode()) + len(sealed or b"")
        self.quota.reserve(tenant_id, size, tenant.quotas, files=0)
        try:
            with self.pools.connection(tenant_id) as (conn, login):
                row = conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (id, data, sealed, created_by)"
                        " VALUES (%s, %s, %s, %s) RETURNING created_at"
                    ).format(sql.Identifier(login.schema, "records")),
                    (record_id, Jsonb(plain), sealed, actor),
                ).fetchone()
        except Exception:
            self.quota.release(tenant_id, size, files=0)
            raise
        assert row is not None  # RETURNING always gives the row
        return {
            "id": record_id,
            "sensitive": sorted(sensitive),
            "created_by": actor,
            "created_at": row[0].isoformat(),
        }

    def get(self, tenant: TenantRecord | str, record_id: str) -> dict[str, Any]:
        """``{id, data, sensitive, created_by, created_at}``; 404 when the tenant has no such record
        (a tenant without a database has none: answered at once, not after the pool's wait).

        ``tenant``: its record where the caller has it, so that a tenant onboarded without a
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
        with self.pools.connection(tenant_id) as (conn, login):
            row = conn.execute(
                sql.SQL("SELECT data, sealed, created_by, created_at FROM {} WHERE id = %s").format(
                    sql.Identifier(login.schema, "records")
                ),
                (record_id,),
            ).fetchone()
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
        self, tenant: TenantRecord | str, username: str, limit: int = MAX_EXPORTED
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
