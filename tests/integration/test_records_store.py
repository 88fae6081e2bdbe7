"""Tenant records on a real PostgreSQL (pgserver) and moto: the tenant's own role, sensitive fields
sealed, credentials rotated on failure, bounded pools, and no way from one tenant to another."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from aws_lambda_powertools.event_handler import Response
from psycopg import sql

from localcloud.postgres import Database, EmbeddedPostgres
from tenant_security.config import Settings
from tenant_security.crypto import DecryptionRefused
from tenant_security.database import DatabaseLogin, TenantDatabases
from tenant_security.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from tenant_security.idempotency import IdempotentReplies, creation_id_for
from tenant_security.locality import DataLocalityViolation
from tenant_security.models.policies import parse_security_policies
from tenant_security.quotas.deadline import RequestTimedOut
from tenant_security.quotas.storage import StorageQuota
from tenant_security.records import TenantRecords, check_record
from tenant_security.tenant_connections import TenantLogins, TenantPools
from tenant_security.tenants import TenantProfile
from tests.support.moto import create_table, mocked_aws
from tests.support.settings import local_settings

TENANTS = {"rec-db-a": "database", "rec-db-b": "database", "rec-sc-a": "schema", "rec-sc-b": "schema"}


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, TenantDatabases]]:
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("records-pg")))
    database = server.start()
    databases = TenantDatabases(DatabaseLogin.from_secret(database.secret()))
    try:
        yield database, databases
    finally:
        server.stop()


class Stack:
    """The records service of one test, with the pieces a test pokes at."""

    def __init__(self, databases: TenantDatabases, secrets: Any, settings: Settings) -> None:
        self.databases = databases
        self.secrets = secrets
        self.settings = settings
        self.fetches = 0
        original = secrets.get_secret_value

        def counted(**kw: Any) -> Any:
            self.fetches += 1
            return original(**kw)

        secrets.get_secret_value = counted
        self.logins = TenantLogins(
            secrets, lambda t: settings.tenant_secret_name(t, "database"), min_refresh_seconds=0.0
        )
        self.pools = TenantPools(self.logins, pool_size=2, max_pools=3, wait_seconds=3.0)
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        self.records = TenantRecords(settings, self.pools, StorageQuota(ddb, settings.counters_table))

    def tenant(self, tenant_id: str, **protection: Any) -> TenantProfile:
        policies = parse_security_policies({"data_protection": protection} if protection else {})
        return TenantProfile(tenant_id=tenant_id, name=tenant_id, status="ACTIVE", policies=policies)

    def login(self, tenant_id: str) -> dict[str, Any]:
        name = self.settings.tenant_secret_name(tenant_id, "database")
        return dict(json.loads(self.secrets.get_secret_value(SecretId=name)["SecretString"]))

    def master(self, dbname: str) -> psycopg.Connection[Any]:
        m = self.databases.master
        return psycopg.connect(
            host=m.host, port=m.port, user=m.username, password=m.password, dbname=dbname, autocommit=True
        )


@pytest.fixture
def stack(postgres: tuple[Database, TenantDatabases], monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    _, databases = postgres
    with mocked_aws(monkeypatch):
        settings = local_settings(resource_prefix="tst", account_id="123456789012")
        kms = boto3.client("kms", region_name="us-east-1")
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        create_table(ddb, settings.counters_table, "pk", "sk")
        for tenant_id, isolation in TENANTS.items():
            key = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=settings.tenant_key_alias(tenant_id, "data"), TargetKeyId=key)
            login = databases.create(tenant_id, isolation)
            secrets.create_secret(
                Name=settings.tenant_secret_name(tenant_id, "database"), SecretString=json.dumps(login)
            )
        built = Stack(databases, secrets, settings)
        try:
            yield built
        finally:
            built.pools.close()


@pytest.mark.parametrize("tenant_id", ["rec-db-a", "rec-sc-a"])
def test_a_record_round_trips_with_its_sensitive_fields_sealed(stack: Stack, tenant_id: str) -> None:
    tenant = stack.tenant(tenant_id)
    data = {"name": "Ada", "ssn": "123-45-6789", "card": {"pan": "4111111111111111"}, "n": [1, 2.5, None]}
    created = stack.records.create(tenant, "alice", data, ["ssn", "card"])
    assert created["sensitive"] == ["card", "ssn"]
    assert created["created_by"] == "alice"
    got = stack.records.get(tenant_id, created["id"])
    assert got["data"] == data
    assert got["sensitive"] == ["card", "ssn"]
    # what the database holds: no sensitive value in clear, an Encryption SDK message instead
    login = stack.login(tenant_id)
    with stack.master(login["dbname"]) as conn:
        stored, sealed = conn.execute(
            sql.SQL("SELECT data::text, sealed FROM {} WHERE id = %s").format(
                sql.Identifier(login["schema"], "records")
            ),
            (created["id"],),
        ).fetchone()  # type: ignore[misc]
    assert "123-45-6789" not in stored
    assert "4111" not in stored
    assert "Ada" in stored
    assert b"123-45-6789" not in bytes(sealed)
    assert b"4111" not in bytes(sealed)
    # the bytes count against the tenant's storage quota (no file counted)
    usage = stack.records.quota.usage(tenant_id)
    assert usage["files"] == 0
    assert usage["bytes"] >= len(bytes(sealed))


def test_a_sealed_value_moved_to_another_record_or_tenant_does_not_decrypt(stack: Stack) -> None:
    a = stack.tenant("rec-sc-a")
    first = stack.records.create(a, "alice", {"ssn": "111"}, ["ssn"])
    second = stack.records.create(a, "alice", {"ssn": "222"}, ["ssn"])
    login = stack.login("rec-sc-a")
    table = sql.Identifier(login["schema"], "records")
    with stack.master(login["dbname"]) as conn:
        conn.execute(
            sql.SQL("UPDATE {t} SET sealed = (SELECT sealed FROM {t} WHERE id = %s) WHERE id = %s").format(
                t=table
            ),
            (first["id"], second["id"]),
        )
    with pytest.raises(DecryptionRefused):
        stack.records.get("rec-sc-a", second["id"])
    # and a tenant B row carrying A's ciphertext (same record id) is refused under B's context
    b = stack.tenant("rec-sc-b")
    stack.records.new_id = lambda: uuid.UUID(first["id"])
    stack.records.create(b, "bob", {"ssn": "999"}, ["ssn"])
    login_b = stack.login("rec-sc-b")
    with stack.master(login_b["dbname"]) as conn:
        sealed_a = conn.execute(
            sql.SQL("SELECT sealed FROM {} WHERE id = %s").format(table), (first["id"],)
        ).fetchone()
        assert sealed_a is not None
        conn.execute(
            sql.SQL("UPDATE {} SET sealed = %s WHERE id = %s").format(
                sql.Identifier(login_b["schema"], "records")
            ),
            (sealed_a[0], first["id"]),
        )
    with pytest.raises(DecryptionRefused):
        stack.records.get("rec-sc-b", first["id"])


@pytest.mark.parametrize(("reader", "owner"), [("rec-db-a", "rec-db-b"), ("rec-sc-a", "rec-sc-b")])
def test_a_tenants_role_cannot_read_another_tenants_records(stack: Stack, reader: str, owner: str) -> None:
    created = stack.records.create(stack.tenant(owner), "bob", {"x": 1}, [])
    mine, theirs = stack.login(reader), stack.login(owner)

    def connect_as_reader(dbname: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=mine["host"],
            port=mine["port"],
            user=mine["username"],
            password=mine["password"],
            dbname=dbname,
            connect_timeout=5,
            autocommit=True,
        )

    if theirs["dbname"] != mine["dbname"]:  # database isolation: A's role may not even connect
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            connect_as_reader(theirs["dbname"])
        return
    with (  # schema isolation: same database, but no usage of the other schema
        connect_as_reader(mine["dbname"]) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(
            sql.SQL("SELECT data FROM {} WHERE id = %s").format(sql.Identifier(theirs["schema"], "records")),
            (created["id"],),
        )
    with pytest.raises(NotFound):  # and through the service, another tenant's id is simply not there
        stack.records.get(reader, created["id"])


def test_a_rotated_password_is_fetched_again_after_a_failed_connect(stack: Stack) -> None:
    tenant_id = "rec-db-a"
    stack.records.create(stack.tenant(tenant_id), "alice", {"before": True}, [])
    assert stack.fetches == 1
    stack.pools.close()  # a new execution environment, say, with the old login still cached
    login = stack.login(tenant_id)
    new_password = "rotated-" + uuid.uuid4().hex
    with stack.master("postgres") as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(login["username"]), sql.Literal(new_password)
            )
        )
    stack.secrets.put_secret_value(
        SecretId=stack.settings.tenant_secret_name(tenant_id, "database"),
        SecretString=json.dumps({**login, "password": new_password}),
    )
    fetches = stack.fetches
    created = stack.records.create(stack.tenant(tenant_id), "alice", {"after": True}, [])
    assert stack.records.get(tenant_id, created["id"])["data"] == {"after": True}
    # within the cache's max age, only the failed attempt can have made the fresh fetch
    assert stack.fetches - fetches == 1
    assert stack.logins.current(tenant_id).password == new_password


def test_a_login_that_never_works_is_a_503_not_a_hang(stack: Stack) -> None:
    tenant_id = "rec-sc-b"
    login = stack.login(tenant_id)
    stack.secrets.put_secret_value(
        SecretId=stack.settings.tenant_secret_name(tenant_id, "database"),
        SecretString=json.dumps({**login, "password": "wrong"}),
    )
    with pytest.raises(ServiceUnavailable):
        stack.records.get(tenant_id, str(uuid.uuid4()))
    assert stack.records.quota.usage(tenant_id)["bytes"] == 0


def test_a_tenant_without_a_database_is_answered_without_secrets_manager(stack: Stack) -> None:
    """Isolation none: no login exists, and on AWS asking for one is AccessDeniedException, not
    ResourceNotFoundException (IAM is evaluated first, against the bare name, which the
    functions' `.../database-*` grants do not match). Before the fix both reads asked (a 500 on
    AWS); now the tenant's record answers: 404 for a record, nothing created for an export."""
    tenant = TenantProfile(tenant_id="rec-none", name="rec-none", status="ACTIVE", isolation="none")
    with pytest.raises(NotFound):
        stack.records.get(tenant, str(uuid.uuid4()))
    assert stack.records.created_by(tenant, "bob") == {"items": [], "truncated": False}
    assert stack.fetches == 0
    # a tenant with a database is still read through its login
    created = stack.records.create(stack.tenant("rec-sc-a"), "bob", {"x": 1}, [])
    assert stack.records.get(stack.tenant("rec-sc-a"), created["id"])["data"] == {"x": 1}
    assert stack.fetches == 1


