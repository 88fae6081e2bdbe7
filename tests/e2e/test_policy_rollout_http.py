"""The policy rollout over HTTP through the local cloud (template.yaml: the admin API starts the
workflow, its Lambda step converges the tenant's keys and audit bucket under its own IAM role and
the tenant key policies): a PATCH of key_rotation_days and data_locality reaches KMS, GET shows
the rollout, and a failing step is a failed rollout with an alert."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import mint_token
from tests.support.tenants import (
    event_observer,
    finished_execution,
    now,
    put_onboarding_event,
    request_body,
    set_fault,
)

pytestmark = pytest.mark.e2e
TENANT = "pol-roll"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def security_admin(platform_cloud: RunningCloud) -> dict[str, str]:
    started = now()
    put_onboarding_event(
        platform_cloud,
        request_body(
            TENANT,
            "schema",
            security_policies={
                "access_control": {"ip_whitelist": []},
                "data_protection": {
                    "data_locality": ["us-east-1", "us-west-2"],
                    "cross_region_encryption": True,
                },
            },
        ),
    )
    done = finished_execution(platform_cloud, "onboarding", TENANT, after=started, timeout=120)
    assert done["status"] == "SUCCEEDED", done
    return {"Authorization": f"Bearer {mint_token(platform_cloud, TENANT, 'sec', ['security-admin'])}"}


def rollout_settles(cloud: RunningCloud, headers: dict[str, str], revision: int) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        reply = cloud.http("GET", f"/tenants/{TENANT}/policies", headers=headers)
        assert reply.status_code == 200, reply.text
        rollout = reply.json()["rollout"]
        return rollout if rollout["revision"] == revision and rollout["status"] != "pending" else None

    return dict(wait_for(settled, timeout=120, interval=0.5))


def replicas(cloud: RunningCloud, purpose: str) -> dict[str, str]:
    kms = cloud.client("kms")
    meta = kms.describe_key(KeyId=f"alias/dcisionai-tenant-{TENANT}-{purpose}")["KeyMetadata"]
    return {
        r["Region"]: cloud.client("kms", r["Region"]).describe_key(KeyId=meta["KeyId"])["KeyMetadata"][
            "KeyState"
        ]
        for r in meta["MultiRegionConfiguration"]["ReplicaKeys"]
    }


def test_a_patch_of_rotation_and_locality_is_rolled_out_to_kms(
    platform_cloud: RunningCloud, security_admin: dict[str, str]
) -> None:
    patch = {
        "data_protection": {
            "key_rotation_days": 365,
            "data_locality": ["us-east-1", "us-west-2", "eu-west-1"],
        }
    }
    reply = platform_cloud.http(
        "PATCH", f"/tenants/{TENANT}/policies", json=patch, headers={**security_admin, **MERGE_PATCH}
    )
    assert reply.status_code == 200, reply.text
    stored = reply.json()
    assert stored["data_protection"]["key_rotation_days"] == 365
    assert stored["rollout"]["status"] in ("pending", "applied")
    rollout = rollout_settles(platform_cloud, security_admin, stored["revision"])
    assert rollout["status"] == "applied", rollout
    assert rollout["detail"].startswith("key rotation every 365 days; replicas: us-west-2, eu-west-1")
    for purpose in ("data", "secrets", "api-keys"):
        assert replicas(platform_cloud, purpose) == {"us-west-2": "Enabled", "eu-west-1": "Enabled"}
    # the period itself: moto keeps none, the local cloud's call log names the rollout's calls
    calls = platform_cloud.http("GET", "/__localcloud/stats").json()["aws_calls"]
    assert any(k.endswith("PolicyRolloutFunction|kms:EnableKeyRotation") for k in calls), calls

    # narrowed: the dropped region's replicas scheduled for deletion
    reply = platform_cloud.http(
        "PATCH",
        f"/tenants/{TENANT}/policies",
        json={"data_protection": {"data_locality": ["us-east-1", "us-west-2"]}},
        headers={**security_admin, **MERGE_PATCH},
    )
    assert reply.status_code == 200, reply.text
    assert rollout_settles(platform_cloud, security_admin, reply.json()["revision"])["status"] == "applied"
    assert replicas(platform_cloud, "data") == {"us-west-2": "Enabled", "eu-west-1": "PendingDeletion"}


def test_a_failing_rollout_step_is_a_failed_rollout_and_an_alert(
    platform_cloud: RunningCloud, security_admin: dict[str, str]
) -> None:
    alerts = event_observer(platform_cloud, "policy-rollout-alerts", {"detail-type": ["Security Alert"]})
    set_fault(platform_cloud, "policy_rollout", TENANT, "apply")
    try:
        reply = platform_cloud.http(
            "PATCH",
            f"/tenants/{TENANT}/policies",
            json={"audit_logging": {"retention_days": 3000}},
            headers={**security_admin, **MERGE_PATCH},
        )
        assert reply.status_code == 200, reply.text
        revision = reply.json()["revision"]
        rollout = rollout_settles(platform_cloud, security_admin, revision)
    finally:
        set_fault(platform_cloud, "policy_rollout", TENANT, None)
    assert rollout == {
        "status": "failed",
        "revision": revision,
        "detail": "the rollout failed after retries: InjectedFault",
    }
    (alert,) = wait_for(
        lambda: alerts("Security Alert", tenant_id=TENANT, alert="policy_rollout_failed") or None, timeout=30
    )
    assert alert["detail"]["revision"] == revision
