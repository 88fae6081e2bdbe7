"""Onboarding and offboarding on the local cloud with the real PostgreSQL (template.yaml)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tenant_security.onboarding.key_policy import tenant_key_policy
from tenant_security.onboarding.keys import SHREDDED_KEY_STATES
from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import Identity, mint_token, onboarding_settings, post, seen
from tests.support.tenants import (
    connect_as_tenant,
    event_observer,
    executions,
    finished_execution,
    now,
    put_onboarding_event,
    request_body,
    set_fault,
    tenant_resources,
)

pytestmark = pytest.mark.e2e
NOTHING = {
    "aliases": [],
    "buckets": [],
    "secrets": [],
    "users": [],
    "database": {"role": False, "database": False, "schema": False},
}


@pytest.fixture(scope="module")
def lifecycle_events(platform_cloud: RunningCloud) -> Any:
    """Wait for a lifecycle event of the platform (collected in an SQS queue)."""
    observe = event_observer(
        platform_cloud,
        "lifecycle-observer",
        {"detail-type": ["Tenant Onboarded", "Tenant Onboarding Failed", "Tenant Offboarded"]},
    )

    def received(detail_type: str, tenant_id: str | None = None, **match: Any) -> dict[str, Any]:
        if tenant_id is not None:
            match["tenant_id"] = tenant_id
        return dict(wait_for(lambda: next(iter(observe(detail_type, **match)), None), timeout=30))

    return received


def onboard(
    cloud: RunningCloud, body: dict[str, Any], via: str, admin: Identity | None = None
) -> dict[str, Any]:
    started = now()
    if via == "api":
        assert admin is not None
        reply = cloud.http("POST", "/tenants", json=body, headers=admin.headers)
        assert reply.status_code == 202, reply.text
        # a new request is PROVISIONING; the same request again reports where the first one is
        assert reply.json()["tenant_id"] == body["tenant_id"]
        assert reply.json()["status"] in ("PROVISIONING", "ACTIVE")
    else:
        put_onboarding_event(cloud, body)
    return finished_execution(cloud, "onboarding", body["tenant_id"], after=started)


def test_onboarding_by_api_and_by_event_creates_every_resource(
    platform_cloud: RunningCloud, platform_admin: Identity, lifecycle_events: Any
) -> None:
    api = request_body(
        "onb-api",
        "database",
        security_policies={
            "data_protection": {"key_rotation_days": 180, "cross_region_encryption": True},
            "audit_logging": {"retention_days": 400},
        },
    )
    event = request_body(
        "onb-event", "schema", security_policies={"data_protection": {"cross_region_encryption": False}}
    )
    assert onboard(platform_cloud, api, "api", platform_admin)["status"] == "SUCCEEDED"
    assert onboard(platform_cloud, event, "event")["status"] == "SUCCEEDED"
    kms, s3, secrets = (
        platform_cloud.client("kms"),
        platform_cloud.client("s3"),
        platform_cloud.client("secretsmanager"),
    )
    for body, multi_region, retention in ((api, True, 400), (event, False, 2555)):
        tenant = body["tenant_id"]
        status = platform_cloud.http("GET", f"/tenants/{tenant}", headers=platform_admin.headers).json()
        assert (status["status"], status["isolation"]) == ("ACTIVE", body["isolation"])
        owned = tenant_resources(platform_cloud, tenant)
        assert sorted(owned["aliases"]) == sorted(
            f"alias/dcisionai-tenant-{tenant}-{p}" for p in ("data", "secrets", "api-keys")
        )
        assert len(owned["keys"]) == 3
        assert set(owned["keys"].values()) == {"Enabled"}
        for alias in owned["aliases"]:
            meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
            assert meta["MultiRegion"] is multi_region
            replicas = meta.get("MultiRegionConfiguration", {}).get("ReplicaKeys", [])
            # cross_region_encryption: a replica in the other data_locality region (us-west-2)
            assert [r["Region"] for r in replicas] == (["us-west-2"] if multi_region else [])
            assert kms.get_key_rotation_status(KeyId=meta["KeyId"])["KeyRotationEnabled"] is True
            policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
            by_sid = {s["Sid"]: s for s in policy["Statement"]}
            # the onboarding role by name (lockout check, no tag lag); Secrets Manager on the
            # secrets key only
            secrets_only = {"KeyAdministratorsStoreTenantSecrets", "BreakGlassReadsTenantSecrets"}
            # the api-keys key: the auth API alone uses it (API client verifiers); others read its state
            api_keys = alias.endswith("-api-keys")
            use, patterns = (
                ("ApiClientVerifierKeys", "PlatformRolePatternsReadTheKeyState")
                if api_keys
                else ("PlatformRolesUseTheKey", "PlatformRolePatternsUseTheKey")
            )
            assert set(by_sid) == {
                "AccountAdministration",
                "KeyAdministrators",
                use,
                "PlatformRolesReadTheKeyState",
                patterns,
            } | (secrets_only if alias.endswith("-secrets") else set())
            # KMS takes no wildcard in a principal: the tenant-data-* roles match by condition
            patterned = by_sid[patterns]
            assert patterned["Condition"]["ArnLike"]["aws:PrincipalArn"] == [
                "arn:aws:iam::123456789012:role/dcisionai-tenant-data-*"
            ]
            assert not any("*" in p for p in by_sid[use]["Principal"]["AWS"])
            if api_keys:
                assert [p.split("/")[-1].split("-")[2] for p in by_sid[use]["Principal"]["AWS"]] == [
                    "AuthApiFunctionRole"
                ]
        data_key = kms.describe_key(KeyId=f"alias/dcisionai-tenant-{tenant}-data")["KeyMetadata"]["Arn"]
        if multi_region:  # what the home region encrypts, the replica region decrypts
            sealed = kms.encrypt(KeyId=data_key, Plaintext=b"x", EncryptionContext={"tenant_id": tenant})
            west = platform_cloud.client("kms", region_name="us-west-2")
            opened = west.decrypt(
                CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"tenant_id": tenant}
            )
            assert opened["Plaintext"] == b"x"
            assert opened["KeyId"] == data_key.replace("us-east-1", "us-west-2")
        data, audit = (
            f"dcisionai-10ca1000-tenant-{tenant}-data",
            f"dcisionai-10ca1000-audit-logs-{tenant}",
        )
        assert sorted(owned["buckets"]) == sorted([data, audit])
        (rule,) = s3.get_bucket_encryption(Bucket=data)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": data_key,
        }
        assert rule["BucketKeyEnabled"] is True
        assert all(s3.get_public_access_block(Bucket=data)["PublicAccessBlockConfiguration"].values())
        assert s3.get_bucket_versioning(Bucket=data)["Status"] == "Enabled"
        lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=data)["Rules"]}
        assert lifecycle["expire-uncompleted-uploads"]["Filter"] == {"Prefix": ".uploads/"}
        assert lifecycle["expire-old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
        statements = {s["Sid"] for s in json.loads(s3.get_bucket_policy(Bucket=data)["Policy"])["Statement"]}
        assert statements == {"DenyInsecureTransport", "DenyUploadsWithoutTheTenantKey"}
        lock = s3.get_object_lock_configuration(Bucket=audit)["ObjectLockConfiguration"]
        retention_rule = lock["Rule"]["DefaultRetention"]
        assert (retention_rule["Mode"], retention_rule["Days"]) == ("COMPLIANCE", retention)
        (audit_rule,) = s3.get_bucket_encryption(Bucket=audit)["ServerSideEncryptionConfiguration"]["Rules"]
        assert (
            "key/" in audit_rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"]
        )  # the platform audit key
        assert audit_rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] != data_key
        assert sorted(owned["secrets"]) == [
            f"dcisionai/tenants/{tenant}/admin-initial-password",
            f"dcisionai/tenants/{tenant}/database",
        ]
        described = secrets.describe_secret(SecretId=f"dcisionai/tenants/{tenant}/database")
        assert described["KmsKeyId"].endswith(f"alias/dcisionai-tenant-{tenant}-secrets")
        expected_db = {
            "role": True,
            "database": body["isolation"] == "database",
            "schema": body["isolation"] == "schema",
        }
        assert owned["database"] == expected_db
        with connect_as_tenant(platform_cloud, tenant) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM records").fetchone() == (0,)
        assert owned["users"] == ["owner"]
        lifecycle_events("Tenant Onboarded", tenant, status="ACTIVE")


def test_the_tenant_admin_signs_in_with_the_handed_over_password(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    # the seed's default allow-list (private ranges) would refuse 127.0.0.1, as it should
    body = request_body("onb-owner", "schema", security_policies={"access_control": {"ip_whitelist": []}})
    assert onboard(platform_cloud, body, "api", platform_admin)["status"] == "SUCCEEDED"
    secrets = platform_cloud.client("secretsmanager")
    handed_over = json.loads(
        secrets.get_secret_value(SecretId="dcisionai/tenants/onb-owner/admin-initial-password")[
            "SecretString"
        ]
    )
    seen(handed_over["password"])
    login = post(
        platform_cloud,
        "/auth/login",
        {"tenant_id": "onb-owner", "username": "owner", "password": handed_over["password"]},
    )
    assert login.json()["status"] == "MFA_ENROLLMENT_REQUIRED"
    seen(login.json()["enrollment_token"])
    names = [s["Name"] for s in secrets.list_secrets()["SecretList"]]
    assert "dcisionai/tenants/onb-owner/admin-initial-password" not in names  # removed at the first sign-in


def test_the_same_request_again_changes_nothing_and_another_is_refused(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    body = request_body("onb-repeat")
    assert onboard(platform_cloud, body, "api", platform_admin)["status"] == "SUCCEEDED"
    before = tenant_resources(platform_cloud, "onb-repeat")
    started = now()
    again = platform_cloud.http("POST", "/tenants", json=body, headers=platform_admin.headers)
    assert again.status_code == 202
    assert again.json() == {"tenant_id": "onb-repeat", "status": "ACTIVE"}  # a no-op: nothing started
    assert executions(platform_cloud, "onboarding", "onb-repeat", after=started) == []
    assert tenant_resources(platform_cloud, "onb-repeat") == before
    other = platform_cloud.http(
        "POST", "/tenants", json={**body, "name": "Someone Else"}, headers=platform_admin.headers
    )
    assert other.status_code == 409
    # the same id by event with another request: rejected by the state machine, nothing touched
    started = now()
    put_onboarding_event(platform_cloud, {**body, "isolation": "schema"})
    rejected = finished_execution(platform_cloud, "onboarding", "onb-repeat", after=started)
    assert (rejected["status"], rejected["error"]) == ("FAILED", "OnboardingRejected")
    assert tenant_resources(platform_cloud, "onb-repeat") == before


@pytest.mark.parametrize(
    "tenant_id",
    ["acme'; DROP DATABASE postgres; --", "../../etc/passwd", "Acme", "acme\r\nX: 1", "platform", "a" * 40],
)
def test_an_injection_tenant_id_is_400_before_anything_is_touched(
    platform_cloud: RunningCloud, platform_admin: Identity, tenant_id: str
) -> None:
    executions_before = len(
        platform_cloud.client("stepfunctions").list_executions(
            stateMachineArn=platform_cloud.outputs["OnboardingStateMachineArn"]
        )["executions"]
    )
    reply = platform_cloud.http(
        "POST", "/tenants", json=request_body(tenant_id), headers=platform_admin.headers
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == "validation_error"
    assert any(f["field"].endswith("tenant_id") for f in reply.json()["fields"])
    executions_after = len(
        platform_cloud.client("stepfunctions").list_executions(
            stateMachineArn=platform_cloud.outputs["OnboardingStateMachineArn"]
        )["executions"]
    )
    assert executions_after == executions_before


def test_an_invalid_event_ends_the_execution_with_field_errors(
    platform_cloud: RunningCloud, lifecycle_events: Any
) -> None:
    started = now()
    bad = request_body(
        "onb-invalid", "sharded", security_policies={"access_control": {"max_concurrent_sessions": -1}}
    )
    put_onboarding_event(platform_cloud, bad)
    failed = finished_execution(platform_cloud, "onboarding", "onb-invalid", after=started)
    assert (failed["status"], failed["error"]) == ("FAILED", "OnboardingRejected")
    event = lifecycle_events("Tenant Onboarding Failed", None, status="REJECTED", error="ValidationFailed")
    assert "isolation" in event["detail"]["reason"]
    assert "max_concurrent_sessions" in event["detail"]["reason"]
    assert tenant_resources(platform_cloud, "onb-invalid") == {**NOTHING, "keys": {}}


STEPS = ["keys", "buckets", "database", "admin", "activate"]


@pytest.mark.parametrize("step", STEPS)
def test_a_failure_at_any_step_is_rolled_back_and_a_retry_succeeds(
    platform_cloud: RunningCloud, platform_admin: Identity, lifecycle_events: Any, step: str
) -> None:
    tenant = f"fail-{step}"
    set_fault(platform_cloud, "onboarding", tenant, step)
    failed = onboard(
        platform_cloud, request_body(tenant, "schema" if step == "database" else "database"), "event"
    )
    assert (failed["status"], failed["error"]) == ("FAILED", "OnboardingFailed")
    record = platform_cloud.http("GET", f"/tenants/{tenant}", headers=platform_admin.headers).json()
    assert record["status"] == "FAILED"
    assert "injected failure" in record["failure_reason"]
    assert step in record["failure_reason"]
    left = tenant_resources(platform_cloud, tenant)
    assert set(left["keys"].values()) <= set(SHREDDED_KEY_STATES)  # nothing of it enabled
    assert {k: v for k, v in left.items() if k != "keys"} == NOTHING
    lifecycle_events("Tenant Onboarding Failed", tenant, status="FAILED")
    set_fault(platform_cloud, "onboarding", tenant, None)
    retried = onboard(platform_cloud, request_body(tenant), "event")
    assert retried["status"] == "SUCCEEDED"
    assert (
        platform_cloud.http("GET", f"/tenants/{tenant}", headers=platform_admin.headers).json()["status"]
        == "ACTIVE"
    )
    kms = platform_cloud.client("kms")
    for alias in tenant_resources(platform_cloud, tenant)["aliases"]:  # new keys; the old ones stay shredded
        assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyState"] == "Enabled"


def test_tenants_cannot_reach_each_others_data(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    for tenant, isolation in (
        ("iso-db-a", "database"),
        ("iso-db-b", "database"),
        ("iso-sc-a", "schema"),
        ("iso-sc-b", "schema"),
    ):
        assert onboard(platform_cloud, request_body(tenant, isolation), "event")["status"] == "SUCCEEDED"
    with pytest.raises(psycopg.OperationalError, match=r"permission denied for database"):
        connect_as_tenant(platform_cloud, "iso-db-a", dbname="tenant_iso-db-b").close()
    with connect_as_tenant(platform_cloud, "iso-sc-a") as conn:
        conn.execute("INSERT INTO records (id, data, created_by) VALUES (gen_random_uuid(), '{}', 'a')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"permission denied for schema"):
            conn.execute('SELECT * FROM "tenant_iso-sc-b".records')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.sneaky (x int)")
    with pytest.raises(psycopg.OperationalError, match=r"permission denied for database"):
        connect_as_tenant(platform_cloud, "iso-sc-a", dbname="tenant_iso-db-a").close()


def test_offboarding_shreds_keys_and_data_and_keeps_the_audit_trail(
    platform_cloud: RunningCloud, platform_admin: Identity, lifecycle_events: Any
) -> None:
    tenant = "offb-acme"
    open_policy = {"access_control": {"ip_whitelist": []}}
    assert (
        onboard(platform_cloud, request_body(tenant, security_policies=open_policy), "event")["status"]
        == "SUCCEEDED"
    )
    s3, kms = platform_cloud.client("s3"), platform_cloud.client("kms")
    bucket = f"dcisionai-10ca1000-tenant-{tenant}-data"
    data_key = kms.describe_key(KeyId=f"alias/dcisionai-tenant-{tenant}-data")["KeyMetadata"]["Arn"]
    with pytest.raises(s3.exceptions.ClientError, match=r"Forbidden|AccessDenied"):
        s3.put_object(Bucket=bucket, Key="plain.csv", Body=b"x")  # the bucket policy wants the tenant key
    s3.put_object(
        Bucket=bucket,
        Key="report.csv",
        Body=b"a,b\n1,2\n",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=data_key,
    )
    member = mint_token(platform_cloud, tenant, "owner", ["tenant-admin"])
    # an application secret of the tenant (PUT /tenants/{t}/secrets/{name}) goes with it
    put = platform_cloud.http(
        "PUT",
        f"/tenants/{tenant}/secrets/api-key",
        json={"value": "s3cr3t"},
        headers={"Authorization": f"Bearer {member}"},
    )
    assert put.status_code == 200, put.text
    seen("s3cr3t")
    started = now()
    reply = platform_cloud.http("DELETE", f"/tenants/{tenant}", headers=platform_admin.headers)
    assert reply.status_code == 202
    assert reply.json() == {"tenant_id": tenant, "status": "OFFBOARDING"}
    done = finished_execution(platform_cloud, "offboarding", tenant, after=started)
    assert done["status"] == "SUCCEEDED", done
    left = tenant_resources(platform_cloud, tenant)
    assert len(left["keys"]) == 3
    # a multi-Region primary waits for its replicas (PendingReplicaDeletion), as in KMS
    assert set(left["keys"].values()) <= set(SHREDDED_KEY_STATES)
    west = platform_cloud.client("kms", region_name="us-west-2")
    replica = west.describe_key(KeyId=data_key.replace("us-east-1", "us-west-2"))["KeyMetadata"]
    assert replica["KeyState"] == "PendingDeletion"  # the replica of the multi-Region key is shredded too
    assert left["buckets"] == [f"dcisionai-10ca1000-audit-logs-{tenant}"]
    assert left["database"] == {"role": False, "database": False, "schema": False}
    assert left["secrets"] == []
    assert left["users"] == []
    status = platform_cloud.http("GET", f"/tenants/{tenant}", headers=platform_admin.headers).json()["status"]
    assert status == "OFFBOARDED"
    assert platform_cloud.http(
        "GET", f"/tenants/{tenant}/users", headers={"Authorization": f"Bearer {member}"}
    ).status_code in (401, 403)
    lifecycle_events("Tenant Offboarded", tenant, status="OFFBOARDED")
    again = platform_cloud.http("POST", "/tenants", json=request_body(tenant), headers=platform_admin.headers)
    assert again.status_code == 409  # an offboarded id is not reused ...
    started = now()
    put_onboarding_event(platform_cloud, request_body(tenant))  # ... by event either
    rejected = finished_execution(platform_cloud, "onboarding", tenant, after=started)
    assert (rejected["status"], rejected["error"]) == ("FAILED", "OnboardingRejected")
    assert tenant_resources(platform_cloud, tenant)["aliases"] == []
    assert (
        platform_cloud.http("DELETE", "/tenants/platform", headers=platform_admin.headers).status_code == 409
    )


def test_tenant_roles_need_their_password(platform_cloud: RunningCloud) -> None:
    assert onboard(platform_cloud, request_body("pw-check", "database"), "event")["status"] == "SUCCEEDED"
    secret = platform_cloud.client("secretsmanager").get_secret_value(
        SecretId="dcisionai/tenants/pw-check/database"
    )
    creds = json.loads(secret["SecretString"])
    with pytest.raises(psycopg.OperationalError, match=r"password authentication failed"):
        psycopg.connect(
            host=creds["host"],
            port=creds["port"],
            user=creds["username"],
            password="wrong-password",
            dbname=creds["dbname"],
            connect_timeout=10,
        ).close()
    with connect_as_tenant(platform_cloud, "pw-check") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("tenant_pw-check",)


def test_a_tenant_whose_keys_wait_for_their_replicas_deletion_is_onboarded_again(
    platform_cloud: RunningCloud,
) -> None:
    # Regression (issue 16, item 5): a multi-Region primary scheduled for deletion waits in
    # PendingReplicaDeletion until its replicas are deleted; onboarding took only PendingDeletion
    # for shredded, tried to enable the rotation of the old key and failed (KMSInvalidStateException).
    tenant = "onb-awaiting-replicas"
    kms, west = platform_cloud.client("kms"), platform_cloud.client("kms", region_name="us-west-2")
    settings = onboarding_settings(platform_cloud)
    old = {}
    for purpose in ("data", "secrets", "api-keys"):
        # what a shredding cut short before the aliases were deleted leaves behind
        key_id = kms.create_key(
            MultiRegion=True,
            Policy=json.dumps(tenant_key_policy(settings, purpose)),
            Tags=[{"TagKey": "TenantId", "TagValue": tenant}],
        )["KeyMetadata"]["KeyId"]
        kms.replicate_key(
            KeyId=key_id,
            ReplicaRegion="us-west-2",
            Policy=json.dumps(tenant_key_policy(settings, purpose, "us-west-2")),
        )
        kms.create_alias(AliasName=f"alias/dcisionai-tenant-{tenant}-{purpose}", TargetKeyId=key_id)
        west.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingReplicaDeletion"
        old[purpose] = key_id
    done = onboard(platform_cloud, request_body(tenant), "event")
    assert done["status"] == "SUCCEEDED", done
    for purpose, key_id in old.items():
        current = kms.describe_key(KeyId=f"alias/dcisionai-tenant-{tenant}-{purpose}")["KeyMetadata"]
        assert current["KeyId"] != key_id
        assert current["KeyState"] == "Enabled"
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingReplicaDeletion"


def test_tenant_keys_and_secrets_pass_kms_checks_under_the_onboarding_role(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    # Regression (issue 16, items 1, 2 and 8), with the local cloud enforcing IAM and key
    # policies: KMS refused the tenant key policy (the onboarding role could not change it later),
    # Secrets Manager could not use the tenant secrets key for the onboarding role (the key policy
    # did not name it), and CreateAlias and EnableKeyRotation right after CreateKey were allowed
    # only through the new key's tags, which take minutes to apply.
    tenant = "onb-kms-rules"
    done = onboard(platform_cloud, request_body(tenant), "api", platform_admin)
    assert done["status"] == "SUCCEEDED", done
    kms, secrets = platform_cloud.client("kms"), platform_cloud.client("secretsmanager")
    # the key administrators: onboarding's role, and the policy rollout's (rotation, replicas)
    onboarding_role = onboarding_settings(platform_cloud).tenant_key_admin_arns
    assert sorted(arn.split("/")[-1].split("-")[2] for arn in onboarding_role) == [
        "OnboardingFunctionRole",
        "PolicyRolloutFunctionRole",
    ]
    secrets_key = kms.describe_key(KeyId=f"alias/dcisionai-tenant-{tenant}-secrets")["KeyMetadata"]
    policy = json.loads(kms.get_key_policy(KeyId=secrets_key["KeyId"], PolicyName="default")["Policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["KeyAdministrators"]["Principal"] == {"AWS": onboarding_role}
    assert {"kms:PutKeyPolicy", "kms:CreateAlias", "kms:EnableKeyRotation", "kms:DeleteAlias"} <= set(
        by_sid["KeyAdministrators"]["Action"]
    )
    assert kms.get_key_rotation_status(KeyId=secrets_key["KeyId"])["KeyRotationEnabled"]
    for what in ("admin-initial-password", "database"):
        described = secrets.describe_secret(SecretId=f"dcisionai/tenants/{tenant}/{what}")
        assert described["KmsKeyId"].endswith(f"alias/dcisionai-tenant-{tenant}-secrets")
    # the handed-over password is readable by the operator, under the tenant key
    value = json.loads(
        secrets.get_secret_value(SecretId=f"dcisionai/tenants/{tenant}/admin-initial-password")[
            "SecretString"
        ]
    )
    assert value["username"] == "owner"
    seen(value["password"])
