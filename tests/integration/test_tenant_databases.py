"""Tenant databases as Aurora's master user on a real PostgreSQL 16 (pgserver), issue 16 item 3.

The local cloud's master is what RDS/Aurora creates: NOSUPERUSER with CREATEROLE and CREATEDB and
``rds_superuser``; ``createrole_self_grant`` is empty. Onboarding (both isolations), every retry
after a failure between two statements, compensation of a half-done step and offboarding all run
as that login; a rotated master password is read again from Secrets Manager (item 9).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from localcloud.postgres import MASTER_USERNAME, RDS_SUPERUSER, Database, EmbeddedPostgres, superuser_of
from tenant_security.database import (
    DatabaseLogin,
    TenantDatabases,
    role_name,
    schema_name,
    tenant_database_name,
)
from tests.support.moto import mocked_aws

GONE = {"role": False, "database": False, "schema": False}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedPostgres, Database]]:
    embedded = EmbeddedPostgres(Path(tmp_path_factory.mktemp("tenant-databases-pg")))
    master = embedded.start()
    try:
        yield embedded, master
    finally:
        embedded.stop()


@pytest.fixture
def master(server: tuple[EmbeddedPostgres, Database]) -> Database:
    return server[1]


def databases_of(master: Database) -> TenantDatabases:
    return TenantDatabases(DatabaseLogin.from_secret(master.secret()))


class Crashed(Exception):
    """The step's process died here (a Lambda timeout, say) between two statements."""


class _Statements:
    """A connection whose ``after``-th statement (counted over every connection) never runs."""

    def __init__(self, conn: psycopg.Connection[Any], budget: list[int]) -> None:
        self._conn = conn
        self._budget = budget

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self._budget[0] -= 1
        if self._budget[0] < 0:
            raise Crashed
        return self._conn.execute(*args, **kwargs)


class CrashingDatabases(TenantDatabases):
    """TenantDatabases that crashes before its ``after``-th statement (0: the first)."""

    def __init__(self, master: DatabaseLogin, after: int) -> None:
        super().__init__(master)
        self.budget = [after]

    @contextmanager
    def _connect(self, dbname: str | None = None) -> Iterator[psycopg.Connection[Any]]:
        with super()._connect(dbname) as conn:
            yield _Statements(conn, self.budget)  # type: ignore[misc]


def tenant_connection(login: dict[str, Any], dbname: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=login["host"],
        port=login["port"],
        user=login["username"],
        password=login["password"],
        dbname=dbname or login["dbname"],
        connect_timeout=10,
        autocommit=True,
    )


def assert_onboarded(master: Database, tenant_id: str, isolation: str, login: dict[str, Any]) -> None:
    """The tenant's role owns its database or schema; it works there and nowhere else."""
    role = role_name(tenant_id)
    with master.connect(login["dbname"]) as conn:
        if isolation == "database":
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (login["dbname"],)
            ).fetchone()
            public = conn.execute(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'"
            ).fetchone()
            assert owner == public == (role,)
        else:
            owner = conn.execute(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
                (schema_name(tenant_id),),
            ).fetchone()
            assert owner == (role,)
        attributes = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolcanlogin FROM pg_roles"
            " WHERE rolname = %s",
            (role,),
        ).fetchone()
        assert attributes == (False, False, False, False, True)
    with tenant_connection(login) as conn:
        conn.execute("INSERT INTO users (username, email) VALUES ('u', 'u@x.example') ON CONFLICT DO NOTHING")
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)
        assert conn.execute("SELECT current_schema()").fetchone() == (login["schema"],)


def test_the_local_master_is_aurora_s_not_a_superuser(master: Database) -> None:
    assert master.username == MASTER_USERNAME
    with master.connect() as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolreplication, rolbypassrls"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (False, True, True, True, False, False)
        assert conn.execute("SHOW createrole_self_grant").fetchone() == ("",)
        assert conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0] >= 160000  # type: ignore[index]
        member_of = {
            r[0]
            for r in conn.execute(
                "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid"
                " JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
                (RDS_SUPERUSER,),
            )
        }
        assert {"pg_monitor", "pg_signal_backend", "pg_checkpoint"} <= member_of
        assert conn.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (RDS_SUPERUSER,)).fetchone() == (
            True,
        )
        # what only a superuser may do fails, as it does for Aurora's master
        for superuser_only in (
            "ALTER SYSTEM SET work_mem = '8MB'",
            "CREATE ROLE would_be_root SUPERUSER",
            "COPY (SELECT 1) TO PROGRAM 'true'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(superuser_only)


def test_the_superuser_is_the_local_socket_s_only_trusted_login(
    server: tuple[EmbeddedPostgres, Database], master: Database
) -> None:
    embedded, _ = server
    with superuser_of(embedded.pgdata).connect() as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (
            True,
        )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=master.host, port=master.port, user=master.username, password="wrong", dbname="postgres"
        ).close()


@pytest.mark.parametrize("isolation", ["database", "schema"])
def test_onboarding_then_offboarding_as_the_master(master: Database, isolation: str) -> None:
    """Before the fix: "must be able to SET ROLE" (CREATE DATABASE ... OWNER, CREATE SCHEMA ...
    AUTHORIZATION) as soon as the master was not a superuser."""
    databases = databases_of(master)
    tenant_id = f"aur-{isolation[:2]}"
    login = databases.create(tenant_id, isolation)
    assert_onboarded(master, tenant_id, isolation, login)
    again = databases.create(tenant_id, isolation)  # a retry of the whole step: a new password
    assert again["password"] != login["password"]
    with pytest.raises(psycopg.OperationalError):
        tenant_connection(login).close()
    assert_onboarded(master, tenant_id, isolation, again)
    databases.drop(tenant_id)
    assert databases.exists(tenant_id) == GONE
    databases.drop(tenant_id)  # offboarding retried: nothing left, nothing fails
    assert databases.exists(tenant_id) == GONE


