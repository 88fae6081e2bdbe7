"""API clients on moto: the per-tenant count under parallel creations, rotations conditioned on the
version read, last_used_at at most once a minute, one verifier key per tenant under its api-keys
KMS key (cached: no KMS call when warm), offboarding; ClientAdmin's grant rules."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest

from tenant_security import aws
from tenant_security.actors import Actor
from tenant_security.administration.clients import ClientAdmin
from tenant_security.authz.role_store import RoleStore
from tenant_security.crypto import DecryptionRefused
from tenant_security.errors import Forbidden, NotFound, ValidationFailed
from tenant_security.identity import clients as clients_module
from tenant_security.identity.client_secrets import VerifierKey, VerifierKeys, matches, verifier
from tenant_security.identity.clients import (
    COUNT_ITEM,
    ApiClient,
    ApiClientStore,
    ClientExists,
    ClientLimitReached,
    RotationConflict,
    Verifier,
    new_client_id,
)
from tenant_security.identity.users import GuardFailed
from tenant_security.tenants import TenantProfile, TenantStatus, TenantStore
from tests.support.client_world import ACCOUNT, CLIENTS_TABLE, WatchedClient, key_arn
from tests.support.clock import ManualClock
from tests.support.moto import create_table, mocked_aws

pytestmark = pytest.mark.integration
TABLE = CLIENTS_TABLE


@dataclass
class Cloud:
    ddb: Any
    kms: Any
    store: ApiClientStore
    counting: WatchedClient
    keys: VerifierKeys
    kms_calls: list[str]
    tenants: TenantStore
    roles: RoleStore


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    with mocked_aws(monkeypatch):
        ddb, kms = boto3.client("dynamodb"), boto3.client("kms")
        create_table(ddb, TABLE, "tenant_id", "client_id")
        create_table(ddb, "tenants", "tenant_id")
        create_table(ddb, "users", "tenant_id", "username")
        for tenant in ("acme", "globex"):
            key = kms.create_key()["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=f"alias/dcisionai-tenant-{tenant}-api-keys", TargetKeyId=key)
        kms_calls: list[str] = []

        def count_kms(model: Any, **_: Any) -> None:
            if model.service_model.service_name == "kms":
                kms_calls.append(model.name)

        # every client the layer makes, the Encryption SDK's among them (aws.before_every_call),
        # without leaving the hook behind for the next test
        monkeypatch.setattr(aws, "_call_hooks", [])
        aws.before_every_call("tests19-count-kms", count_kms)
        counting = WatchedClient(ddb)
        store = ApiClientStore(counting, TABLE)  # type: ignore[arg-type]
        tenants = TenantStore(ddb, "tenants")
        for tenant in ("acme", "globex", "platform"):
            tenants.create(TenantProfile(tenant, tenant, TenantStatus.ACTIVE))
        yield Cloud(
            ddb,
            kms,
            store,
            counting,
            VerifierKeys(store, key_arn, ACCOUNT),
            kms_calls,
            tenants,
            RoleStore(ddb, "tenants", "users"),
        )


def a_client(
    tenant: str = "acme", roles: tuple[str, ...] = ("viewer",), expires_in: int = 86400
) -> ApiClient:
    now = int(time.time())
    client_id = new_client_id(tenant)
    return ApiClient(
        tenant_id=tenant,
        client_id=client_id,
        name="ci",
        roles=roles,
        created_at=now,
        expires_at=now + expires_in,
        verifiers=(Verifier("0" * 64),),
        verifier_key="k1",
    )


def count_of(cloud: Cloud, tenant: str) -> int:
    item = cloud.ddb.get_item(
        TableName=TABLE, Key={"tenant_id": {"S": tenant}, "client_id": {"S": COUNT_ITEM}}
    )
    return int(item.get("Item", {}).get("clients", {}).get("N", "0"))


# ------------------------------------------------------------------ the count
def test_parallel_creations_never_pass_the_limit(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients_module, "MAX_CLIENTS_PER_TENANT", 3)

    def create(_: int) -> str:
        try:
            cloud.store.create(a_client())
        except ClientLimitReached:
            return "refused"
        return "made"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create, range(8)))
    assert results.count("made") == 3
    assert results.count("refused") == 5
    assert len(cloud.store.list_clients("acme")) == 3
    assert count_of(cloud, "acme") == 3
    # another tenant is counted apart
    cloud.store.create(a_client("globex"))
    # a deletion lowers the count: exactly one more fits
    victim = cloud.store.list_clients("acme")[0]
    cloud.store.delete("acme", victim.client_id)
    assert count_of(cloud, "acme") == 2
    with ThreadPoolExecutor(4) as pool:
        again = list(pool.map(create, range(4)))
    assert again.count("made") == 1
    assert count_of(cloud, "acme") == 3
    # deleting a client that is gone changes nothing (and is a 404)
    with pytest.raises(NotFound):
        cloud.store.delete("acme", victim.client_id)
    assert count_of(cloud, "acme") == 3


def test_a_replayed_creation_is_client_exists_and_counted_once(cloud: Cloud) -> None:
    """An Idempotency-Key retry whose first attempt made the client but lost its reply names the
    same client id: 409 client_exists, never a second client nor a second count."""
    creation = str(uuid.uuid4())
    assert new_client_id("acme", creation) == new_client_id("acme", creation)
    assert new_client_id("acme", creation) != new_client_id("acme", str(uuid.uuid4()))
    first = replace(a_client(), client_id=new_client_id("acme", creation))
    cloud.store.create(first)
    with pytest.raises(ClientExists) as exists:
        cloud.store.create(replace(first, name="retry", verifiers=(Verifier("1" * 64),)))
    assert exists.value.status == 409
    assert [c.name for c in cloud.store.list_clients("acme")] == ["ci"]  # the first one, untouched
    assert count_of(cloud, "acme") == 1


def test_an_expired_client_stays_counted_until_deleted(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    """No TTL removes a client behind the count's back: an expired client is listed and counted
    until it is deleted, which frees its place."""
    monkeypatch.setattr(clients_module, "MAX_CLIENTS_PER_TENANT", 2)
    expired = replace(a_client(), expires_at=int(time.time()) - 1)
    cloud.store.create(expired)
    cloud.store.create(a_client())
    with pytest.raises(ClientLimitReached):
        cloud.store.create(a_client())
    listed = {c.client_id: c for c in cloud.store.list_clients("acme")}
    assert expired.client_id in listed
    assert not listed[expired.client_id].live(time.time())
    cloud.store.delete("acme", expired.client_id)
    assert count_of(cloud, "acme") == 1
    cloud.store.create(a_client())
    assert count_of(cloud, "acme") == 2
    item = cloud.ddb.get_item(
        TableName=TABLE, Key={"tenant_id": {"S": "acme"}, "client_id": {"S": expired.client_id}}
    )
    assert "Item" not in item
    assert all("purge_at" not in i for i in cloud.ddb.scan(TableName=TABLE)["Items"])


def test_a_client_id_of_another_tenant_is_no_client_here(cloud: Cloud) -> None:
    made = a_client("globex")
    cloud.store.create(made)
    assert cloud.store.get("acme", made.client_id) is None
    with pytest.raises(NotFound):
        cloud.store.delete("acme", made.client_id)
    assert cloud.store.get("globex", made.client_id) is not None
    assert [c.client_id for c in cloud.store.list_clients("acme")] == []


# ------------------------------------------------------------------ rotation
def test_two_rotations_from_one_read_one_lands(cloud: Cloud) -> None:
    made = a_client()
    cloud.store.create(made)
    read = cloud.store.get("acme", made.client_id)
    assert read is not None
    now = time.time()
    cloud.store.rotate(read, [Verifier("1" * 64)], now)
    with pytest.raises(RotationConflict) as refused:
        cloud.store.rotate(read, [Verifier("2" * 64)], now)
    assert refused.value.status == 409
    fresh = cloud.store.get("acme", made.client_id)
    assert fresh is not None
    assert [v.value for v in fresh.verifiers] == ["1" * 64]
    assert fresh.secret_version == read.secret_version + 1


def test_parallel_rotations_from_one_read_exactly_one_lands(cloud: Cloud) -> None:
    made = a_client()
    cloud.store.create(made)
    read = cloud.store.get("acme", made.client_id)
    assert read is not None

    def rotate(i: int) -> str:
        try:
            cloud.store.rotate(read, [Verifier(f"{i:x}" * 64)], time.time())
        except RotationConflict:
            return "conflict"
        return f"{i:x}" * 64

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(rotate, range(8)))
    landed = [r for r in results if r != "conflict"]
    assert len(landed) == 1
    fresh = cloud.store.get("acme", made.client_id)
    assert fresh is not None
    assert [v.value for v in fresh.verifiers] == landed


def test_rotating_an_expired_or_deleted_client_is_404(cloud: Cloud) -> None:
    expired = replace(a_client(), expires_at=int(time.time()) - 1)
    cloud.store.create(expired)
    read = cloud.store.get("acme", expired.client_id)
    assert read is not None
    with pytest.raises(NotFound):
        cloud.store.rotate(read, [Verifier("1" * 64)], time.time())
    gone = a_client()
    cloud.store.create(gone)
    read = cloud.store.get("acme", gone.client_id)
    assert read is not None
    cloud.store.delete("acme", gone.client_id)
    with pytest.raises(NotFound):
        cloud.store.rotate(read, [Verifier("1" * 64)], time.time())
    assert cloud.store.get("acme", gone.client_id) is None  # the rotation made no item


# ------------------------------------------------------------------ last_used_at
def test_touch_writes_at_most_once_a_minute(cloud: Cloud) -> None:
    made = a_client()
    cloud.store.create(made)
    clock = ManualClock()

    def used_at() -> int | None:
        got = cloud.store.get("acme", made.client_id)
        assert got is not None
        return got.last_used_at

    # many workers, each with the client as read before anyone touched it
    stale = cloud.store.get("acme", made.client_id)
    assert stale is not None
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: cloud.store.touch(stale, clock.now), range(8)))
    first = used_at()
    assert first == int(clock.now)
    # within the minute, even from a stale read and a later time: no new value
    clock.now += 59
    cloud.store.touch(stale, clock.now)
    assert used_at() == first
    # a fresh read within the minute does not even ask DynamoDB
    fresh = cloud.store.get("acme", made.client_id)
    assert fresh is not None
    updates = cloud.counting.calls.get("update_item", 0)
    for _ in range(20):
        cloud.store.touch(fresh, clock.now)
    assert cloud.counting.calls.get("update_item", 0) == updates
    clock.now += 2  # a minute after the write
    cloud.store.touch(fresh, clock.now)
    assert used_at() == int(clock.now)


def test_touch_of_a_deleted_client_makes_no_item(cloud: Cloud) -> None:
    made = a_client()
    cloud.store.create(made)
    cloud.store.delete("acme", made.client_id)
    cloud.store.touch(made, time.time())  # never raises for the condition
    assert cloud.store.get("acme", made.client_id) is None


# ------------------------------------------------------------------ the verifier key
def test_two_first_writers_keep_one_wrapped_key(cloud: Cloud) -> None:
    barrier = threading.Barrier(6)

    def keep(i: int) -> tuple[str, bytes]:
        barrier.wait()
        return cloud.store.keep_wrapped_key("acme", f"id-{i}", f"wrapped-{i}".encode())

    with ThreadPoolExecutor(6) as pool:
        kept = set(pool.map(keep, range(6)))
    assert len(kept) == 1
    ((key_id, wrapped),) = kept
    assert wrapped == f"wrapped-{key_id.removeprefix('id-')}".encode()  # an id and its own key
    assert cloud.store.wrapped_key("acme") == (key_id, wrapped)


def test_parallel_first_keys_of_two_workers_are_one_key(cloud: Cloud) -> None:
    workers = [VerifierKeys(cloud.store, key_arn, ACCOUNT) for _ in range(4)]
    barrier = threading.Barrier(4)

    def first(worker: VerifierKeys) -> VerifierKey:
        barrier.wait()
        return worker.current("acme")

    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(first, workers))
    assert len(set(made)) == 1
    assert len(made[0].material) == 32
    # the key is stored wrapped only, under the id every worker got
    stored = cloud.store.wrapped_key("acme")
    assert stored is not None
    assert stored[0] == made[0].key_id
    assert made[0].material not in stored[1]


def test_current_reads_the_stored_key_every_time_without_kms_when_warm(cloud: Cloud) -> None:
    """A new client's verifier is made under the key as stored now (a consistent read each time:
    a key deleted and made again at offboarding is never the cached one), unwrapped once."""
    made = cloud.keys.current("acme")
    cloud.kms_calls.clear()
    reads = cloud.counting.calls.get("get_item", 0)
    for _ in range(5):
        assert cloud.keys.current("acme") == made
    assert cloud.counting.calls.get("get_item", 0) - reads == 5
    assert cloud.kms_calls == []


def test_a_warm_key_makes_no_kms_call_nor_read_within_300_seconds(cloud: Cloud) -> None:
    clock = ManualClock()
    made = VerifierKeys(cloud.store, key_arn, ACCOUNT).current("acme")  # another worker made it
    keys = VerifierKeys(cloud.store, key_arn, ACCOUNT, clock=clock)
    cloud.kms_calls.clear()
    assert keys.of("acme", made.key_id) == made
    assert "Decrypt" in cloud.kms_calls  # the cold read unwraps it
    cloud.kms_calls.clear()
    reads = cloud.counting.calls.get("get_item", 0)
    for _ in range(50):
        clock.now += 5.9
        assert keys.of("acme", made.key_id) == made
    assert cloud.kms_calls == []  # 295 s later: still cached
    assert cloud.counting.calls.get("get_item", 0) == reads  # cached by its id: not even a read
    clock.now += 5.1  # 300 s after the unwrap
    assert keys.of("acme", made.key_id) == made
    assert cloud.kms_calls == ["Decrypt"]


def test_a_tenant_without_a_key_has_none_until_one_is_made(cloud: Cloud) -> None:
    assert cloud.keys.of("acme", "0" * 32) is None
    assert cloud.kms_calls == []
    made = cloud.keys.current("acme")
    assert "GenerateDataKey" in cloud.kms_calls
    assert cloud.keys.of("acme", made.key_id) == made


def test_another_key_id_than_the_tenants_is_no_key(cloud: Cloud) -> None:
    """A client made under a key since shredded names an id the tenant no longer has: no key,
    whether the cache holds the tenant's current key or nothing."""
    made = cloud.keys.current("acme")
    reads = cloud.counting.calls.get("get_item", 0)
    assert cloud.keys.of("acme", "f" * 32) is None  # the cache holds another id: the table says
    assert cloud.counting.calls.get("get_item", 0) - reads == 1
    cold = VerifierKeys(cloud.store, key_arn, ACCOUNT)
    cloud.kms_calls.clear()
    assert cold.of("acme", "f" * 32) is None
    assert cloud.kms_calls == []  # nothing unwrapped for a key that is not the client's
    # the tenant's key deleted and made anew (offboarded, onboarded again): the old id is no key
    cloud.store.delete_tenant("acme")
    again = VerifierKeys(cloud.store, key_arn, ACCOUNT).current("acme")
    assert again.key_id != made.key_id
    # (a worker's cache still holds the old key by its id, with no call -- no client names it:
    # its clients went with the partition)
    reads = cloud.counting.calls.get("get_item", 0)
    assert cloud.keys.of("acme", made.key_id) == made
    assert cloud.counting.calls.get("get_item", 0) == reads
    cloud.keys.forget("acme")
    assert cloud.keys.of("acme", made.key_id) is None
    assert cloud.keys.current("acme") == again  # current() never serves the cached old key


