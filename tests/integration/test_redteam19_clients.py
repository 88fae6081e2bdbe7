"""Red team of issue 19 (machine access) on moto: findings written as failing tests, now fixed.

Each test states what should hold; a failure is the finding (see the red-team report). The fixes:
a rotation is judged as a grant of the client's roles and only a platform-admin manages the
platform tenant's clients (administration/clients.py); no DynamoDB TTL behind the count; the
verifier key read as stored and cached by its id (identity/client_secrets.py); the throttle's
``outside`` window for the client's own allow-list too; every address remembered; a base64 body
decoded inside the token endpoint (identity/client_credentials.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest

from tenant_security.actors import Actor
from tenant_security.errors import DomainError, Forbidden
from tenant_security.identity import clients as clients_module
from tenant_security.identity.client_credentials import InvalidClient
from tenant_security.identity.client_secrets import new_secret
from tenant_security.identity.clients import VERIFIER_KEY_ITEM, ClientLimitReached
from tenant_security.identity.throttle import TooManyAttempts
from tests.support.client_world import CLIENTS_TABLE, ClientWorld, client_world, resolver_over, token_event

pytestmark = pytest.mark.integration


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientWorld]:
    with client_world(monkeypatch) as made:
        yield made


@pytest.fixture
def throttled_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientWorld]:
    # a generous per-address limit, three attempts a minute per client
    with client_world(monkeypatch, throttle=(1000, 3)) as made:
        yield made


def _platform_key() -> None:
    """The platform tenant's api-keys key by its alias (the world makes acme's and globex's)."""
    kms = boto3.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/dcisionai-tenant-platform-api-keys", TargetKeyId=key)


# ------------------------------------------------------------------ escalation through rotation
def test_a_platform_tenant_admin_cannot_take_over_a_platform_admin_client(world: ClientWorld) -> None:
    """Only a platform-admin makes clients of the platform tenant (a machine credential there
    reaches every tenant). A tenant-admin of the platform tenant who is no platform-admin must
    not get such a client's secret by rotating it either: the new secret IS the credential."""
    _platform_key()
    root = Actor(tenant_id="platform", user="root", platform_admin=True, roles=("platform-admin",))
    platform = world.tenants.records["platform"]
    made = world.admin.create(root, platform, "fleet", ["platform-admin"], 30)
    deputy = Actor(tenant_id="platform", user="deputy", platform_admin=False, roles=("tenant-admin",))
    # the deputy may not make one...
    with pytest.raises(Forbidden):
        world.admin.create(deputy, platform, "mine", ["platform-admin"], 30)
    # ...nor take this one over
    try:
        rotated = world.admin.rotate(deputy, platform, made["client_id"], 0)
    except DomainError as refused:
        status = refused.status
    else:
        status = 200
    if status != 200:
        assert status == 403
        return
    token = world.post(made["client_id"], rotated["client_secret"])
    claims = world.verifier.verify(token["access_token"], "access")
    pytest.fail(f"a non-platform-admin got a platform-admin credential: roles {claims['roles']}")


def test_a_custom_role_holding_clients_rotate_cannot_take_over_a_tenant_admin_client(
    world: ClientWorld,
) -> None:
    """A grant never reaches beyond its grantor (authz/grants.py): whoever holds clients:Create
    alone cannot make a tenant-admin client. Holding clients:Rotate alone must not get the secret
    of an existing tenant-admin client either (the same credential, by another door)."""
    acme = replace(world.tenants.records["acme"], custom_roles={"key-keeper": ["clients:*"]})
    world.tenants.records["acme"] = acme
    boss = Actor(tenant_id="acme", user="boss", platform_admin=False, roles=("tenant-admin",))
    made = world.admin.create(boss, acme, "deploy", ["tenant-admin"], 30)
    keeper = Actor(tenant_id="acme", user="kim", platform_admin=False, roles=("key-keeper",))
    with pytest.raises(Forbidden):  # the grant rule holds at creation...
        world.admin.create(keeper, acme, "mine", ["tenant-admin"], 30)
    try:  # ...and must at rotation
        rotated = world.admin.rotate(keeper, acme, made["client_id"], 0)
    except DomainError as refused:
        status = refused.status
    else:
        status = 200
    if status != 200:
        assert status == 403
        return
    token = world.post(made["client_id"], rotated["client_secret"])
    claims = world.verifier.verify(token["access_token"], "access")
    pytest.fail(f"clients:Rotate alone escalated to {claims['roles']}")