def test_tenants_cannot_reach_each_other(master: Database) -> None:
    databases = databases_of(master)
    logins = {t: databases.create(t, i) for t, i in (("iso-db-a", "database"), ("iso-sc-a", "schema"))}
    other = databases.create("iso-sc-b", "schema")
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            tenant_connection(logins["iso-sc-a"], dbname=logins["iso-db-a"]["dbname"]).close()
        with tenant_connection(other) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("SELECT * FROM {}.users").format(sql.Identifier(schema_name("iso-sc-a"))))
    finally:
        for tenant_id in ("iso-db-a", "iso-sc-a", "iso-sc-b"):
            databases.drop(tenant_id)


def _crashing(login: DatabaseLogin, after: int, step: str, tenant_id: str, isolation: str) -> bool:
    """Run ``step`` with a crash before its ``after``-th statement; whether it crashed."""
    databases = CrashingDatabases(login, after)
    try:
        if step == "create":
            databases.create(tenant_id, isolation)
        else:
            databases.drop(tenant_id)
    except Crashed:
        return True
    return False


@pytest.mark.parametrize("isolation", ["database", "schema"])
def test_every_step_survives_a_crash_between_any_two_statements(master: Database, isolation: str) -> None:
    """For every n: a crash before statement n of the database step, then the step again (the
    Step Functions retry) or its compensation; a crash before statement n of offboarding's drop,
    then the drop again. Each converges. Before the fix a retry's ``ALTER ROLE ... NOSUPERUSER``
    failed as the master, and so did compensation's ``DROP OWNED BY``."""
    login = DatabaseLogin.from_secret(master.secret())
    databases = TenantDatabases(login)
    tenant_id = f"crash-{isolation[:2]}"
    after = 0
    while _crashing(login, after, "create", tenant_id, isolation):
        assert_onboarded(master, tenant_id, isolation, databases.create(tenant_id, isolation))  # retried
        databases.drop(tenant_id)
        assert _crashing(login, after, "create", tenant_id, isolation)
        databases.drop(tenant_id)  # compensated instead
        assert databases.exists(tenant_id) == GONE
        after += 1
    create_statements, after = after, 0
    databases.drop(tenant_id)
    while True:
        databases.create(tenant_id, isolation)
        crashed = _crashing(login, after, "drop", tenant_id, isolation)
        databases.drop(tenant_id)  # offboarding retried
        assert databases.exists(tenant_id) == GONE
        if not crashed:
            break
        after += 1
    assert create_statements > 10, create_statements
    assert after > 3, after


def test_a_rotated_master_password_is_read_again_once(
    server: tuple[EmbeddedPostgres, Database], master: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 9: RDS rotates the managed master secret; a warm environment holds the old password."""
    embedded, _ = server
    rotated = replace(master, password="rotated-" + master.password[:16])
    with mocked_aws(monkeypatch):
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="platform-database", SecretString=json.dumps(master.secret()))["ARN"]
        reads: list[str] = []

        def read() -> DatabaseLogin:
            reads.append(arn)
            return DatabaseLogin.from_secret(
                json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
            )

        warm = TenantDatabases(read(), reload=read)
        assert warm.exists("rot-a") == GONE
        try:
            # what RDS's rotation does: the new password on the login, then in the secret
            with superuser_of(embedded.pgdata).connect() as conn:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(master.username), sql.Literal(rotated.password)
                    )
                )
            secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(rotated.secret()))
            login = warm.create("rot-a", "schema")
            assert warm.master.password == rotated.password
            assert len(reads) == 2  # the first read, and one after the refused connection
            assert_onboarded(rotated, "rot-a", "schema", login)
            warm.drop("rot-a")
            assert len(reads) == 2
            # a refused login whose secret did not change: read once, then the error stands
            old = DatabaseLogin.from_secret(master.secret())

            def unchanged() -> DatabaseLogin:
                reads.append(arn)
                return old

            stale = TenantDatabases(old, reload=unchanged)
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                stale.exists("rot-a")
            assert len(reads) == 3
        finally:
            with superuser_of(embedded.pgdata).connect() as conn:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(master.username), sql.Literal(master.password)
                    )
                )


def test_a_new_database_takes_no_connection_before_public_loses_connect(master: Database) -> None:
    """Red team: between CREATE DATABASE and REVOKE ... FROM PUBLIC, any login could connect to a
    new tenant database (PUBLIC has CONNECT by default) and stay connected. It is created closed."""
    login = DatabaseLogin.from_secret(master.secret())
    databases = TenantDatabases(login)
    tenant_id, dbname = "closed-db", tenant_database_name("closed-db")
    try:
        after = 0
        while _crashing(login, after, "create", tenant_id, "database"):
            with master.connect() as conn:
                state = conn.execute(
                    "SELECT datallowconn, has_database_privilege('public', datname, 'CONNECT')"
                    " FROM pg_database WHERE datname = %s",
                    (dbname,),
                ).fetchone()
            if state is not None:
                allows, public_connect = state
                assert not (allows and public_connect), (after, state)
            after += 1
        assert after > 2
    finally:
        databases.drop(tenant_id)
