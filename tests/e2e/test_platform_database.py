"""The platform database as Aurora gives it (issue 16 items 3, 6, 9), end to end on the local cloud.

The functions connect as a master like Aurora's (not a superuser); its password rotates under a
warm onboarding function; a deployment with no database (``DatabaseSecretArn=""``, every
samconfig profile) onboards and offboards tenants without one, and refuses ``isolation``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from localcloud.postgres import superuser_of
from tenant_security.onboarding.keys import SHREDDED_KEY_STATES
from tests.support.cloud import REAL_TEMPLATE, RunningCloud, start_cloud
from tests.support.identity import Identity, first_sign_in, mint_token
from tests.support.tenants import (
    connect_as_master,
    connect_as_tenant,
    finished_execution,
    now,
    put_onboarding_event,
    request_body,
    tenant_resources,
)

pytestmark = pytest.mark.e2e


def _master_secret(cloud: RunningCloud) -> tuple[str, dict[str, Any]]:
    secrets_manager = cloud.client("secretsmanager")
    (secret,) = [
        s for s in secrets_manager.list_secrets()["SecretList"] if s["Name"].endswith("/platform-database")
    ]
    return secret["ARN"], json.loads(secrets_manager.get_secret_value(SecretId=secret["ARN"])["SecretString"])


def _failed_tasks(cloud: RunningCloud, execution_arn: str) -> list[dict[str, Any]]:
    history = cloud.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)
    return [e for e in history["events"] if e["type"] in ("TaskFailed", "LambdaFunctionFailed")]


def test_the_functions_master_is_aurora_s_not_a_superuser(platform_cloud: RunningCloud) -> None:
    _, master = _master_secret(platform_cloud)
    assert master["username"] != "postgres"
    with connect_as_master(platform_cloud) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (False, True, True)
        assert conn.execute("SHOW createrole_self_grant").fetchone() == ("",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER SYSTEM SET log_statement = 'all'")


def test_a_rotated_master_password_reaches_a_warm_onboarding_function(platform_cloud: RunningCloud) -> None:
    """Item 9: the onboarding function keeps the master login per execution environment; RDS
    rotates it. Before the fix every later database step failed until the environment died."""
    started = now()
    put_onboarding_event(platform_cloud, request_body("rot-warm", "schema"))
    assert (
        finished_execution(platform_cloud, "onboarding", "rot-warm", after=started)["status"] == "SUCCEEDED"
    )
    arn, master = _master_secret(platform_cloud)
    rotated = "rotated-" + secrets.token_urlsafe(24)
    # what RDS's rotation does: the login's password first, then the secret's
    with superuser_of(platform_cloud.state_dir / "pgdata").connect() as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(master["username"]), sql.Literal(rotated)
            )
        )
    platform_cloud.client("secretsmanager").put_secret_value(
        SecretId=arn, SecretString=json.dumps({**master, "password": rotated})
    )
    started = now()
    put_onboarding_event(platform_cloud, request_body("rot-after", "database"))
    done = finished_execution(platform_cloud, "onboarding", "rot-after", after=started)
    assert done["status"] == "SUCCEEDED", done
    # the warm function read the secret again at its first refused connection: no retried step
    assert _failed_tasks(platform_cloud, done["executionArn"]) == []
    with connect_as_tenant(platform_cloud, "rot-after") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("tenant_rot-after",)


@pytest.fixture(scope="module")
def no_database_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    """template.yaml as every samconfig profile deploys it: PlatformDatabase=existing and
    DatabaseSecretArn empty (the local cloud starts no PostgreSQL)."""
    cloud = start_cloud(REAL_TEMPLATE, Path(tmp_path_factory.mktemp("no-database-cloud")), database=False)
    yield cloud
    cloud.stop()


@pytest.fixture(scope="module")
def no_database_admin(no_database_cloud: RunningCloud) -> Identity:
    info = no_database_cloud.info
    return first_sign_in(no_database_cloud, info["platform_tenant"], info["username"], info["password"])


def test_without_a_database_isolation_is_refused_with_a_400(
    no_database_cloud: RunningCloud, no_database_admin: Identity
) -> None:
    """Item 6: before the fix every onboarding failed at the database step (get_secret_value with
    SecretId "") and left the tenant PROVISIONING."""
    for isolation in ("database", "schema"):
        reply = no_database_cloud.http(
            "POST",
            "/tenants",
            json=request_body("nodb-refused", isolation),
            headers=no_database_admin.headers,
        )
        assert reply.status_code == 400, reply.text
        assert [f["field"] for f in reply.json()["fields"]] == ["isolation"]
        assert "no tenant databases" in reply.json()["fields"][0]["message"]
    assert (
        no_database_cloud.http("GET", "/tenants/nodb-refused", headers=no_database_admin.headers).status_code
        == 404
    )


def test_without_a_database_a_tenant_is_onboarded_and_offboarded_without_one(
    no_database_cloud: RunningCloud, no_database_admin: Identity
) -> None:
    tenant = "nodb-acme"
    body = request_body(tenant, security_policies={"access_control": {"ip_whitelist": []}})
    del body["isolation"]
    started = now()
    put_onboarding_event(no_database_cloud, body)  # the API's 400 aside, both entries validate alike
    done = finished_execution(no_database_cloud, "onboarding", tenant, after=started)
    assert done["status"] == "SUCCEEDED", done
    status = no_database_cloud.http("GET", f"/tenants/{tenant}", headers=no_database_admin.headers).json()
    assert (status["status"], status["isolation"]) == ("ACTIVE", "none")
    owned = tenant_resources(no_database_cloud, tenant)
    assert owned["database"] is None  # no PostgreSQL at all
    developer = {"Authorization": f"Bearer {mint_token(no_database_cloud, tenant, 'owner', ['developer'])}"}
    records = no_database_cloud.http(
        "POST", f"/tenants/{tenant}/records", json={"data": {"x": 1}}, headers=developer
    )
    assert records.status_code == 409, records.text  # nowhere to keep records: said so, not a 503
    missing = no_database_cloud.http(
        "GET", f"/tenants/{tenant}/records/00000000-0000-4000-8000-000000000000", headers=developer
    )
    assert missing.status_code == 404, missing.text  # at once, not a 503 after the pool's wait
    assert len(owned["aliases"]) == 3
    assert sorted(owned["secrets"]) == [f"dcisionai/tenants/{tenant}/admin-initial-password"]
    started = now()
    assert (
        no_database_cloud.http("DELETE", f"/tenants/{tenant}", headers=no_database_admin.headers).status_code
        == 202
    )
    done = finished_execution(no_database_cloud, "offboarding", tenant, after=started)
    assert done["status"] == "SUCCEEDED", done
    left = tenant_resources(no_database_cloud, tenant)
    assert (left["secrets"], left["users"]) == ([], [])
    assert set(left["keys"].values()) <= set(SHREDDED_KEY_STATES)
