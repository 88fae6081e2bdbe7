"""The attack matrix, generated from the API routes of template.yaml and the route table.

For every protected route: no token, an expired token and a forged one (401); a token of another
tenant with each role, a role of the tenant without the route's permission, a suspended tenant and
a source address outside the tenant's allow-list (403); and each role that holds the permission is
admitted (neither 401 nor 403, never a 5xx). A route added to the template without an entry in the
route table, or with a path parameter this file has no sample for, fails the suite.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tenant_security.authz.rbac import BUILTIN_ROLES, PLATFORM_ADMIN, may_use
from tenant_security.authz.routes import rule_for
from tenant_security.identity.tokens import TokenIssuer
from tests.support.cloud import RunningCloud, warm_api_workers
from tests.support.identity import AUDIENCE, ISSUER, mint_token, seed_tenant, seen, signing_key_id
from tests.support.identity_fakes import LocalSigner
from tests.unit.test_rbac_and_routes import template_routes

pytestmark = pytest.mark.e2e

VICTIM, ATTACKER, FROZEN, FENCED = "mx-victim", "mx-attacker", "mx-frozen", "mx-fenced"
TENANT_ROLES = sorted(r for r in BUILTIN_ROLES if r != PLATFORM_ADMIN)
# A harmless value for every path parameter a route may have (a new parameter needs one here).
SAMPLES = {
    "{username}": "mx-nobody",
    "{key+}": "mx/none.txt",
    "{record_id}": str(uuid.UUID(int=1)),
    "{name}": "mx-none",
    "{upload_id}": "0" * 32,
    "{framework}": "gdpr",
    "{role}": "mx-role",
    "{session_id}": "mx" + "0" * 30,
    "{client_id}": "mx-victim_" + "0" * 20,
    "{sequence}": "1",
}


@dataclass(frozen=True)
class Cell:
    method: str
    resource: str
    attack: str
    expected: str  # "401", "403" or "admitted"


def _path(resource: str, tenant: str) -> str:
    path = resource.replace("{tenant_id}", tenant)
    for name, value in SAMPLES.items():
        path = path.replace(name, value)
    assert "{" not in path, f"no sample value for a parameter of {resource}: add it to SAMPLES"
    return path


def _protected_routes() -> list[tuple[str, str]]:
    routes = [(m, p) for m, p, protected in template_routes() if protected]
    missing = [(m, p) for m, p in routes if rule_for(m, p) is None]
    assert not missing, f"routes without an entry in tenant_security.authz.routes: {missing}"
    return routes


def _cells() -> list[Cell]:
    cells = []
    for method, resource in _protected_routes():
        rule = rule_for(method, resource)
        assert rule is not None
        for attack in ("no-token", "expired-token", "forged-token"):
            cells.append(Cell(method, resource, attack, "401"))
        if not rule.tenant_scoped:
            # The caller's own session(s): every role of an active tenant, from an address its
            # policy admits (the other tenant's ids: test_another_tenants_session_is_404_...).
            for role in TENANT_ROLES:
                allowed = may_use(rule, BUILTIN_ROLES[role])
                cells.append(Cell(method, resource, f"role:{role}", "admitted" if allowed else "403"))
            cells.append(Cell(method, resource, f"suspended-tenant:{TENANT_ROLES[0]}", "403"))
            cells.append(Cell(method, resource, f"outside-allow-list:{TENANT_ROLES[0]}", "403"))
            continue
        for role in TENANT_ROLES:
            cells.append(Cell(method, resource, f"other-tenant:{role}", "403"))
            allowed = may_use(rule, BUILTIN_ROLES[role])
            cells.append(Cell(method, resource, f"role:{role}", "admitted" if allowed else "403"))
        admitted_by = next(r for r in [*TENANT_ROLES, PLATFORM_ADMIN] if may_use(rule, BUILTIN_ROLES[r]))
        if admitted_by != PLATFORM_ADMIN:
            cells.append(Cell(method, resource, f"suspended-tenant:{admitted_by}", "403"))
            cells.append(Cell(method, resource, f"outside-allow-list:{admitted_by}", "403"))
    return cells


CELLS = _cells()
ENDS_SESSIONS = {("DELETE", "/tenants/{tenant_id}/sessions")}
# Routes whose admitted call ends the caller's own session.
ENDS_OWN_SESSION = {("POST", "/auth/logout")}
_SHARED: dict[tuple[str, str], str] = {}
_SHARED_LOCK = threading.Lock()


@pytest.fixture(scope="module")
def matrix_tenants(platform_cloud: RunningCloud) -> None:
    seed_tenant(platform_cloud, VICTIM, database="schema")
    platform_cloud.client("s3").create_bucket(Bucket=f"dcisionai-10ca1000-tenant-{VICTIM}-data")
    seed_tenant(platform_cloud, ATTACKER)
    seed_tenant(platform_cloud, FROZEN, status="SUSPENDED")
    seed_tenant(platform_cloud, FENCED, access_control={"ip_whitelist": ["10.0.0.0/8"]})


def _token(cloud: RunningCloud, cell: Cell) -> str | None:
    """A token for the cell's attack (a session of its own where the route ends it); None for
    no token at all."""
    attack, _, role = cell.attack.partition(":")
    if attack == "no-token":
        return None
    if attack == "expired-token":
        return mint_token(cloud, VICTIM, "mx-user", ["tenant-admin"], clock=time.time() - 7200)
    if attack == "forged-token":
        forged, _ = TokenIssuer(LocalSigner(signing_key_id(cloud)), ISSUER, AUDIENCE).issue(  # type: ignore[arg-type]
            subject="mx-user",
            tenant_id=VICTIM,
            token_use="access",
            ttl=300,
            roles=["platform-admin"],
            sid="s",
        )
        seen(forged)
        return forged
    tenant = {"other-tenant": ATTACKER, "suspended-tenant": FROZEN, "outside-allow-list": FENCED}.get(
        attack, VICTIM
    )
    if (cell.method, cell.resource) in ENDS_OWN_SESSION | ENDS_SESSIONS:
        return mint_token(cloud, tenant, f"mx-{role}", [role])  # its session ends: its own token
    # Every other cell of a (tenant, role) shares one session: minting ~600 sessions was most of
    # the matrix's time, and a cell's status does not depend on it (API Gateway's cached answer
    # for the token is the one it evaluates for each route, as it would for a real client).
    with _SHARED_LOCK:
        if (tenant, role) not in _SHARED:
            _SHARED[(tenant, role)] = mint_token(cloud, tenant, f"mx-{role}", [role])
        return _SHARED[(tenant, role)]


def _request(cloud: RunningCloud, cell: Cell) -> tuple[Cell, int, str]:
    attack = cell.attack.partition(":")[0]
    tenant = {"suspended-tenant": FROZEN, "outside-allow-list": FENCED}.get(attack, VICTIM)
    headers: dict[str, str] = {}
    token = _token(cloud, cell)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {"params": {"period": "2026-Q4"}}
    if cell.method in ("POST", "PUT"):
        # An admitted write gets a body its handler refuses (or, for files, a harmless one):
        # the matrix proves who gets in, without changing the tenant it runs against.
        is_file = "{key+}" in cell.resource
        headers["Content-Type"] = "application/octet-stream" if is_file else "application/json"
        kwargs["data"] = b"x" if is_file else b"{not json"
    reply = cloud.http(cell.method, _path(cell.resource, tenant), headers=headers, **kwargs)
    return cell, reply.status_code, reply.text[:200]


def _ok(cell: Cell, status: int) -> bool:
    if cell.expected == "admitted":
        return status not in (401, 403) and status < 500
    return status == int(cell.expected)


def test_the_matrix_covers_every_route_and_attack() -> None:
    routes = _protected_routes()
    assert {(c.method, c.resource) for c in CELLS} == set(routes)
    scoped = [r for r in routes if "{tenant_id}" in r[1]]
    assert len(CELLS) >= len(routes) * 3 + len(scoped) * 2 * len(TENANT_ROLES)
    assert any(c.expected == "admitted" for c in CELLS)


def test_every_cell_of_the_attack_matrix_gets_its_exact_status(
    platform_cloud: RunningCloud, matrix_tenants: None
) -> None:
    # An admitted "revoke every session" ends the sessions of the cells running beside it: those
    # cells run after all the others, one by one.
    last = [c for c in CELLS if c.expected == "admitted" and (c.method, c.resource) in ENDS_SESSIONS]
    warm_api_workers(
        platform_cloud, mint_token(platform_cloud, VICTIM, "mx-warm", ["tenant-admin"]), VICTIM, 6
    )
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(lambda cell: _request(platform_cloud, cell), [c for c in CELLS if c not in last])
        )
    results += [_request(platform_cloud, cell) for cell in last]
    wrong = [
        f"{c.method} {c.resource} [{c.attack}] expected {c.expected}, got {status}: {text}"
        for c, status, text in results
        if not _ok(c, status)
    ]
    assert not wrong, f"{len(wrong)} of {len(results)} cells wrong:\n" + "\n".join(wrong[:40])


def test_the_matrix_left_the_victims_data_alone(platform_cloud: RunningCloud, matrix_tenants: None) -> None:
    """Admitted writes were refused by their handlers; only the harmless file body may exist."""
    s3 = platform_cloud.client("s3")
    names = [s["Name"] for s in platform_cloud.client("secretsmanager").list_secrets()["SecretList"]]
    assert not [n for n in names if n.startswith(f"dcisionai/tenants/{VICTIM}/app/")]
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert f"dcisionai-10ca1000-tenant-{ATTACKER}-data" not in buckets
    listed = s3.list_objects_v2(Bucket=f"dcisionai-10ca1000-tenant-{VICTIM}-data").get("Contents", [])
    assert [o["Key"] for o in listed] in ([], ["mx/none.txt"])


@pytest.mark.parametrize("role", TENANT_ROLES)
def test_another_tenants_session_is_404_for_every_role_and_stays_live(
    platform_cloud: RunningCloud, matrix_tenants: None, role: str
) -> None:
    """A session id of another tenant names no session of the caller's: never listed, never
    ended (404, as an unknown id), whatever the caller's role."""
    victim = mint_token(platform_cloud, VICTIM, f"mx-owner-{role}", ["viewer"])
    (victim_session,) = platform_cloud.http(
        "GET", "/auth/sessions", headers={"Authorization": f"Bearer {victim}"}
    ).json()["items"]
    attacker = {"Authorization": f"Bearer {mint_token(platform_cloud, ATTACKER, f'mx-{role}', [role])}"}
    sid = victim_session["session_id"]
    assert platform_cloud.http("DELETE", f"/auth/sessions/{sid}", headers=attacker).status_code == 404
    listed = platform_cloud.http("GET", "/auth/sessions", headers=attacker).json()["items"]
    assert sid not in {s["session_id"] for s in listed}
    tenant_wide = platform_cloud.http("GET", f"/tenants/{VICTIM}/sessions", headers=attacker)
    assert tenant_wide.status_code == 403
    ended = platform_cloud.http(
        "DELETE", f"/tenants/{VICTIM}/users/mx-owner-{role}/sessions", headers=attacker
    )
    assert ended.status_code == 403
    still = platform_cloud.http("GET", "/auth/sessions", headers={"Authorization": f"Bearer {victim}"})
    assert still.status_code == 200
    assert [s["session_id"] for s in still.json()["items"]] == [sid]
