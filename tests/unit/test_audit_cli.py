"""`tenant-security audit bundle`'s bounds and retries, and `audit verify`'s choice between the
online (stack credentials) and offline (--bundle) verification, without a cloud."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from tenant_security_tools import audit_cli, cli
from tenant_security_tools.client import ApiError


def _args(**given: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"first": None, "last": None, "since_checkpoint": None, **given})


def test_a_bundle_holds_at_most_10000_records_and_says_how_to_page() -> None:
    assert audit_cli._range(_args(), 10_000) == (1, 10_000)
    assert audit_cli._range(_args(first=10_001), 20_000) == (10_001, 20_000)
    with pytest.raises(
        audit_cli.BundleUsage, match=r"at most 10000; page with --from/--to \(--from 1 --to 10000"
    ):
        audit_cli._range(_args(), 10_001)
    for first, last in ((0, 5), (3, 2), (1, 11)):
        with pytest.raises(audit_cli.BundleUsage, match=r"covers records 1\.\.10"):
            audit_cli._range(_args(first=first, last=last), 10)


def test_the_rate_limit_is_waited_out_and_other_refusals_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_cli.time, "sleep", lambda _seconds: None)
    answers: list[Any] = [ApiError(429, "too_many_requests", "slow down"), ApiError(503, "x", "y"), b"ok"]

    def fetch(path: str) -> bytes:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert path == "/p"
        return bytes(answer)

    assert audit_cli._retrying(fetch, "/p") == b"ok"
    answers[:] = [ApiError(403, "forbidden", "no")]
    with pytest.raises(ApiError):
        audit_cli._retrying(fetch, "/p")
    answers[:] = [ApiError(429, "too_many_requests", "slow down")] * audit_cli._TRIES
    with pytest.raises(ApiError):
        audit_cli._retrying(fetch, "/p")
    assert answers == []  # tried exactly _TRIES times


def test_audit_verify_runs_online_without_bundle_and_offline_with_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    audit = parser.add_subparsers(dest="audit")
    verify = audit.add_parser("verify")
    verify.add_argument("--tenant")
    online: list[str] = []
    audit_cli.add_audit_commands(
        audit,
        verify,
        lambda args: online.append(args.tenant) or 4,
        cli._session,
        cli._api_failure,
        cli.UsageError,
    )
    args = parser.parse_args(["verify", "--tenant", "acme"])
    assert args.run(args) == 4  # the operator's verification, as before
    assert online == ["acme"]
    offline: list[str] = []
    monkeypatch.setattr(audit_cli, "verify_offline", lambda args: offline.append(args.bundle) or 0)
    assert cli.main(["audit", "verify", "--bundle", str(tmp_path / "b.json")]) == cli.EXIT_OK
    assert offline == [str(tmp_path / "b.json")]
    assert online == ["acme"]
    assert cli.main(["audit", "verify"]) == cli.EXIT_USAGE
    assert cli.main(["audit", "verify", "--tenant", "acme", "--keys", "k.json"]) == cli.EXIT_USAGE
    assert "--keys goes with --bundle" in capsys.readouterr().err


def test_unreadable_bundle_or_keys_files_are_usage_errors(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    (tmp_path / "keys.json").write_text('{"no": "keys"}')
    for argv in (
        ["--bundle", str(tmp_path / "missing.json")],
        ["--bundle", str(tmp_path / "text.json")],
        ["--bundle", str(tmp_path / "other.json")],
        ["--bundle", str(tmp_path / "other.json"), "--keys", str(tmp_path / "keys.json")],
    ):
        assert cli.main(["audit", "verify", *argv]) == cli.EXIT_USAGE, argv
    err = capsys.readouterr().err
    assert "not JSON" in err
    assert "not an audit bundle" in err
    assert "not a JWKS" in err
