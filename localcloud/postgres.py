"""The database that stands in for RDS: an embedded PostgreSQL (pgserver), or DATABASE_URL.

Its connection details are stored in moto's Secrets Manager in the shape RDS uses for a managed
master secret ({engine, host, port, username, password, dbname}); functions find it through the
template's DatabaseSecretArn parameter, exactly as they would in AWS.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

log = logging.getLogger("localcloud.postgres")


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


class EmbeddedPostgres:
    """A pgserver instance with its data under ``state_dir`` (reused across runs)."""

    def __init__(self, state_dir: Path) -> None:
        self.pgdata = state_dir / "pgdata"
        self._server: Any = None

    def start(self) -> Database:
        """Start (or attach to) the server; initialises the data directory the first time.

        Only the master role is trusted on the local socket; every other role (the tenants')
        must present its password, as on RDS.
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
        return database

    def stop(self) -> None:
        """Stop the server (pgserver stops it when the last handle is cleaned up)."""
        if self._server is not None:
            try:
                self._server.cleanup()
            except Exception:
                log.exception("stopping PostgreSQL failed")
            self._server = None
