"""The token endpoint under generated input: whatever the body, media type, Authorization header
and source address, ClientCredentialsGrant.token answers with a token or an RFC 6749 error (or a
throttle's 429) -- never another exception, which would be a 500; and verifiers copied between
tenants' or clients' items authenticate nobody."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus, urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tenant_security.errors import DomainError
from tenant_security.identity.client_credentials import InvalidClient, OAuthError
from tenant_security.identity.clients import new_client_id
from tenant_security.identity.throttle import TooManyAttempts
from tenant_security.identity.tokens import ACCESS
from tests.support.client_world import CLIENTS_TABLE, FORM, ClientWorld, client_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientWorld]:
    with client_world(monkeypatch, throttle=(100_000, 100_000)) as made:
        yield made


_TEXT = st.text(max_size=80)
_PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
_NAMES = st.sampled_from(["grant_type", "client_id", "client_secret", "scope", "audience", "", "grant_type "])


def _forms(real: dict[str, str]) -> st.SearchStrategy[str | None]:
    """Bodies: well-formed forms mixing real and generated values, and raw generated text."""
    values = st.one_of(
        _TEXT,
        st.sampled_from(
            [
                "client_credentials",
                "password",
                real["client_id"],
                real["client_secret"],
                real["client_secret"][:-1],
                real["other_id"],
                "viewer",
                "viewer tenant-admin",
            ]
        ),
    )
    structured = st.fixed_dictionaries(
        {"grant_type": st.sampled_from(["client_credentials", "client_credentials", "password", ""])},
        optional={
            "client_id": st.one_of(st.just(real["client_id"]), st.just(real["other_id"]), _TEXT),
            "client_secret": st.one_of(st.just(real["client_secret"]), values),
            "scope": st.one_of(st.sampled_from(["viewer", "developer viewer", "tenant-admin", " "]), _TEXT),
        },
    ).map(urlencode)
    pairs = st.lists(st.tuples(_NAMES, values), max_size=6)
    encoded = pairs.map(urlencode)
    raw = st.one_of(_TEXT, st.binary(max_size=80).map(lambda b: b.decode("latin-1")))
    huge = st.integers(4000, 6000).map(lambda n: "grant_type=client_credentials&x=" + "a" * n)
    return st.one_of(structured, structured, structured, st.none(), encoded, raw, huge)


def _authorizations(real: dict[str, str]) -> st.SearchStrategy[str | None]:
    parts = st.one_of(
        _PRINTABLE, st.sampled_from([real["client_id"], real["client_secret"], real["other_id"], ""])
    )
    basic = st.tuples(parts, parts, st.booleans()).map(
        lambda t: (
            "Basic "
            + base64.b64encode(
                (f"{quote_plus(t[0])}:{quote_plus(t[1])}" if t[2] else f"{t[0]}:{t[1]}").encode()
            ).decode()
        )
    )
    binary = st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode())
    schemes = st.tuples(st.sampled_from(["Bearer", "basic", "Digest", "", "Basic  "]), _PRINTABLE).map(
        lambda t: f"{t[0]} {t[1]}"
    )
    return st.one_of(st.none(), st.none(), basic, basic, binary, schemes, _TEXT)


_CONTENT_TYPES = st.one_of(
    st.just(FORM),
    st.just(f"{FORM}; charset=UTF-8"),
    st.none(),
    st.sampled_from(
        [FORM, f"{FORM}; charset=UTF-8", "APPLICATION/X-WWW-FORM-URLENCODED", "application/json", ""]
    ),
    _TEXT,
)
_ADDRESSES = st.one_of(
    st.just("203.0.113.9"),
    st.none(),
    st.sampled_from(["203.0.113.9", "10.1.2.3", "2001:db8::1", "not-an-address", ""]),
    _PRINTABLE,
)


def _client_post_forms(real: dict[str, str]) -> st.SearchStrategy[str]:
    """client_secret_post bodies that get past parsing: the client checks and scope."""
    return st.fixed_dictionaries(
        {
            "grant_type": st.just("client_credentials"),
            "client_id": st.one_of(
                st.sampled_from([real["client_id"], real["other_id"], real["client_id"].upper()]), _PRINTABLE
            ),
            "client_secret": st.one_of(
                st.sampled_from([real["client_secret"], real["client_secret"][:-1] + "A", "tsk_"]), _PRINTABLE
            ),
        },
        optional={"scope": st.one_of(st.sampled_from(["viewer", "developer viewer", "tenant-admin"]), _TEXT)},
    ).map(urlencode)


def _base64_bodies(real: dict[str, str]) -> st.SearchStrategy[str | None]:
    """Bodies as API Gateway hands a binary media type's on: base64 of a form (or of any bytes,
    not UTF-8 among them), and text that is no base64 at all (a broken proxy)."""
    forms = st.one_of(_forms(real), _client_post_forms(real)).map(lambda f: (f or "").encode())
    encoded = st.one_of(forms, forms, st.binary(max_size=80)).map(lambda b: base64.b64encode(b).decode())
    return st.one_of(encoded, encoded, st.none(), _TEXT, encoded.map(lambda e: e[:-1]))


def _check(
    world: ClientWorld,
    made: dict[str, Any],
    outcomes: dict[str, int],
    *request: Any,
    base64_encoded: bool = False,
) -> None:
    """One request: a token for the real client only, or a refusal that is the client's to fix."""
    refusal: DomainError | None = None
    try:
        reply = world.grant.token(*request, base64_encoded=base64_encoded)
    except DomainError as exc:  # anything else fails the test: it would be a 500
        refusal = exc
    if refusal is not None:
        assert refusal.status < 500, (type(refusal).__name__, refusal.message)
        assert isinstance(refusal, OAuthError | TooManyAttempts), type(refusal).__name__
        body_out = refusal.body()
        assert body_out["error"] == refusal.code
        if isinstance(refusal, OAuthError):
            assert body_out["error_description"]
        if isinstance(refusal, InvalidClient):
            assert refusal.status == 401
            assert refusal.headers["WWW-Authenticate"].startswith("Basic ")
        outcomes[refusal.code] = outcomes.get(refusal.code, 0) + 1
        return
    claims = world.verifier.verify(reply["access_token"], ACCESS)
    assert claims["client_id"] == made["client_id"]
    assert set(claims["roles"]) <= {"viewer", "developer"}
    outcomes["token"] = outcomes.get("token", 0) + 1