def test_pools_are_bounded_per_environment(stack: Stack) -> None:
    for tenant_id in TENANTS:
        stack.records.create(stack.tenant(tenant_id), "u", {"t": tenant_id}, [])
    assert stack.pools.open_tenants() == ["rec-db-b", "rec-sc-a", "rec-sc-b"]  # rec-db-a was closed
    with stack.master("postgres") as conn:
        per_role = dict(
            conn.execute(
                "SELECT usename, count(*) FROM pg_stat_activity WHERE usename LIKE %s GROUP BY 1",
                ("tenant_rec-%",),
            ).fetchall()
        )
    assert all(count <= 2 for count in per_role.values()), per_role
    assert "tenant_rec-db-a" not in per_role


def test_writes_outside_the_data_locality_are_refused(stack: Stack) -> None:
    tenant = stack.tenant("rec-db-b", data_locality=["eu-west-1"], cross_region_encryption=False)
    with pytest.raises(DataLocalityViolation):
        stack.records.create(tenant, "bob", {"x": 1}, [])


@pytest.mark.parametrize(
    ("data", "sensitive", "field"),
    [
        ({"a": "x\x00y"}, [], "data.a"),
        ({"a": float("nan")}, [], "data.a"),
        ({"a": float("inf")}, [], "data.a"),
        ({"k\x00": 1}, [], "data"),
        ({"a": 1}, ["b"], "sensitive"),
        ({"a": 1}, ["a", "a"], "sensitive"),
        ({"d": json.loads("[" * 40 + "]" * 40)}, [], None),
    ],
)
def test_records_postgres_could_not_store_faithfully_are_400(
    data: dict[str, Any], sensitive: list[str], field: str | None
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_record(data, sensitive)
    if field is not None:
        assert caught.value.fields
        assert caught.value.fields[0]["field"] == field


def _rows(stack: Stack, tenant_id: str, marker: str) -> list[str]:
    login = stack.login(tenant_id)
    with stack.master(login["dbname"]) as conn:
        rows = conn.execute(
            sql.SQL("SELECT id::text, data::text FROM {}").format(sql.Identifier(login["schema"], "records"))
        ).fetchall()
    return [row[0] for row in rows if marker in row[1]]


@pytest.mark.parametrize("tenant_id", ["rec-db-a", "rec-sc-a"])
def test_a_keyed_creation_whose_reply_was_lost_after_the_commit_is_found_not_made_again(
    stack: Stack, tenant_id: str
) -> None:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    create_table(ddb, "idem", "id")
    replies = IdempotentReplies(ddb, "idem")
    tenant, marker = stack.tenant(tenant_id), uuid.uuid4().hex
    key, scope = str(uuid.uuid4()), [tenant_id, tenant_id, "dana"]
    request = {"route": "POST /tenants/{tenant_id}/records", "body": {"data": {"m": marker, "ssn": "1"}}}
    fire = [True]

    def make() -> Response[Any]:
        record_id = creation_id_for(key, scope, request)
        created = stack.records.create(tenant, "dana", {"m": marker, "ssn": "1"}, ["ssn"], record_id)
        if fire[0]:  # the request deadline's alarm, after the INSERT committed: a 503
            fire[0] = False
            raise RequestTimedOut("the request took longer than max_request_duration")
        return Response(201, "application/json", json.dumps(created))

    with pytest.raises(RequestTimedOut):
        replies.run(scope, key, request, make)
    charged = stack.records.quota.usage(tenant_id)
    retried = replies.run(scope, key, request, make)  # the client's retry with the same key
    assert retried.response.status_code == 201
    created = json.loads(retried.response.body)
    assert _rows(stack, tenant_id, marker) == [created["id"]]
    assert (created["created_by"], created["sensitive"]) == ("dana", ["ssn"])
    assert stack.records.get(tenant_id, created["id"])["data"] == {"m": marker, "ssn": "1"}
    assert stack.records.quota.usage(tenant_id) == charged  # charged once
    # the same id from someone else is no retry of theirs: 409, and nothing changes
    with pytest.raises(Conflict):
        stack.records.create(tenant, "eve", {"m": marker}, [], created["id"])
    assert _rows(stack, tenant_id, marker) == [created["id"]]
    assert stack.records.quota.usage(tenant_id) == charged
    # without a key, each creation is a record of its own
    ids = {stack.records.create(tenant, "dana", {"m": marker}, [])["id"] for _ in range(2)}
    assert len(ids) == 2


def test_a_keyed_creation_racing_its_twin_answers_with_the_twins_record(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, record_id = stack.tenant("rec-sc-b"), str(uuid.uuid5(uuid.NAMESPACE_URL, uuid.uuid4().hex))
    first = stack.records.create(tenant, "dana", {"m": record_id}, [], record_id)
    charged = stack.records.quota.usage("rec-sc-b")
    looked = [0]
    made_before = stack.records._made_before

    def not_yet_then_found(*args: Any) -> Any:
        looked[0] += 1
        return None if looked[0] == 1 else made_before(*args)  # the twin commits in between

    monkeypatch.setattr(stack.records, "_made_before", not_yet_then_found)
    assert stack.records.create(tenant, "dana", {"m": record_id}, [], record_id) == first
    assert looked[0] == 2  # the INSERT found the row (ON CONFLICT), then the twin's record was read
    assert _rows(stack, "rec-sc-b", record_id) == [record_id]
    assert stack.records.quota.usage("rec-sc-b") == charged
