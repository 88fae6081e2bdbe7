"""The token endpoint's request parsing (RFC 6749 §3.2, §2.3.1, §3.3) and its error shapes (§5.2)."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus, urlencode

import pytest

from tenant_security.identity.client_credentials import (
    MAX_FORM_BYTES,
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
    client_credentials,
    form_text,
    requested_roles,
    server_metadata,
    token_form,
)

FORM = "application/x-www-form-urlencoded"
CLIENT = "acme_0123456789abcdef0123"
SECRET = "tsk_" + "a" * 49


def basic(client_id: str, secret: str, *, encode: bool = True) -> str:
    """HTTP Basic as RFC 6749 §2.3.1 says: each part form-urlencoded first."""
    if encode:
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# ------------------------------------------------------------------ token_form
@pytest.mark.parametrize(
    "content_type",
    [FORM, "application/x-www-form-urlencoded; charset=UTF-8", "Application/X-WWW-Form-Urlencoded"],
)
def test_the_form_media_type_with_or_without_parameters(content_type: str) -> None:
    form = token_form("grant_type=client_credentials&scope=viewer", content_type)
    assert form == {"grant_type": "client_credentials", "scope": "viewer"}


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "text/plain", "multipart/form-data", "application/x-www"]
)
def test_another_media_type_is_invalid_request(content_type: str | None) -> None:
    with pytest.raises(InvalidRequest):
        token_form("grant_type=client_credentials", content_type)


@pytest.mark.parametrize(
    "body",
    [
        "grant_type=client_credentials&grant_type=client_credentials",
        "scope=a&grant_type=client_credentials&scope=b",
        "client_id=a&client_id=a",
        "grant_type=client_credentials&grant_type=",
    ],
)
def test_a_parameter_sent_twice_is_invalid_request(body: str) -> None:
    with pytest.raises(InvalidRequest, match="more than once"):
        token_form(body, FORM)


def test_the_size_bound() -> None:
    filler = "x" * (MAX_FORM_BYTES - len("grant_type=client_credentials&pad="))
    assert "pad" in token_form(f"grant_type=client_credentials&pad={filler}", FORM)
    with pytest.raises(InvalidRequest, match="larger"):
        token_form(f"grant_type=client_credentials&pad={filler}x", FORM)


@pytest.mark.parametrize("body", ["grant_type", "a=1&&b=2", "%ff%fe=1", "a=%ff", "&", "a=1&b"])
def test_a_malformed_body_is_invalid_request(body: str) -> None:
    with pytest.raises(InvalidRequest):
        token_form(body, FORM)


def test_an_empty_body_is_an_empty_form() -> None:
    assert token_form("", FORM) == {}
    assert token_form(None, FORM) == {}


def test_percent_and_plus_encoding_are_decoded() -> None:
    form = token_form(urlencode({"client_secret": "a+b c/d=", "scope": "viewer developer"}), FORM)
    assert form == {"client_secret": "a+b c/d=", "scope": "viewer developer"}


# ------------------------------------------------------------------ client authentication
def test_a_base64_encoded_body_is_decoded_as_utf8() -> None:
    """API Gateway hands a binary media type's body base64-encoded: decoded inside, as UTF-8."""
    text = "grant_type=client_credentials&scope=caf%C3%A9 é"
    assert form_text(base64.b64encode(text.encode()).decode(), True) == text
    assert form_text(text, False) == text  # not marked: as sent
    assert form_text(None, True) is None


@pytest.mark.parametrize(
    "body",
    [
        "not base64 at all!",
        base64.b64encode(b"grant_type=x").decode()[:-1],  # bad padding
        base64.b64encode(b"\xff\xfegrant_type=client_credentials").decode(),  # not UTF-8
    ],
)
def test_a_body_that_is_no_base64_of_utf8_is_invalid_request(body: str) -> None:
    with pytest.raises(InvalidRequest):
        form_text(body, True)


def test_client_secret_basic_decodes_form_urlencoded_parts() -> None:
    assert client_credentials({}, basic(CLIENT, SECRET)) == (CLIENT, SECRET)
    # §2.3.1: a ':' or a '+' inside a part arrives encoded and is decoded
    assert client_credentials({}, basic("id:with+plus", "se:cret+x y")) == ("id:with+plus", "se:cret+x y")
    # a library that does not pre-encode plain characters still works
    assert client_credentials({}, basic(CLIENT, SECRET, encode=False)) == (CLIENT, SECRET)
    assert client_credentials({}, "basic " + basic(CLIENT, SECRET).split(" ")[1]) == (CLIENT, SECRET)


def test_client_secret_post() -> None:
    assert client_credentials({"client_id": CLIENT, "client_secret": SECRET}, None) == (CLIENT, SECRET)
    assert client_credentials({"client_id": CLIENT, "client_secret": SECRET}, "  ") == (CLIENT, SECRET)


