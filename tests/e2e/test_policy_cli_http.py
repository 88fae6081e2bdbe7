"""`tenant-security policy get|set|patch|history` against the local cloud: YAML in and out, the
difference shown before a change, If-Match on what was shown, and nothing changed unasked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tenant_security_tools import cli
from tenant_security_tools.client import Session, save_session
from tests.support.cloud import RunningCloud
from tests.support.identity import mint_token, seed_tenant

pytestmark = pytest.mark.e2e

TENANT = "policli"


@pytest.fixture
def signed_in(platform_cloud: RunningCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    if (
        not platform_cloud.client("dynamodb")
        .get_item(TableName="dcisionai-tenants", Key={"tenant_id": {"S": TENANT}})
        .get("Item")
    ):
        seed_tenant(platform_cloud, TENANT)
    path = tmp_path / "config" / "session.json"
    monkeypatch.setenv("TENANT_SECURITY_SESSION", str(path))
    token = mint_token(platform_cloud, TENANT, "sec", ["security-admin"])
    session = Session(platform_cloud.api_url, TENANT, "sec", token, time.time() + 600)
    save_session(session, path)
    return session


def test_get_prints_the_document_as_yaml(signed_in: Session, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "get"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["access_control"]["ip_whitelist"] == []
    assert "revision" in document
    assert "rollout" in document


def test_patch_shows_the_difference_then_changes_and_history_names_it(
    signed_in: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = tmp_path / "tighter.yaml"
    patch.write_text("security_policies:\n  access_control:\n    session_timeout_minutes: 45\n")
    assert cli.main(["policy", "patch", str(patch), "--dry-run"]) == 0
    shown = capsys.readouterr().err
    assert "access_control.session_timeout_minutes: 480 -> 45" in shown
    assert cli.main(["policy", "patch", str(patch)]) == 2  # no terminal, no --yes: nothing changed
    capsys.readouterr()
    assert cli.main(["policy", "get", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["access_control"]["session_timeout_minutes"] == 480
    assert cli.main(["policy", "patch", str(patch), "--yes", "--json"]) == 0
    captured = capsys.readouterr()
    assert "access_control.session_timeout_minutes: 480 -> 45" in captured.err
    assert json.loads(captured.out)["access_control"]["session_timeout_minutes"] == 45
    assert cli.main(["policy", "history", "--json"]) == 0
    newest = json.loads(capsys.readouterr().out)["items"][0]
    assert newest["changes"] == [{"field": "access_control.session_timeout_minutes", "old": 480, "new": 45}]


def test_set_replaces_the_whole_document_and_a_lockout_needs_force(
    signed_in: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "policy.yaml"
    document.write_text("access_control:\n  ip_whitelist: [10.0.0.0/8]\n")
    assert cli.main(["policy", "set", str(document), "--yes"]) == 1  # would_lock_out: refused
    assert "would_lock_out" in capsys.readouterr().err
    document.write_text("access_control:\n  ip_whitelist: [127.0.0.0/8]\n")
    assert cli.main(["policy", "set", str(document), "--yes", "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert stored["access_control"]["ip_whitelist"] == ["127.0.0.0/8"]
    assert stored["access_control"]["session_timeout_minutes"] == 480  # omitted: the default