def test_a_wrapped_key_copied_to_another_tenant_does_not_unwrap(cloud: Cloud) -> None:
    made = cloud.keys.current("acme")
    wrapped = cloud.store.wrapped_key("acme")
    assert wrapped is not None
    cloud.store.keep_wrapped_key("globex", *wrapped)
    with pytest.raises(DecryptionRefused):
        VerifierKeys(cloud.store, key_arn, ACCOUNT).current("globex")
    with pytest.raises(DecryptionRefused):
        VerifierKeys(cloud.store, key_arn, ACCOUNT).of("globex", made.key_id)


def test_a_wrapped_key_under_another_key_id_does_not_unwrap(cloud: Cloud) -> None:
    """The key id is in the encryption context: a wrapped key relabelled with another id (a
    client's id that is not its key's) is refused, never unwrapped as that key."""
    cloud.keys.current("acme")
    stored = cloud.store.wrapped_key("acme")
    assert stored is not None
    cloud.store.delete_tenant("acme")
    cloud.store.keep_wrapped_key("acme", "relabelled", stored[1])
    with pytest.raises(DecryptionRefused):
        VerifierKeys(cloud.store, key_arn, ACCOUNT).of("acme", "relabelled")
    with pytest.raises(DecryptionRefused):
        VerifierKeys(cloud.store, key_arn, ACCOUNT).current("acme")


