"""Cheap reads and the SIEM export through the local cloud: GET /audit from the audit index (a page
of 20 costs at most 3 AWS calls of the compliance function's own, counted by the local cloud), and
GET /audit/export?format=ocsf: NDJSON that validates against OCSF's schema, paged by sequence with
no gap or duplicate, refused to viewers, other tenants and bad ranges, and itself audited."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.e2e.test_audit_trail_http import _activity, _get, _put
from tests.support.cloud import RunningCloud, aws_calls_of, wait_for
from tests.support.identity import mint_token, seed_tenant
from tests.unit.test_ocsf_export import schema_errors

TENANT, OTHER = "reads-acme", "reads-beta"
EVENTS = 45
FUNCTION = "ComplianceApiFunction"
# What the reader itself may call; the rest is the request path every route shares (session,
# quota counter, lease, the activity event and its sealed PII)
READER_CALLS = (
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:Scan",
    "kms:Decrypt",
    "s3:GetObject",
    "s3:ListObjectsV2",
)


@pytest.fixture(scope="module")
def trail(platform_cloud: RunningCloud) -> dict[str, str]:
    for tenant in (TENANT, OTHER):
        seed_tenant(platform_cloud, tenant)
    _put(platform_cloud, [_activity(TENANT, n) for n in range(EVENTS)])
    tokens = {
        "auditor": mint_token(platform_cloud, TENANT, "aud", ["auditor"], ttl=900),
        "viewer": mint_token(platform_cloud, TENANT, "vic", ["viewer"], ttl=900),
        "other": mint_token(platform_cloud, OTHER, "aud", ["auditor"], ttl=900),
    }

    def written() -> bool:
        page = _get(platform_cloud, f"/tenants/{TENANT}/audit", tokens["auditor"], limit=200).json()
        return len(page["items"]) >= EVENTS

    wait_for(written, timeout=120, interval=1)
    return tokens


def _reader_calls(spent: Counter[str]) -> int:
    return sum(n for op, n in spent.items() if op in READER_CALLS)


def test_a_warm_page_of_twenty_costs_at_most_three_aws_calls(
    platform_cloud: RunningCloud, trail: dict[str, str]
) -> None:
    path = f"/tenants/{TENANT}/audit"
    for _ in range(2):  # warm: the function, its data keys and the page's subject keys
        assert _get(platform_cloud, path, trail["auditor"], limit=20).status_code == 200
    costs = []
    for _ in range(3):
        before = aws_calls_of(platform_cloud, FUNCTION)
        reply = _get(platform_cloud, path, trail["auditor"], limit=20)
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["items"]) == 20
        costs.append(aws_calls_of(platform_cloud, FUNCTION) - before)
    reader = [_reader_calls(c) for c in costs]
    print(f"\nGET /audit?limit=20 warm, the reader's AWS calls: {reader}; all of the function's: {costs}")
    assert max(reader) <= 3, costs
    assert all(c["dynamodb:Query"] == 1 for c in costs), costs  # the index, never a listing of S3
    assert all(c["s3:GetObject"] == 0 and c["s3:ListObjectsV2"] == 0 for c in costs), costs
    # a filter by action: an index, the bodies, the subject keys
    before = aws_calls_of(platform_cloud, FUNCTION)
    filtered = _get(platform_cloud, path, trail["auditor"], limit=20, action="files:Read")
    assert filtered.status_code == 200, filtered.text
    assert {r["action"] for r in filtered.json()["items"]} == {"files:Read"}
    assert _reader_calls(aws_calls_of(platform_cloud, FUNCTION) - before) <= 3


def _export(cloud: RunningCloud, token: str, tenant: str = TENANT, **params: Any) -> Any:
    return _get(cloud, f"/tenants/{tenant}/audit/export", token, **params)


def test_the_ocsf_export_pages_by_sequence_validates_and_is_audited(
    platform_cloud: RunningCloud, trail: dict[str, str]
) -> None:
    auditor = trail["auditor"]
    sequences: list[int] = []
    start: int | None = 1
    pages = 0
    while start is not None:
        reply = _export(platform_cloud, auditor, format="ocsf", **{"from": start, "to": EVENTS}, limit=7)
        assert reply.status_code == 200, reply.text
        assert reply.headers["Content-Type"].startswith("application/x-ndjson")
        lines = reply.content.split(b"\n")
        assert lines[-1] == b""  # every event ends its line
        events = [json.loads(line) for line in lines[:-1]]
        assert 1 <= len(events) <= 7
        for event in events:
            assert schema_errors(event) == [], event
            assert event["metadata"]["tenant_uid"] == TENANT
        sequences += [e["metadata"]["sequence"] for e in events]
        following = reply.headers.get("X-Next-From")
        start = int(following) if following else None
        pages += 1
    assert sequences == list(range(1, EVENTS + 1))  # no gap, no duplicate
    assert pages == -(-EVENTS // 7)
    # the events carry no one's name: the trail's pseudonyms only (the tenant encrypts its PII)
    body = _export(platform_cloud, auditor, format="ocsf", limit=5).text
    assert "user-1" not in body
    assert "10.0.0.1" not in body

    def recorded() -> list[dict[str, Any]] | None:
        items = _get(
            platform_cloud, f"/tenants/{TENANT}/audit", auditor, action="audit:Export", limit=200
        ).json()["items"]
        return items if len(items) >= pages + 1 else None

    exports = wait_for(recorded, timeout=60, interval=1)
    first = exports[0]
    assert (first["outcome"], first["actor"]["user"]) == ("success", "aud")
    assert first["details"]["exported_format"] == "ocsf"
    assert (first["details"]["exported_from"], first["details"]["exported_to"]) == (1, 7)
    assert first["details"]["exported_records"] == 7


def test_the_export_is_refused_to_viewers_other_tenants_and_bad_ranges(
    platform_cloud: RunningCloud, trail: dict[str, str]
) -> None:
    assert _export(platform_cloud, trail["viewer"], format="ocsf").status_code == 403
    assert _export(platform_cloud, trail["other"], format="ocsf").status_code == 403  # TENANT's, from OTHER
    own = _export(platform_cloud, trail["other"], tenant=OTHER, format="ocsf")
    assert own.status_code == 200, own.text  # OTHER's own trail: none of TENANT's records in it
    assert all(json.loads(line)["metadata"]["tenant_uid"] == OTHER for line in own.content.splitlines())
    for params in (
        {},  # the format is required
        {"format": "cef"},
        {"format": "OCSF"},
        {"format": "ocsf", "from": "0"},
        {"format": "ocsf", "from": "abc"},
        {"format": "ocsf", "from": "5", "to": "2"},
        {"format": "ocsf", "to": "-1"},
        {"format": "ocsf", "limit": "0"},
        {"format": "ocsf", "limit": "1001"},
    ):
        reply = _export(platform_cloud, trail["auditor"], **params)
        assert reply.status_code == 400, (params, reply.text)
        assert reply.json()["error"] in ("validation_error", "bad_request"), reply.text
    # a range beyond the trail is an empty page, and the end
    beyond = _export(platform_cloud, trail["auditor"], format="ocsf", **{"from": 10**9})
    assert (beyond.status_code, beyond.content, beyond.headers.get("X-Next-From")) == (200, b"", None)


def test_page_tokens_do_not_cross_tenants(platform_cloud: RunningCloud, trail: dict[str, str]) -> None:
    page = _get(platform_cloud, f"/tenants/{TENANT}/audit", trail["auditor"], limit=5).json()
    assert page["next"]
    # TENANT's token on OTHER's trail (by OTHER's own auditor): a 400, neither tenant's records
    reply = _get(platform_cloud, f"/tenants/{OTHER}/audit", trail["other"], next=page["next"])
    assert reply.status_code == 400, reply.text
    # and with another filter than the one it was issued for
    reply = _get(
        platform_cloud, f"/tenants/{TENANT}/audit", trail["auditor"], next=page["next"], action="files:Read"
    )
    assert reply.status_code == 400, reply.text
    following = _get(
        platform_cloud, f"/tenants/{TENANT}/audit", trail["auditor"], limit=5, next=page["next"]
    ).json()
    assert [r["sequence"] for r in following["items"]] == [6, 7, 8, 9, 10]