def test_both_methods_are_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="one client authentication method"):
        client_credentials({"client_id": CLIENT, "client_secret": SECRET}, basic(CLIENT, SECRET))
    with pytest.raises(InvalidRequest):  # a secret in the body besides Basic, even without client_id
        client_credentials({"client_secret": SECRET}, basic(CLIENT, SECRET))


def test_a_body_client_id_other_than_basics_is_invalid_request() -> None:
    assert client_credentials({"client_id": CLIENT}, basic(CLIENT, SECRET)) == (CLIENT, SECRET)
    with pytest.raises(InvalidRequest, match="not the authenticated client"):
        client_credentials({"client_id": "globex_0123456789abcdef0123"}, basic(CLIENT, SECRET))
    with pytest.raises(InvalidRequest):
        client_credentials({"client_id": ""}, basic(CLIENT, SECRET))


@pytest.mark.parametrize(
    "form",
    [{}, {"client_id": CLIENT}, {"client_secret": SECRET}, {"client_id": "", "client_secret": SECRET}],
)
def test_no_client_authentication_is_invalid_client(form: dict[str, str]) -> None:
    with pytest.raises(InvalidClient) as refused:
        client_credentials(form, None)
    assert refused.value.audit_reason == "no_client_authentication"


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (
            "Bearer " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode(),
            "unsupported_authorization_scheme",
        ),
        ("Digest username=x", "unsupported_authorization_scheme"),
        (base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode(), "unsupported_authorization_scheme"),
        ("Basic", "malformed_basic_credentials"),
        ("Basic !!!notbase64", "malformed_basic_credentials"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "malformed_basic_credentials"),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "malformed_basic_credentials"),
    ],
)
def test_a_non_basic_or_broken_authorization_is_invalid_client(authorization: str, reason: str) -> None:
    with pytest.raises(InvalidClient) as refused:
        client_credentials({}, authorization)
    assert refused.value.audit_reason == reason


# ------------------------------------------------------------------ scope
HELD = ("developer", "viewer", "reader")


def test_no_scope_is_every_role_held() -> None:
    assert requested_roles(None, HELD) == list(HELD)
    assert requested_roles("", HELD) == list(HELD)
    assert requested_roles("   ", HELD) == list(HELD)


def test_a_scope_is_a_subset_in_the_clients_order() -> None:
    assert requested_roles("viewer", HELD) == ["viewer"]
    assert requested_roles("reader developer", HELD) == ["developer", "reader"]  # the client's order
    assert requested_roles("viewer viewer", HELD) == ["viewer"]


@pytest.mark.parametrize("scope", ["tenant-admin", "viewer platform-admin", "Viewer"])
def test_a_scope_beyond_the_clients_roles_is_invalid_scope(scope: str) -> None:
    with pytest.raises(InvalidScope, match="does not hold"):
        requested_roles(scope, HELD)


@pytest.mark.parametrize(
    "scope", ['view"er', "viewer\\", "viewer  developer", "viewer\tdeveloper", " viewer", "é"]
)
def test_a_scope_token_outside_rfc_6749_3_3_is_invalid_scope(scope: str) -> None:
    with pytest.raises(InvalidScope):
        requested_roles(scope, HELD)


# ------------------------------------------------------------------ error shapes
@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidRequest("x"), 400, "invalid_request"),
        (UnsupportedGrantType("x"), 400, "unsupported_grant_type"),
        (InvalidScope("x"), 400, "invalid_scope"),
        (UnauthorizedClient("x"), 400, "unauthorized_client"),
        (InvalidClient("invalid_secret"), 401, "invalid_client"),
    ],
)
def test_errors_have_rfc_6749_5_2_bodies(error: OAuthError, status: int, code: str) -> None:
    assert error.status == status
    body = error.body()
    assert body["error"] == code
    assert body["error_description"] == body["message"] == error.message
    assert set(body) == {"error", "error_description", "message"}
    # §5.2: error_description is printable ASCII without '"' or '\'
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in body["error_description"])


def test_invalid_client_has_www_authenticate_and_tells_the_client_nothing() -> None:
    errors = [InvalidClient(reason) for reason in ("unknown_client", "invalid_secret", "client_expired")]
    for error in errors:
        assert error.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert error.audit_reason not in str(error.body())
    assert len({str(e.body()) for e in errors}) == 1  # the same answer whatever the reason


def test_server_metadata_lists_what_the_endpoint_supports() -> None:
    meta = server_metadata("https://issuer", "https://api.example")
    assert meta["issuer"] == "https://issuer"
    assert meta["token_endpoint"] == "https://api.example/oauth2/token"
    assert meta["jwks_uri"] == "https://api.example/.well-known/jwks.json"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert meta["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