def test_delete_tenant_removes_the_tenant_and_nothing_else(cloud: Cloud) -> None:
    cloud.keys.current("acme")
    cloud.keys.current("globex")
    for tenant in ("acme", "acme", "globex"):
        cloud.store.create(a_client(tenant))
    assert cloud.store.delete_tenant("acme") == 4  # 2 clients, the count, the wrapped key
    assert cloud.store.list_clients("acme") == []
    assert cloud.store.wrapped_key("acme") is None
    assert count_of(cloud, "acme") == 0
    assert len(cloud.store.list_clients("globex")) == 1
    assert cloud.store.wrapped_key("globex") is not None
    assert count_of(cloud, "globex") == 1
    assert cloud.store.delete_tenant("acme") == 0  # again: nothing left


# ------------------------------------------------------------------ ClientAdmin
def actor(roles: tuple[str, ...] = ("tenant-admin",), tenant: str = "acme", **extra: Any) -> Actor:
    return Actor(
        tenant_id=tenant,
        user="boss",
        platform_admin=tenant == "platform" and "platform-admin" in roles,
        roles=roles,
        **extra,
    )


def admin(cloud: Cloud) -> ClientAdmin:
    return ClientAdmin(cloud.store, cloud.keys, "platform", cloud.roles)


def profile(cloud: Cloud, tenant: str = "acme") -> TenantProfile:
    found = cloud.tenants.get(tenant)
    assert found is not None
    return found