FUZZ = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def test_generated_requests_get_a_token_or_an_oauth_error(world: ClientWorld) -> None:
    made = world.make(roles=("viewer", "developer"))
    other = world.make("globex")
    real = {
        "client_id": made["client_id"],
        "client_secret": made["client_secret"],
        "other_id": other["client_id"],
    }
    outcomes: dict[str, int] = {}

    @given(
        body=_forms(real),
        content_type=_CONTENT_TYPES,
        authorization=_authorizations(real),
        source_ip=_ADDRESSES,
    )
    @FUZZ
    def anything(
        body: str | None, content_type: str | None, authorization: str | None, source_ip: str | None
    ) -> None:
        _check(world, made, outcomes, body, content_type, authorization, source_ip)

    @given(body=_client_post_forms(real), source_ip=_ADDRESSES)
    @FUZZ
    def client_post(body: str, source_ip: str | None) -> None:
        _check(world, made, outcomes, body, FORM, None, source_ip)

    @given(
        body=st.one_of(st.just("grant_type=client_credentials"), _client_post_forms(real)),
        authorization=_authorizations(real),
    )
    @FUZZ
    def client_basic(body: str, authorization: str | None) -> None:
        _check(world, made, outcomes, body, FORM, authorization, "203.0.113.9")

    @given(body=_base64_bodies(real), authorization=_authorizations(real), source_ip=_ADDRESSES)
    @FUZZ
    def base64_bodies(body: str | None, authorization: str | None, source_ip: str | None) -> None:
        _check(world, made, outcomes, body, FORM, authorization, source_ip, base64_encoded=True)

    anything()
    client_post()
    client_basic()
    before = dict(outcomes)
    base64_bodies()
    # base64 bodies reached a token too, and were refused as a request when undecodable
    assert outcomes.get("token", 0) > before.get("token", 0), outcomes
    assert outcomes.get("invalid_request", 0) > before.get("invalid_request", 0), outcomes
    # the generation reached past parsing, to the client checks, the scope and a token
    for code in ("invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope", "token"):
        assert outcomes.get(code, 0) > 0, outcomes
    # no secret in the trail or the table, whatever was sent
    trail = json.dumps(world.publisher.events)
    table = json.dumps(world.ddb.scan(TableName=CLIENTS_TABLE)["Items"], default=str)
    for secret in (made["client_secret"], other["client_secret"]):
        assert secret not in trail
        assert secret not in table
        assert secret[4:20] not in trail + table


