"""Audit proofs over HTTP through the local cloud: events on the bus → the writer → the tree; the
auditor fetches the signed checkpoint, the public keys, the stored records and the proofs, and
checks them with the RFC 9162 verifier of the tests (tests/support/rfc9162.py) -- never the
platform's own tree code."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt

from tests.support import rfc9162
from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import mint_token, seed_tenant

BUS, SOURCE = "dcisionai-platform", "dcisionai.tenant-security"


def _put(cloud: RunningCloud, tenant_id: str, numbers: range) -> None:
    events = cloud.client("events")
    entries = [
        {
            "Source": SOURCE,
            "DetailType": "User Activity",
            "Detail": json.dumps(
                {
                    "event_id": f"{tenant_id}-{n}",
                    "tenant_id": tenant_id,
                    "action": "files:Read",
                    "category": "data",
                    "outcome": "success",
                    "user": f"user-{n % 3}",
                    "source_ip": "10.0.0.1",
                }
            ),
            "EventBusName": BUS,
        }
        for n in numbers
    ]
    for start in range(0, len(entries), 10):
        assert events.put_events(Entries=entries[start : start + 10])["FailedEntryCount"] == 0


def _tree_size(cloud: RunningCloud, tenant_id: str) -> int:
    item = (
        cloud.client("dynamodb")
        .get_item(TableName="dcisionai-audit-heads", Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True)
        .get("Item")
    )
    return int(item["sequence"]["N"]) if item else 0


def _checkpoint_now(cloud: RunningCloud) -> None:
    """The writer's hourly schedule, now: a checkpoint of every trail that grew."""
    writer = "dcisionai-audit-writer"  # template.yaml names it (its log group and alarms do too)
    tick = {"source": "aws.events", "detail-type": "Scheduled Event", "id": "tick", "detail": {}}
    reply = cloud.client("lambda").invoke(FunctionName=writer, Payload=json.dumps(tick).encode())
    assert "FunctionError" not in reply, reply["Payload"].read()


def _get(cloud: RunningCloud, path: str, token: str, **params: Any) -> Any:
    return cloud.http("GET", path, headers={"Authorization": f"Bearer {token}"}, params=params)


def _signature_holds(cloud: RunningCloud, checkpoint: dict[str, Any]) -> bool:
    """With the public key GET /.well-known/audit-keys.json publishes."""
    jwks = cloud.http("GET", "/.well-known/audit-keys.json")
    assert jwks.status_code == 200
    assert jwks.headers["Cache-Control"].startswith("public")
    jwk = next(k for k in jwks.json()["keys"] if k["kid"] == checkpoint["key_id"])
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")
    return rfc9162.signature_holds(jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(jwk)), checkpoint)


_b = rfc9162.decoded