def test_a_client_is_made_with_its_secret_shown_once(cloud: Cloud) -> None:
    made = admin(cloud).create(actor(), profile(cloud), "ci", ["viewer", "viewer"], 90)
    assert made["client_secret"].startswith("tsk_")
    assert made["roles"] == ["viewer"]
    stored = cloud.store.get("acme", made["client_id"])
    assert stored is not None
    assert stored.expires_at - stored.created_at == 90 * 86400
    # its verifier is made under the tenant's key as stored, and names it
    key = cloud.keys.current("acme")
    assert stored.verifier_key == key.key_id
    assert matches(
        key.material, made["client_id"], made["client_secret"], stored.valid_verifiers(time.time())
    )
    listed = admin(cloud).list_clients(actor(), "acme")
    assert "client_secret" not in listed[0]
    scan = str(cloud.ddb.scan(TableName=TABLE)["Items"])
    assert made["client_secret"] not in scan
    assert made["client_secret"][4:] not in scan
    # who made it is the trail's (GDPR erasure reaches the trail): not on the client, not shown
    assert "created_by" not in made
    assert "created_by" not in listed[0]
    item = cloud.ddb.get_item(
        TableName=TABLE, Key={"tenant_id": {"S": "acme"}, "client_id": {"S": made["client_id"]}}
    )["Item"]
    assert "created_by" not in item
    assert "boss" not in str(item)
    assert "purge_at" not in item  # no TTL: the count holds every stored client


