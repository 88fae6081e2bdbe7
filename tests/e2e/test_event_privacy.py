"""What leaves the request path names nobody in clear (template.yaml on the local cloud): events
on the bus carry personal data sealed, and a security alert's e-mail says what happened and where
to look, never who or from where."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import mint_token, seed_tenant
from tests.support.tenants import alert_mailbox, event_observer

pytestmark = pytest.mark.e2e


def test_events_and_alert_mail_carry_no_personal_data_in_clear(platform_cloud: RunningCloud) -> None:
    seed_tenant(platform_cloud, "priv-a")
    seed_tenant(platform_cloud, "priv-b")
    observed = event_observer(
        platform_cloud, "privacy-observer", {"detail-type": ["User Activity", "Security Alert"]}
    )
    mailbox = alert_mailbox(platform_cloud, "alert-mailbox")
    intruder = mint_token(platform_cloud, "priv-a", "mallory.smith", ["tenant-admin"])
    # one request into another tenant (a Security Alert, mailed; first: a cached authorizer answer
    # would refuse it without an alert) and one of her own (User Activity)
    cross = platform_cloud.http(
        "GET", "/tenants/priv-b/users", headers={"Authorization": f"Bearer {intruder}"}
    )
    assert cross.status_code == 403
    reply = platform_cloud.http(
        "GET", "/tenants/priv-a/users", headers={"Authorization": f"Bearer {intruder}"}
    )
    assert reply.status_code == 200

    def hers() -> list[dict[str, Any]] | None:
        found = [e for e in observed() if e["detail"].get("tenant_id") == "priv-a"]
        kinds = {e["detail-type"] for e in found}
        return found if {"User Activity", "Security Alert"} <= kinds else None

    events = wait_for(hers, timeout=30)
    wire = json.dumps(events)
    assert "mallory.smith" not in wire
    assert "127.0.0.1" not in wire
    assert all("sealed_pii" in e["detail"] for e in events)
    mail = wait_for(lambda: [m for m in mailbox() if "cross_tenant_access" in m], timeout=30)
    assert "mallory" not in mail[0]
    assert "127.0.0.1" not in mail[0]
    assert "GET /tenants/priv-a/audit?action=security:cross_tenant_access" in mail[0]
    # the trail itself has her, as the tenant's pii_handling allows the auditor to see
    auditor = mint_token(platform_cloud, "priv-a", "aud", ["auditor"])

    def recorded() -> dict[str, Any] | None:
        items = platform_cloud.http(
            "GET",
            "/tenants/priv-a/audit",
            headers={"Authorization": f"Bearer {auditor}"},
            params={"limit": 200},
        ).json()["items"]
        return next((r for r in items if r["action"] == "security:cross_tenant_access"), None)

    record = wait_for(recorded, timeout=60)
    assert (record["actor"]["user"], record["source_ip"]) == ("mallory.smith", "127.0.0.1")
