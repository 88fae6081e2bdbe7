"""Per-tenant PostgreSQL: a database (isolation ``database``) or a schema in a shared database
(isolation ``schema``), each with its own login role and nothing else.

Every identifier goes through ``psycopg.sql.Identifier``; values are parameters. The master
credentials come from the platform's database secret (RDS-style JSON); the tenant's generated
credentials go to Secrets Manager (see :mod:`tenant_security.onboarding`).

The master is Aurora's: not a superuser, but CREATEROLE and CREATEDB under PostgreSQL 16's rules.
Creating a role gives it only ADMIN OPTION on that role (``createrole_self_grant`` is empty), so
it grants itself the tenant role WITH INHERIT and SET before it can make the role an owner
(``CREATE DATABASE ... OWNER``, ``CREATE SCHEMA ... AUTHORIZATION``, ``ALTER ... OWNER TO``) or
drop what the role owns (``DROP OWNED BY``, ``DROP DATABASE``). Only a superuser may name the
SUPERUSER attribute in ALTER ROLE, so no statement names it (a new role is NOSUPERUSER anyway).
Every step can be run again after a failure between any two statements.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

SHARED_DATABASE = "tenants_shared"
# The tenant's login, as `<prefix>/tenants/<id>/database` in Secrets Manager.
CREDENTIALS_SECRET = "database"  # noqa: S105 - the secret's name, not a secret

# The baseline tables every tenant database starts with (the architecture's schema), and the
# records table of the data plane.
_BASELINE_TABLES = (
    """CREATE TABLE IF NOT EXISTS {schema}.users (
        id SERIAL PRIMARY KEY,
        username VARCHAR(255) UNIQUE NOT NULL,
        email VARCHAR(255) UNIQUE NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS {schema}.records (
        id UUID PRIMARY KEY,
        data JSONB NOT NULL,
        sealed BYTEA,
        created_by VARCHAR(255) NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
)


@dataclass(frozen=True)
class DatabaseLogin:
    """A PostgreSQL login as an RDS-style secret holds it: the platform's master user, or a
    tenant's own role (with its schema) as onboarding stores it."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    dbname: str = "postgres"
    schema: str = "public"

    @classmethod
    def from_secret(cls, value: Mapping[str, Any], **defaults: str) -> DatabaseLogin:
        """The login a secret holds; ``defaults`` (host, dbname) fill what it leaves out."""
        value = {**defaults, **{k: v for k, v in value.items() if v not in (None, "")}}
        return cls(
            str(value["host"]),
            int(value.get("port", 5432)),
            str(value["username"]),
            str(value.get("password", "")),
            str(value.get("dbname") or "postgres"),
            str(value.get("schema") or "public"),
        )


def master_login(client: SecretsManagerClient, secret_arn: str, location: Mapping[str, str]) -> DatabaseLogin:
    """The platform's master login, read now from its secret (Secrets Manager ``client`` given);
    ``location`` (host, dbname) fills what an RDS-managed secret leaves out."""
    secret = client.get_secret_value(SecretId=secret_arn)["SecretString"]
    return DatabaseLogin.from_secret(json.loads(secret), **location)


def role_name(tenant_id: str) -> str:
    return f"tenant_{tenant_id}"


def tenant_database_name(tenant_id: str) -> str:
    return f"tenant_{tenant_id}"


def schema_name(tenant_id: str) -> str:
    return f"tenant_{tenant_id}"


class TenantDatabases:
    """Creates and drops tenants' databases, schemas and roles as the master user."""

    def __init__(
        self,
        master: DatabaseLogin,
        connect_timeout: int = 10,
        reload: Callable[[], DatabaseLogin] | None = None,
    ) -> None:
        """``reload``: the master login read again from its secret, for a connection refused
        with the cached one (RDS rotates the managed master secret, every 7 days by default)."""
        self.master = master
        self.connect_timeout = connect_timeout
        self.reload = reload

    def _open(self, dbname: str | None) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.master.host,
            port=self.master.port,
            user=self.master.username,
            password=self.master.password,
            dbname=dbname or self.master.dbname,
            connect_timeout=self.connect_timeout,
            autocommit=True,
        )

    @contextmanager
    def _connect(self, dbname: str | None = None) -> Iterator[psycopg.Connection[Any]]:
        try:
            conn = self._open(dbname)
        except psycopg.OperationalError:
            # A refused password is not told apart by SQLSTATE: libpq reports 28P01 of a failed
            # connection only in its message, and psycopg's sqlstate is None. So any failed
            # connect reads the secret again, once; it is retried only if the secret changed.
            fresh = self.reload() if self.reload is not None else self.master
            if fresh == self.master:
                raise
            self.master = fresh
            conn = self._open(dbname)
        with conn:
            yield conn

    def _ensure_role(self, conn: psycopg.Connection[Any], role: str, password: str) -> None:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
        # CREATE/ALTER ROLE takes no bind parameters: the password goes in as a quoted literal.
        # No NOSUPERUSER: a new role is not one, and naming the attribute in ALTER ROLE (a retry)
        # is for superusers only.
        conn.execute(
            sql.SQL(
                "{} ROLE {} LOGIN NOCREATEDB NOCREATEROLE NOINHERIT CONNECTION LIMIT 20 PASSWORD {}"
            ).format(verb, sql.Identifier(role), sql.Literal(password))
        )
        self._act_as(conn, role)

    @staticmethod
    def _act_as(conn: psycopg.Connection[Any], role: str) -> None:
        """The master may own and drop as ``role``: membership WITH INHERIT and SET (PostgreSQL 16
        gives the creator of a role ADMIN OPTION only). Granting it again changes nothing."""
        grant = sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role))
        if conn.info.server_version >= 160000:
            grant = sql.SQL("{} WITH INHERIT TRUE, SET TRUE").format(grant)
        # (before 16 a membership always allowed SET ROLE and the master INHERITs: the plain form)
        conn.execute(grant)

    def _ensure_database(self, conn: psycopg.Connection[Any], name: str, owner: str | None) -> None:
        if self._database_exists(conn, name):
            return
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner is not None:
            statement = sql.SQL("{} OWNER {}").format(statement, sql.Identifier(owner))
        # Closed until CONNECT is revoked from PUBLIC (create() opens it): a new database grants
        # PUBLIC CONNECT, and a login connected in between would stay connected.
        conn.execute(sql.SQL("{} ALLOW_CONNECTIONS false").format(statement))

    @staticmethod
    def _role_exists(conn: psycopg.Connection[Any], name: str) -> bool:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None

    def _database_exists(self, conn: psycopg.Connection[Any], name: str) -> bool:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    def _baseline(self, conn: psycopg.Connection[Any], schema: str, role: str) -> None:
        for statement in _BASELINE_TABLES:
            conn.execute(sql.SQL(statement).format(schema=sql.Identifier(schema)))
        conn.execute(
            sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )
        conn.execute(
            sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )

    def create(self, tenant_id: str, isolation: str) -> dict[str, Any]:
        """Create (or bring up to date) the tenant's database or schema and role; its credentials.

        Idempotent: run again, it leaves one role (with a new password) and one database/schema.
        """
        role, password = role_name(tenant_id), secrets.token_urlsafe(32)
        if isolation == "database":
            # the tenant's own database, owned by its role
            dbname, owner, schema = tenant_database_name(tenant_id), role, "public"
        else:
            # a schema of its own in the shared database
            dbname, owner, schema = SHARED_DATABASE, None, schema_name(tenant_id)
        with self._connect() as conn:
            self._ensure_role(conn, role, password)
            self._ensure_database(conn, dbname, owner)
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(dbname), sql.Identifier(role)
                )
            )
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(dbname)))
        with self._connect(dbname) as conn:
            # Nobody may create in or use public by default (PostgreSQL < 15 allowed it).
            conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            if isolation == "database":
                conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
            else:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                        sql.Identifier(schema), sql.Identifier(role)
                    )
                )
                conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
                conn.execute(
                    sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(
                        sql.Identifier(role), sql.Identifier(dbname), sql.Identifier(schema)
                    )
                )
            self._baseline(conn, schema, role)
        return {
            "engine": "postgres",
            "host": self.master.host,
            "port": self.master.port,
            "username": role,
            "password": password,
            "dbname": dbname,
            "schema": schema,
            "isolation": isolation,
        }

    def drop(self, tenant_id: str) -> None:
        """Drop the tenant's database or schema and its role (idempotent)."""
        role, dbname, schema = role_name(tenant_id), tenant_database_name(tenant_id), schema_name(tenant_id)
        with self._connect() as conn:
            if self._role_exists(conn, role):
                # the tenant's database and objects are the role's: the master drops them as it
                self._act_as(conn, role)
            if self._database_exists(conn, dbname):
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
            # A shared database still closed (a crash right after its CREATE) holds no schema yet.
            shared = conn.execute(
                "SELECT datallowconn FROM pg_database WHERE datname = %s", (SHARED_DATABASE,)
            ).fetchone() == (True,)
        if shared:
            with self._connect(SHARED_DATABASE) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
                if self._role_exists(conn, role):
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with self._connect() as conn:
            if self._role_exists(conn, role):
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

    def exists(self, tenant_id: str) -> dict[str, bool]:
        """What of the tenant is left in PostgreSQL (for tests and offboarding reports)."""
        with self._connect() as conn:
            role = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (role_name(tenant_id),)
            ).fetchone()
            database = self._database_exists(conn, tenant_database_name(tenant_id))
            shared = self._database_exists(conn, SHARED_DATABASE)
        schema = False
        if shared:
            with self._connect(SHARED_DATABASE) as conn:
                schema = (
                    conn.execute(
                        "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema_name(tenant_id),)
                    ).fetchone()
                    is not None
                )
        return {"role": role is not None, "database": database, "schema": schema}