@pytest.mark.parametrize(
    ("grantor", "roles"),
    [
        (("security-admin",), ["tenant-admin"]),
        (("security-admin",), ["developer"]),
        (("developer",), ["viewer", "auditor"]),
        (("tenant-admin",), ["platform-admin"]),
    ],
)
def test_a_clients_roles_are_bounded_by_the_grantor(
    cloud: Cloud, grantor: tuple[str, ...], roles: list[str]
) -> None:
    with pytest.raises(Forbidden):
        admin(cloud).create(actor(grantor), profile(cloud), "ci", roles, 90)
    assert cloud.store.list_clients("acme") == []


def test_what_the_grantor_holds_it_may_grant(cloud: Cloud) -> None:
    made = admin(cloud).create(actor(("security-admin",)), profile(cloud), "ci", ["security-admin"], 1)
    assert made["roles"] == ["security-admin"]


def test_an_unknown_role_is_400(cloud: Cloud) -> None:
    with pytest.raises(ValidationFailed) as refused:
        admin(cloud).create(actor(), profile(cloud), "ci", ["viewer", "no-such-role"], 90)
    assert refused.value.status == 400
    assert cloud.store.list_clients("acme") == []


def test_only_a_platform_admin_manages_platform_clients(cloud: Cloud) -> None:
    platform = profile(cloud, "platform")
    deputy = actor(("tenant-admin",), tenant="platform")
    with pytest.raises(Forbidden):
        admin(cloud).create(deputy, platform, "ci", ["viewer"], 90)
    with pytest.raises(Forbidden):  # another tenant's admin, whatever the roles
        admin(cloud).create(actor(("tenant-admin",)), platform, "ci", ["viewer"], 90)
    # (the platform tenant's keys are the platform master key; any key stands in for it here)
    platform_admin = ClientAdmin(
        cloud.store,
        VerifierKeys(cloud.store, lambda _t: key_arn("acme"), ACCOUNT),
        "platform",
        cloud.roles,
    )
    root = actor(("platform-admin",), tenant="platform")
    made = platform_admin.create(root, platform, "ops", ["platform-admin"], 30)
    assert made["roles"] == ["platform-admin"]
    # a platform tenant-admin (no platform-admin) neither lists, rotates nor deletes it
    with pytest.raises(Forbidden):
        platform_admin.list_clients(deputy, "platform")
    with pytest.raises(Forbidden):
        platform_admin.rotate(deputy, platform, made["client_id"], 0)
    with pytest.raises(Forbidden):
        platform_admin.delete(deputy, "platform", made["client_id"])
    stored = cloud.store.get("platform", made["client_id"])
    assert stored is not None
    assert stored.secret_version == 1  # never rotated
    assert [c["client_id"] for c in platform_admin.list_clients(root, "platform")] == [made["client_id"]]
    assert platform_admin.rotate(root, platform, made["client_id"], 0)["client_secret"].startswith("tsk_")
    with pytest.raises(Forbidden):  # and platform-admin nowhere else
        admin(cloud).create(
            actor(("platform-admin",), tenant="platform"), profile(cloud), "x", ["platform-admin"], 30
        )


