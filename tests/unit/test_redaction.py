"""Secrets are removed from anything about to be logged."""

from __future__ import annotations

import pytest

from tenant_security.redaction import REDACTED, redact, scrub_text


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password",
        "currentPassword",
        "client_secret",
        "access_token",
        "Authorization",
        "x-api-key",
        "backup_codes",
        "totp",
        "code",
        "otp_code",
        "challenge_token",
    ],
)
def test_sensitive_keys_are_redacted(key: str) -> None:
    assert redact({key: "value-123"}) == {key: REDACTED}


def test_nested_structures_are_walked() -> None:
    record = {"user": "alice", "body": {"items": [{"password": "p"}, {"ok": 1}]}}
    assert redact(record) == {"user": "alice", "body": {"items": [{"password": REDACTED}, {"ok": 1}]}}


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl seen", "eyJzdWIiOiJhIn0"),
        ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&issuer=DcisionAI-acme", "JBSWY3DPEHPK3PXP"),
        ("login failed password=hunter2 for alice", "hunter2"),
        ('{"code": "123456"}', "123456"),
    ],
)
def test_secrets_in_free_text_are_scrubbed(text: str, secret: str) -> None:
    assert secret not in scrub_text(text)


def test_ordinary_text_is_left_alone() -> None:
    text = "tenant acme onboarded in 12 steps"
    assert scrub_text(text) == text