def _set_verifiers(world: ClientWorld, tenant: str, client_id: str, verifiers: Any) -> None:
    world.ddb.update_item(
        TableName=CLIENTS_TABLE,
        Key={"tenant_id": {"S": tenant}, "client_id": {"S": client_id}},
        UpdateExpression="SET verifiers = :v",
        ExpressionAttributeValues={":v": verifiers},
    )


def _verifiers_of(world: ClientWorld, tenant: str, client_id: str) -> Any:
    item = world.ddb.get_item(
        TableName=CLIENTS_TABLE, Key={"tenant_id": {"S": tenant}, "client_id": {"S": client_id}}
    )["Item"]
    return item["verifiers"]


def test_a_verifier_copied_across_tenants_authenticates_nobody(world: ClientWorld) -> None:
    """Someone who can write tenant B's items (or a bug that mixes them) copies tenant A's client
    verifier around: A's secret opens nothing of B, nor B's secret anything of A."""
    a = world.make("acme", roles=("tenant-admin",))
    b = world.make("globex", roles=("viewer",))
    world.basic(a["client_id"], a["client_secret"])
    world.basic(b["client_id"], b["client_secret"])
    a_verifiers = _verifiers_of(world, "acme", a["client_id"])
    b_verifiers = _verifiers_of(world, "globex", b["client_id"])
    # A's verifier in B's client: A's secret does not become B's (bound to the id and B's key)
    _set_verifiers(world, "globex", b["client_id"], a_verifiers)
    with pytest.raises(InvalidClient):
        world.basic(b["client_id"], a["client_secret"])
    # A's whole item copied into B's partition, under A's client id: the id names acme, so the
    # endpoint never reads B's partition for it -- and B's copy of it changes nothing of A
    item = world.ddb.get_item(
        TableName=CLIENTS_TABLE, Key={"tenant_id": {"S": "acme"}, "client_id": {"S": a["client_id"]}}
    )["Item"]
    world.ddb.put_item(
        TableName=CLIENTS_TABLE,
        Item={**item, "tenant_id": {"S": "globex"}, "roles": {"L": [{"S": "tenant-admin"}]}},
    )
    claims = world.verifier.verify(world.basic(a["client_id"], a["client_secret"])["access_token"], ACCESS)
    assert claims["tenant_id"] == "acme"
    assert world.store.get("globex", a["client_id"]) is None  # not a client of globex
    # B's verifier in A's client: B's secret does not open A
    _set_verifiers(world, "acme", a["client_id"], b_verifiers)
    with pytest.raises(InvalidClient):
        world.basic(a["client_id"], b["client_secret"])
    with pytest.raises(InvalidClient):  # (nor A's own, whose verifier is gone)
        world.basic(a["client_id"], a["client_secret"])


def test_another_tenants_client_id_with_a_secret_of_this_tenant(world: ClientWorld) -> None:
    a = world.make("acme")
    b = world.make("globex")
    for client_id, secret in (
        (b["client_id"], a["client_secret"]),
        (a["client_id"], b["client_secret"]),
        (new_client_id("globex"), a["client_secret"]),
        (a["client_id"].replace("acme_", "globex_"), a["client_secret"]),
    ):
        with pytest.raises(InvalidClient):
            world.basic(client_id, secret)
        with pytest.raises(InvalidClient):
            world.post(client_id, secret)