def test_another_tenants_admin_makes_no_client_here(cloud: Cloud) -> None:
    with pytest.raises(Forbidden):
        admin(cloud).create(actor(tenant="globex"), profile(cloud), "ci", ["viewer"], 90)
    assert cloud.store.list_clients("acme") == []


def test_a_client_cannot_manage_clients(cloud: Cloud) -> None:
    made = admin(cloud).create(actor(), profile(cloud), "ci", ["tenant-admin"], 90)
    machine = actor(client_id=made["client_id"])
    with pytest.raises(Forbidden):
        admin(cloud).create(machine, profile(cloud), "successor", ["viewer"], 90)
    with pytest.raises(Forbidden):
        admin(cloud).rotate(machine, profile(cloud), made["client_id"], 0)
    with pytest.raises(Forbidden):
        admin(cloud).list_clients(machine, "acme")
    with pytest.raises(Forbidden):
        admin(cloud).delete(machine, "acme", made["client_id"])
    (stored,) = cloud.store.list_clients("acme")
    assert stored.secret_version == 1


def test_rotation_with_grace_keeps_the_previous_secret_until_then(cloud: Cloud) -> None:
    clock = ManualClock()
    service = ClientAdmin(cloud.store, cloud.keys, "platform", cloud.roles, clock=clock)
    made = service.create(actor(), profile(cloud), "ci", ["viewer"], 90)
    first = service.rotate(actor(), profile(cloud), made["client_id"], 600)
    second = service.rotate(actor(), profile(cloud), made["client_id"], 600)
    key = cloud.keys.current("acme").material
    stored = cloud.store.get("acme", made["client_id"])
    assert stored is not None

    def works(secret: str) -> bool:
        return matches(key, made["client_id"], secret, stored.valid_verifiers(clock.now))

    assert works(second["client_secret"])
    assert works(first["client_secret"])  # the one it replaced, in its grace
    assert not works(made["client_secret"])  # older ones: no longer
    clock.now += 601
    assert not works(first["client_secret"])
    assert works(second["client_secret"])
    assert len(stored.verifiers) == 2  # never a growing list
    with pytest.raises(NotFound):
        service.rotate(actor(), profile(cloud), new_client_id("acme"), 0)


