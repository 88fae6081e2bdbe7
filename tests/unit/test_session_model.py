"""The session model: what a session keeps of its client, how older items read, how the API
shows one, and the page tokens of the tenant's listing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenant_security.administration.sessions import SESSION_ID, decode_next, session_view
from tenant_security.dynamo import to_item
from tenant_security.errors import ValidationFailed
from tenant_security.identity.sessions import (
    MAX_SOURCE_IP_CHARS,
    MAX_USER_AGENT_CHARS,
    Session,
    _session,
    client_text,
)
from tenant_security.models.replies import SessionList, SessionPage
from tenant_security.paging import encode_next

OLD_ITEM = {
    "tenant_id": "acme",
    "session_id": "s" * 32,
    "username": "alice",
    "amr": ["pwd", "otp"],
    "scope": "full",
    "created_at": 1_700_000_000,
    "expires_at": 1_700_003_600,
    "revoked": False,
}


def test_a_session_stored_before_the_client_fields_reads_with_none() -> None:
    session = _session(to_item(OLD_ITEM))
    assert session.source_ip is None
    assert session.user_agent is None
    assert session.live(1_700_000_001)


def test_a_session_with_its_client_reads_back_and_absent_fields_are_not_stored() -> None:
    stored = to_item({**OLD_ITEM, "source_ip": "203.0.113.7", "user_agent": "curl/8.5"})
    session = _session(stored)
    assert (session.source_ip, session.user_agent) == ("203.0.113.7", "curl/8.5")
    assert "user_agent" not in to_item(Session(**{**OLD_ITEM, "amr": ["pwd"]}).__dict__)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("evil\r\nSet-Cookie: x=1", "evilSet-Cookie: x=1"),  # no control character survives
        ("\x00\x1b[31mred", "[31mred"),
        ("a" * 10_000, "a" * MAX_USER_AGENT_CHARS),
    ],
)
def test_a_user_agent_is_kept_printable_and_short(value: str | None, kept: str | None) -> None:
    assert client_text(value, MAX_USER_AGENT_CHARS) == kept


@given(st.text(max_size=2000))
def test_whatever_a_client_sends_a_session_keeps_at_most_the_limit_of_printable_text(value: str) -> None:
    kept = client_text(value, MAX_USER_AGENT_CHARS)
    assert kept is None or (0 < len(kept) <= MAX_USER_AGENT_CHARS and kept.isprintable())
    address = client_text(value, MAX_SOURCE_IP_CHARS)
    assert address is None or len(address) <= MAX_SOURCE_IP_CHARS


def test_the_api_view_of_a_session() -> None:
    session = _session(to_item({**OLD_ITEM, "source_ip": "2001:db8::1", "user_agent": "cli/1"}))
    view = session_view(session, current_session="s" * 32)
    assert view == {
        "session_id": "s" * 32,
        "username": "alice",
        "created_at": "2023-11-14T22:13:20+00:00",
        "expires_at": "2023-11-14T23:13:20+00:00",
        "source_ip": "2001:db8::1",
        "user_agent": "cli/1",
        "current": True,
    }
    assert session_view(session, current_session="other")["current"] is False
    assert session_view(session, current_session=None)["current"] is False
    # the reply models describe exactly these (and an old session's nulls)
    SessionList.model_validate({"items": [view, session_view(_session(to_item(OLD_ITEM)), None)]})
    SessionPage.model_validate({"items": [view], "next": None})


def test_page_tokens_carry_a_session_id_and_nothing_else() -> None:
    sid = "AbC-_0123456789abcdefghijklmnopq"
    assert SESSION_ID.fullmatch(sid)
    assert decode_next(encode_next(sid)) == sid
    for forged in ("not base64!", encode_next("../../x"), encode_next(""), encode_next("a" * 65), "", "===="):
        with pytest.raises(ValidationFailed):
            decode_next(forged)


@pytest.mark.parametrize(
    "sid", ["short", "a" * 65, "has space in it......", "semi;colon;0123456789", "é" * 20]
)
def test_what_is_not_a_session_id(sid: str) -> None:
    assert SESSION_ID.fullmatch(sid) is None