def test_an_auditor_checks_checkpoints_records_and_proofs_with_rfc_9162(platform_cloud: RunningCloud) -> None:
    tenant = "proofs-http"
    seed_tenant(platform_cloud, tenant)
    auditor = mint_token(platform_cloud, tenant, "aud", ["auditor"])
    assert _get(platform_cloud, f"/tenants/{tenant}/audit/checkpoint", auditor).status_code == 404
    _put(platform_cloud, tenant, range(13))
    wait_for(lambda: _tree_size(platform_cloud, tenant) >= 13, timeout=120, interval=0.5)
    _checkpoint_now(platform_cloud)

    first = _get(platform_cloud, f"/tenants/{tenant}/audit/checkpoint", auditor)
    assert first.status_code == 200, first.text
    older = first.json()
    size = older["tree_size"]
    assert size >= 13
    assert older["tenant_id"] == tenant
    assert _signature_holds(platform_cloud, older)
    stored = []
    for sequence in range(1, size + 1):
        reply = _get(platform_cloud, f"/tenants/{tenant}/audit/records/{sequence}", auditor)
        assert reply.status_code == 200
        assert reply.headers["Content-Type"].startswith("application/json")
        assert json.loads(reply.content)["sequence"] == sequence
        stored.append(reply.content)
    root = base64.b64decode(older["root_hash"])
    assert rfc9162.mth(stored) == root  # the leaves, recomputed from the bytes served
    for sequence in (1, size // 2, size):
        proof = _get(
            platform_cloud,
            f"/tenants/{tenant}/audit/proofs/inclusion",
            auditor,
            sequence=sequence,
            tree_size=size,
        ).json()
        leaf = hashlib.sha256(b"\x00" + stored[sequence - 1]).digest()
        assert rfc9162.verify_inclusion(sequence - 1, size, leaf, _b(proof["audit_path"]), root)

    _put(platform_cloud, tenant, range(13, 20))
    wait_for(lambda: _tree_size(platform_cloud, tenant) >= size + 7, timeout=120, interval=0.5)
    _checkpoint_now(platform_cloud)
    newer = _get(platform_cloud, f"/tenants/{tenant}/audit/checkpoint", auditor).json()
    assert newer["tree_size"] >= size + 7
    assert _signature_holds(platform_cloud, newer)
    consistency = _get(
        platform_cloud,
        f"/tenants/{tenant}/audit/proofs/consistency",
        auditor,
        first=size,
        second=newer["tree_size"],
    ).json()
    assert rfc9162.verify_consistency(
        size, newer["tree_size"], _b(consistency["proof"]), root, base64.b64decode(newer["root_hash"])
    )
    verify = _get(platform_cloud, f"/tenants/{tenant}/audit/verify", auditor).json()
    assert verify["status"] == "VALID", verify["problems"][:10]


def test_proofs_refuse_other_tenants_other_roles_and_bad_input(platform_cloud: RunningCloud) -> None:
    tenant, other = "proofs-own", "proofs-other"
    for t in (tenant, other):
        seed_tenant(platform_cloud, t)
    _put(platform_cloud, tenant, range(3))
    wait_for(lambda: _tree_size(platform_cloud, tenant) >= 3, timeout=120, interval=0.5)
    auditor = mint_token(platform_cloud, tenant, "aud", ["auditor"])
    outsider = mint_token(platform_cloud, other, "aud", ["auditor"])
    viewer = mint_token(platform_cloud, tenant, "vic", ["viewer"])
    paths = [
        (f"/tenants/{tenant}/audit/checkpoint", {}),
        (f"/tenants/{tenant}/audit/records/1", {}),
        (f"/tenants/{tenant}/audit/proofs/inclusion", {"sequence": 1, "tree_size": 3}),
        (f"/tenants/{tenant}/audit/proofs/consistency", {"first": 1, "second": 3}),
    ]
    for path, params in paths:
        assert _get(platform_cloud, path, outsider, **params).status_code == 403, path
        assert _get(platform_cloud, path, viewer, **params).status_code == 403, path
    base = f"/tenants/{tenant}/audit"
    for path, params, status in (
        (f"{base}/records/abc", {}, 400),
        (f"{base}/records/0", {}, 404),
        (f"{base}/records/1000000", {}, 404),
        (f"{base}/records/%31", {}, 200),  # percent-encoded "1": API Gateway decodes it
        (f"{base}/proofs/inclusion", {"sequence": 4, "tree_size": 3}, 400),
        (f"{base}/proofs/inclusion", {"sequence": 1, "tree_size": 1000000}, 400),
        (f"{base}/proofs/inclusion", {"sequence": "x", "tree_size": 3}, 400),
        (f"{base}/proofs/inclusion", {"sequence": 1}, 400),
        (f"{base}/proofs/consistency", {"first": 3, "second": 1}, 400),
        (f"{base}/proofs/consistency", {"first": 0, "second": 1}, 400),
        (f"{base}/proofs/consistency", {"first": 1, "second": 10**30}, 400),
    ):
        reply = _get(platform_cloud, path, auditor, **params)
        assert reply.status_code == status, (path, params, reply.text)
        if status != 200:
            assert reply.json()["error"], reply.text
    # every sequence of this tenant serves this tenant's record, never the other's of that number
    _put(platform_cloud, other, range(5))
    wait_for(lambda: _tree_size(platform_cloud, other) >= 5, timeout=120, interval=0.5)
    for sequence in range(1, 6):
        reply = _get(platform_cloud, f"{base}/records/{sequence}", auditor)
        if reply.status_code == 200:
            assert json.loads(reply.content)["tenant_id"] == tenant
        else:
            assert reply.status_code == 404  # not appended yet (the trail records this test's reads)