def test_a_rotation_is_judged_as_a_grant_of_the_clients_roles(cloud: Cloud) -> None:
    """The new secret is the client's roles given anew: only who could grant them may rotate."""
    boss_made = admin(cloud).create(actor(), profile(cloud), "deploy", ["tenant-admin"], 90)
    own = admin(cloud).create(actor(("security-admin",)), profile(cloud), "sec", ["security-admin"], 90)
    with pytest.raises(Forbidden):
        admin(cloud).rotate(actor(("security-admin",)), profile(cloud), boss_made["client_id"], 0)
    stored = cloud.store.get("acme", boss_made["client_id"])
    assert stored is not None
    assert stored.secret_version == 1  # nothing changed
    rotated = admin(cloud).rotate(actor(("security-admin",)), profile(cloud), own["client_id"], 0)
    assert rotated["client_secret"] != own["client_secret"]
    assert rotated["previous_secret_expires_at"] is None


def test_rotating_an_expired_client_or_one_under_a_shredded_key_is_404(cloud: Cloud) -> None:
    clock = ManualClock()
    service = ClientAdmin(cloud.store, cloud.keys, "platform", cloud.roles, clock=clock)
    short = service.create(actor(), profile(cloud), "short", ["viewer"], 1)
    clock.now += 86400
    with pytest.raises(NotFound):
        service.rotate(actor(), profile(cloud), short["client_id"], 0)
    # a client naming a key the tenant no longer has: its verifiers verify nothing, nor would new ones
    made = service.create(actor(), profile(cloud), "ci", ["viewer"], 90)
    cloud.ddb.update_item(
        TableName=TABLE,
        Key={"tenant_id": {"S": "acme"}, "client_id": {"S": made["client_id"]}},
        UpdateExpression="SET verifier_key = :k",
        ExpressionAttributeValues={":k": {"S": "f" * 32}},
    )
    with pytest.raises(NotFound):
        service.rotate(actor(), profile(cloud), made["client_id"], 0)
    stored = cloud.store.get("acme", made["client_id"])
    assert stored is not None
    assert stored.secret_version == 1