# ------------------------------------------------------------------ the count and DynamoDB TTL
def test_expired_clients_stay_counted_until_deleted_which_frees_their_place(
    world: ClientWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finding: a TTL on purge_at deleted expired clients behind the tenant's #count (TTL
    deletes bypass the transaction that lowers it), so purged clients stayed counted forever
    and the tenant could never make another. The fix: no TTL. An expired client stays, listed
    and counted, until a tenant-admin deletes it -- which frees its place."""
    monkeypatch.setattr(clients_module, "MAX_CLIENTS_PER_TENANT", 2)
    made = [world.make(days=1) for _ in range(2)]
    world.clock.now += 2 * 86400  # both expired
    items = world.ddb.scan(TableName=CLIENTS_TABLE)["Items"]
    assert all("purge_at" not in item for item in items)  # nothing for a TTL to act on
    listed = world.admin.list_clients(world.boss(), "acme")
    assert sorted(c["client_id"] for c in listed) == sorted(c["client_id"] for c in made)
    with pytest.raises(ClientLimitReached):  # still counted
        world.make(days=1)
    world.delete(made[0])
    fresh = world.make(days=1)  # its place is free
    assert fresh["client_id"].startswith("acme_")
    with pytest.raises(ClientLimitReached):  # and only its
        world.make(days=1)


# ------------------------------------------------------------------ offboarding and the key cache
def test_a_tenant_onboarded_again_gets_a_new_verifier_key_not_the_cached_shredded_one(
    world: ClientWorld,
) -> None:
    """Offboarding deletes the tenant's partition (the wrapped key among it) and shreds its
    api-keys key, in the onboarding function. The finding: the auth function that made clients
    kept the plaintext verifier key cached for 300 s and returned it without looking at the
    table, so the re-onboarded tenant's first clients got verifiers under a key that existed
    nowhere but in that cache. The fix: a creation reads the key as stored
    (VerifierKeys.current), and a client names the key id its verifiers were made under."""
    world.make()  # the admin's instance caches acme's key
    # offboarding (another function): the partition goes, the key is shredded and its alias freed
    world.store.delete_tenant("acme")
    kms = boto3.client("kms")
    kms.delete_alias(AliasName="alias/dcisionai-tenant-acme-api-keys")
    # onboarded again: a new api-keys key under the same alias
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/dcisionai-tenant-acme-api-keys", TargetKeyId=key)
    made = world.make()
    assert made["client_id"].startswith("acme_")
    kept = world.ddb.get_item(
        TableName=CLIENTS_TABLE, Key={"tenant_id": {"S": "acme"}, "client_id": {"S": VERIFIER_KEY_ITEM}}
    )
    assert "Item" in kept, "a client was made with a verifier key the table does not hold"
    stored = world.store.get("acme", made["client_id"])
    assert stored is not None
    assert stored.verifier_key == kept["Item"]["key_id"]["S"]
    token = world.post(made["client_id"], made["client_secret"])  # the token endpoint, cold
    assert token["token_type"] == "Bearer"


# ------------------------------------------------------------------ throttling
def test_attempts_from_outside_the_allow_list_do_not_lock_the_client_out(
    throttled_world: ClientWorld,
) -> None:
    """As for a person (identity/throttle.py admit_account ``outside``): attempts from an address
    the tenant's allow-list refuses fill a window of their own and never keep the account out.
    The finding: the token endpoint counted them in the client's own window, so a stranger
    outside the allow-list who knows a client id (not a secret: it is listed, logged and in the
    trail) stopped the client from every allowed address it had not used yet."""
    world = throttled_world
    world.tenants.access("acme", ip_whitelist=["10.0.0.0/8"], mfa_required=False)
    made = world.make()
    for _ in range(3):  # the stranger, outside the allow-list, with a well-formed wrong secret
        with pytest.raises(InvalidClient):
            world.post(made["client_id"], new_secret(), ip="198.51.100.7")
    try:
        token = world.post(made["client_id"], made["client_secret"], ip="10.1.2.3")
    except TooManyAttempts:
        pytest.fail("a stranger outside the allow-list locked the client out of its allowed address")
    assert token["token_type"] == "Bearer"


def test_every_address_a_client_authenticated_from_is_remembered(throttled_world: ClientWorld) -> None:
    """client_credentials.py: "an address the client authenticated from in the last 30 days is
    not stopped by a stranger filling the client's window". The finding: the address was
    remembered only with last_used_at, at most once a minute, so a second address within that
    minute (two workers, a NAT pool) was never remembered. The fix: every success remembers."""
    world = throttled_world
    made = world.make()
    world.post(made["client_id"], made["client_secret"], ip="192.0.2.1")
    world.clock.now += 5
    world.post(made["client_id"], made["client_secret"], ip="192.0.2.2")  # authenticated here too
    world.clock.now += 120  # a later minute: a stranger fills the client's window
    for _ in range(3):
        with pytest.raises(InvalidClient):
            world.post(made["client_id"], new_secret(), ip="198.51.100.7")
    world.post(made["client_id"], made["client_secret"], ip="192.0.2.1")  # remembered: fine
    try:
        world.post(made["client_id"], made["client_secret"], ip="192.0.2.2")
    except TooManyAttempts:
        pytest.fail("an address the client authenticated from was not remembered")


# ------------------------------------------------------------------ the token endpoint's body
@pytest.mark.parametrize(
    "body",
    [
        base64.b64encode(b"\xff\xfegrant_type=client_credentials").decode(),  # not UTF-8
        "not base64 at all!",  # what a broken proxy may hand on marked base64
    ],
)
def test_a_binary_body_at_the_token_endpoint_is_invalid_request_not_a_500(
    world: ClientWorld, body: str
) -> None:
    """application/octet-stream is one of the API's BinaryMediaTypes (template.yaml), so API
    Gateway hands such a body base64-encoded. The finding: the handler read
    ``event.decoded_body``, which raises on bytes that are not base64 or not UTF-8: an unhandled
    500, before the endpoint's per-address throttle. The fix: the handler passes the body and
    ``isBase64Encoded`` on, and the endpoint decodes it (resolver_over wires it the same way)."""
    event = token_event(body, "application/octet-stream")
    event["isBase64Encoded"] = True
    reply = resolver_over(lambda: world.grant).resolve(event, None)
    assert reply["statusCode"] == 400, reply["body"]
    assert json.loads(reply["body"])["error"] == "invalid_request"
