"""Secrets, tokens, passwords and one-time codes never reach a log line (captured logs)."""

from __future__ import annotations

import json

import pytest

from tenant_security.observability import make_logger

SECRETS = {
    "password": "Tr0ub4dor&3-correct-horse",
    "totp": "492039",
    "token": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.AAAABBBBCCCC",
    "mfa_secret": "JBSWY3DPEHPK3PXPJBSWY3DP",
}


def test_extra_fields_messages_and_exceptions_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    logger = make_logger(service="redaction-test")
    logger.info("sign-in attempt", extra={"username": "alice", **SECRETS})
    logger.info(f"verify with Bearer {SECRETS['token']} and password={SECRETS['password']}")
    logger.info(
        {"event": {"headers": {"Authorization": f"Bearer {SECRETS['token']}"}, "body": {"code": "492039"}}}
    )
    try:
        raise ValueError(f"bad otpauth://totp/alice?secret={SECRETS['mfa_secret']}")
    except ValueError:
        logger.exception("enrolment failed")
    logger.append_keys(session_token=SECRETS["token"])
    logger.warning("with an appended key")

    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(lines) == 5
    for value in SECRETS.values():
        assert value not in out
    assert lines[0]["username"] == "alice"  # ordinary fields survive