def test_a_replayed_idempotent_creation_is_409_and_makes_no_second_client(cloud: Cloud) -> None:
    creation = str(uuid.uuid4())
    made = admin(cloud).create(actor(), profile(cloud), "ci", ["viewer"], 90, creation_id=creation)
    assert made["client_id"] == new_client_id("acme", creation)
    with pytest.raises(ClientExists) as exists:
        admin(cloud).create(actor(), profile(cloud), "ci", ["viewer"], 90, creation_id=creation)
    assert exists.value.status == 409
    assert [c.client_id for c in cloud.store.list_clients("acme")] == [made["client_id"]]
    assert count_of(cloud, "acme") == 1
    # the first one's secret still is the one
    stored = cloud.store.get("acme", made["client_id"])
    assert stored is not None
    key = cloud.keys.current("acme").material
    assert matches(key, made["client_id"], made["client_secret"], stored.valid_verifiers(time.time()))


def test_a_custom_role_grant_is_judged_again_when_the_roles_moved(cloud: Cloud) -> None:
    """The roles revision moved between the grant's judgement and its write (GuardFailed): the
    grant is judged again on the roles as they are now."""
    read = cloud.roles.read("acme")
    cloud.roles.write(read, {"reader": ["files:Read"]})

    def move_the_roles(_kwargs: dict[str, Any]) -> None:
        now = cloud.roles.read("acme")
        cloud.roles.write(now, {"reader": ["files:Read"], "writer": ["files:Write"]})

    cloud.counting.before["transact_write_items"] = move_the_roles
    made = admin(cloud).create(actor(), profile(cloud), "ci", ["reader"], 90)
    assert made["roles"] == ["reader"]
    assert cloud.counting.calls["transact_write_items"] == 2  # refused once, then made
    assert len(cloud.store.list_clients("acme")) == 1
    assert count_of(cloud, "acme") == 1


def test_a_custom_role_deleted_meanwhile_is_not_granted(cloud: Cloud) -> None:
    read = cloud.roles.read("acme")
    cloud.roles.write(read, {"reader": ["files:Read"]})

    def delete_the_role(_kwargs: dict[str, Any]) -> None:
        cloud.roles.write(cloud.roles.read("acme"), {})

    cloud.counting.before["transact_write_items"] = delete_the_role
    with pytest.raises(ValidationFailed):
        admin(cloud).create(actor(), profile(cloud), "ci", ["reader"], 90)
    assert cloud.store.list_clients("acme") == []
    assert count_of(cloud, "acme") == 0


def test_roles_that_never_settle_end_in_guard_failed(cloud: Cloud) -> None:
    cloud.roles.write(cloud.roles.read("acme"), {"reader": ["files:Read"]})
    real = cloud.store.create

    def always_moved(client: ApiClient, guard: Any = None) -> None:
        cloud.roles.write(cloud.roles.read("acme"), {"reader": ["files:Read"]})
        real(client, guard)

    cloud.store.create = always_moved  # type: ignore[method-assign]
    with pytest.raises(GuardFailed):
        admin(cloud).create(actor(), profile(cloud), "ci", ["reader"], 90)
    assert count_of(cloud, "acme") == 0


def test_a_verifier_of_one_client_verifies_nothing_for_another(cloud: Cloud) -> None:
    one = admin(cloud).create(actor(), profile(cloud), "a", ["viewer"], 90)
    two = admin(cloud).create(actor(), profile(cloud), "b", ["viewer"], 90)
    key = cloud.keys.current("acme").material
    stored_one = cloud.store.get("acme", one["client_id"])
    assert stored_one is not None
    assert not matches(key, two["client_id"], one["client_secret"], stored_one.valid_verifiers(time.time()))
    assert verifier(key, one["client_id"], one["client_secret"]) == stored_one.verifiers[0].value
