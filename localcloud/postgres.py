"""The database that stands in for RDS: an embedded PostgreSQL (pgserver), or DATABASE_URL.

Its connection details are stored in moto's Secrets Manager in the shape RDS uses for a managed
master secret ({engine, host, port, username, password, dbname}); functions find it through the
template's DatabaseSecretArn parameter, exactly as they would in AWS.

That secret holds a login like Aurora's master user, never the local superuser: NOSUPERUSER with
CREATEROLE and CREATEDB, a member of an ``rds_superuser`` role, under PostgreSQL 16's rules (a
CREATEROLE role gets only ADMIN OPTION on the roles it creates; ``createrole_self_grant`` is
empty). The superuser ``postgres`` (trusted on the local socket only) creates that login and is
otherwise left to tests that play the part of RDS itself, such as rotating the master password.
"""

from __future__ import annotations

import importlib
import logging
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse

import psycopg
from psycopg import sql

log = logging.getLogger("localcloud.postgres")

# The master login of the local cloud (Aurora's is named by MasterUsername; "postgres" is taken
# here by the real superuser).
MASTER_USERNAME = "platform_master"
# What RDS for PostgreSQL 16 gives rds_superuser: the predefined roles to watch and signal every
# session and to checkpoint, and ADMIN OPTION on its own rds_replication and rds_password roles.
RDS_SUPERUSER = "rds_superuser"
RDS_SUPERUSER_MEMBER_OF = ("pg_monitor", "pg_signal_backend", "pg_checkpoint")
RDS_ADMINISTERED_ROLES = ("rds_replication", "rds_password")


@dataclass(frozen=True)
class Database:
    """Where the platform database listens."""

    url: str
    host: str
    port: int
    username: str
    password: str
    dbname: str

    def secret(self) -> dict[str, Any]:
        """The RDS-style secret document."""
        return {
            "engine": "postgres",
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "dbname": self.dbname,
        }

    def connect(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        """An autocommit connection as this login."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.username,
            password=self.password,
            dbname=dbname or self.dbname,
            connect_timeout=10,
            autocommit=True,
        )


def parse_url(url: str) -> Database:
    """A ``postgresql://`` URL (host may be a socket directory given as ``?host=``)."""
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    host = query.get("host", [parsed.hostname or "localhost"])[0]
    return Database(
        url=url,
        host=host,
        port=parsed.port or 5432,
        username=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password or ""),
        dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
    )


def _ensure_role(conn: psycopg.Connection[Any], name: str, attributes: str) -> None:
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(name)))


def create_aurora_master(superuser: Database, username: str = MASTER_USERNAME) -> Database:
    """As ``superuser``: the login RDS/Aurora creates as the master user (idempotent); it gets a
    new random password each time, so only the secret written afterwards knows it.

    ``CREATE ROLE postgres WITH LOGIN NOSUPERUSER INHERIT CREATEDB CREATEROLE NOREPLICATION``
    plus ``rds_superuser`` is how AWS documents the master; nothing of the platform connects with
    more than that.
    """
    password = secrets.token_urlsafe(32)
    with superuser.connect() as conn:
        version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
        if version < 160000:
            raise RuntimeError(f"the local cloud needs PostgreSQL 16 (Aurora's rules), not {version}")
        for role in RDS_ADMINISTERED_ROLES:
            _ensure_role(conn, role, "NOLOGIN")
        _ensure_role(conn, RDS_SUPERUSER, "NOLOGIN")
        for member_of in RDS_SUPERUSER_MEMBER_OF:
            conn.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(RDS_SUPERUSER))
            )
        for role in RDS_ADMINISTERED_ROLES:
            conn.execute(
                sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
                    sql.Identifier(role), sql.Identifier(RDS_SUPERUSER)
                )
            )
        _ensure_role(conn, username, "NOLOGIN")
        # ALTER on every start: a data directory from an older run gets the same attributes.
        conn.execute(
            sql.SQL(
                "ALTER ROLE {} WITH LOGIN NOSUPERUSER INHERIT CREATEDB CREATEROLE NOREPLICATION"
                " NOBYPASSRLS PASSWORD {}"
            ).format(sql.Identifier(username), sql.Literal(password))
        )
        # RDS's default; a session or role setting could otherwise hide the PostgreSQL 16 rule
        conn.execute(sql.SQL("ALTER ROLE {} RESET createrole_self_grant").format(sql.Identifier(username)))
        conn.execute(
            sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
                sql.Identifier(RDS_SUPERUSER), sql.Identifier(username)
            )
        )
    master = replace(superuser, username=username, password=password)
    return replace(master, url=_url_of(master))


def _url_of(database: Database) -> str:
    return (
        f"postgresql://{quote(database.username, safe='')}:{quote(database.password, safe='')}@"
        f"/{quote(database.dbname, safe='')}?host={quote(database.host, safe='/')}&port={database.port}"
    )


def is_superuser(database: Database) -> bool:
    """Whether the login is a PostgreSQL superuser (a DATABASE_URL may name one)."""
    with database.connect() as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def superuser_of(pgdata: Path) -> Database:
    """The superuser of the embedded server running on ``pgdata`` (trusted on its socket): what
    a test uses to act as RDS itself, e.g. to rotate the master password."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    port, socket_dir = int(lines[3]), lines[4].strip()
    database = Database(
        url="", host=socket_dir, port=port, username="postgres", password="", dbname="postgres"
    )
    return replace(database, url=_url_of(database))


class EmbeddedPostgres:
    """A pgserver instance with its data under ``state_dir`` (reused across runs)."""

    def __init__(self, state_dir: Path) -> None:
        self.pgdata = state_dir / "pgdata"
        self._server: Any = None
        # the local superuser, set by start(): only for what RDS itself would do
        self.superuser: Database | None = None

    def start(self) -> Database:
        """Start (or attach to) the server; initialises the data directory the first time.
        Returns the Aurora-like master login (see :func:`create_aurora_master`).

        Only the superuser is trusted on the local socket; every other role (the master and the
        tenants') must present its password, as on RDS.
        """
        pgserver: Any = importlib.import_module("pgserver")

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        database = parse_url(self._server.get_uri())
        hba = self.pgdata / "pg_hba.conf"
        wanted = f"local all {database.username} trust\nlocal all all scram-sha-256\n"
        if hba.read_text() != wanted:
            hba.write_text(wanted)
            self._server.psql("SELECT pg_reload_conf();")
        self.superuser = database
        return create_aurora_master(database)

    def stop(self) -> None:
        """Stop the server (pgserver stops it when the last handle is cleaned up)."""
        if self._server is not None:
            try:
                self._server.cleanup()
            except Exception:
                log.exception("stopping PostgreSQL failed")
            self._server = None
