"""A tenant's own database connections: its login from Secrets Manager and a bounded pool.

- Credentials: the tenant's database secret in Secrets Manager (written by onboarding), cached
  per execution environment for ``max_age`` seconds. A connection attempt that does not succeed
  makes the next attempt fetch the secret again, so a rotated password is picked up at once
  (:class:`TenantLogins`).
- Connections: a bounded psycopg pool per tenant (``pool_size`` connections, one connecting
  worker), for at most ``max_pools`` tenants per execution environment; the least recently used
  tenant's pool is closed when another is needed (:class:`TenantPools`).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from tenant_security.aws import error_code
from tenant_security.database import DatabaseLogin
from tenant_security.errors import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


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
        client: SecretsManagerClient,
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
