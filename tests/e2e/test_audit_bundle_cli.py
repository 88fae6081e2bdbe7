"""`tenant-security audit bundle` over HTTP through the local cloud as an auditor, then
`tenant-security audit verify --bundle` offline: no endpoint, no credentials, no session and every
network connection refused. One edited byte and a swapped key are each named."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tenant_security_tools import cli
from tenant_security_tools.client import Session, save_session
from tests.support import rfc9162
from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import mint_token, seed_tenant

BUS = "dcisionai-platform"
TENANT = "audit-bundle"
WRITER = "dcisionai-audit-writer"


def _put_activity(cloud: RunningCloud, start: int, count: int) -> None:
    entries = [
        {
            "Source": "dcisionai.tenant-security",
            "DetailType": "User Activity",
            "Detail": json.dumps(
                {
                    "event_id": f"{TENANT}-{n}",
                    "tenant_id": TENANT,
                    "action": "files:Read",
                    "category": "data",
                    "outcome": "success",
                    "user": f"user-{n % 3}",
                    "source_ip": "10.0.0.1",
                }
            ),
            "EventBusName": BUS,
        }
        for n in range(start, start + count)
    ]
    assert cloud.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0


def _head(cloud: RunningCloud) -> int:
    item = (
        cloud.client("dynamodb")
        .get_item(TableName="dcisionai-audit-heads", Key={"tenant_id": {"S": TENANT}}, ConsistentRead=True)
        .get("Item")
    )
    return int(item["sequence"]["N"]) if item else 0


def _checkpoint_now(cloud: RunningCloud, auditor: str, at_least: int) -> dict[str, Any]:
    """The writer's hourly run, invoked now: a signed checkpoint of every chain that grew."""
    wait_for(lambda: _head(cloud) >= at_least, timeout=120, interval=0.5)
    tick = {
        "source": "aws.events",
        "detail-type": "Scheduled Event",
        "time": "2026-12-02T10:00:00Z",
        "detail": {},
    }
    reply = cloud.client("lambda").invoke(FunctionName=WRITER, Payload=json.dumps(tick).encode())
    assert "FunctionError" not in reply, reply["Payload"].read()

    def latest() -> dict[str, Any] | None:
        answer = cloud.http(
            "GET", f"/tenants/{TENANT}/audit/checkpoint", headers={"Authorization": f"Bearer {auditor}"}
        )
        checkpoint = answer.json() if answer.status_code == 200 else None
        return checkpoint if checkpoint and checkpoint["tree_size"] >= at_least else None

    found: dict[str, Any] = wait_for(latest, timeout=30, interval=0.5)
    return found


@pytest.fixture
def session_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "session.json"
    monkeypatch.setenv("TENANT_SECURITY_SESSION", str(path))
    return path


def _sign_in(cloud: RunningCloud, session_file: Path, tenant: str, roles: list[str]) -> str:
    token = mint_token(cloud, tenant, "aud", roles)
    save_session(Session(cloud.api_url, tenant, "aud", token, time.time() + 600), session_file)
    return token


class Offline:
    """No AWS endpoint or credentials, no API URL, no session, and every connection refused."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.attempts: list[Any] = []
        for name in list(os.environ):
            if name.startswith(("AWS_", "TENANT_SECURITY_")) or name.lower().endswith("_proxy"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("TENANT_SECURITY_SESSION", str(tmp_path / "no-session.json"))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws either

        def refuse(_socket: socket.socket, address: Any) -> None:
            self.attempts.append(address)
            raise OSError("offline: no network in this test")

        monkeypatch.setattr(socket.socket, "connect", refuse)
        monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="module")
def bundled(
    platform_cloud: RunningCloud, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict[str, Any]]:
    """An auditor's bundle of the tenant's trail, and the keys they fetched themselves."""
    directory = tmp_path_factory.mktemp("audit-bundle")
    seed_tenant(platform_cloud, TENANT)
    with pytest.MonkeyPatch.context() as patch:
        session_file = directory / "config" / "session.json"
        patch.setenv("TENANT_SECURITY_SESSION", str(session_file))
        auditor = _sign_in(platform_cloud, session_file, TENANT, ["auditor"])
        _put_activity(platform_cloud, 0, 6)
        checkpoint = _checkpoint_now(platform_cloud, auditor, 6)
        out = directory / "bundle.json"
        assert cli.main(["audit", "bundle", "--out", str(out)]) == cli.EXIT_OK
    keys = directory / "audit-keys.json"  # "independently": straight from the well-known URL
    keys.write_text(platform_cloud.http("GET", "/.well-known/audit-keys.json").text)
    return out, keys, checkpoint


def test_an_auditors_bundle_verifies_offline_and_holds_the_stored_bytes(
    bundled: tuple[Path, Path, dict[str, Any]],
    platform_cloud: RunningCloud,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, keys, checkpoint = bundled
    bundle = json.loads(out.read_text())
    size = bundle["checkpoint"]["tree_size"]
    assert bundle["tenant_id"] == TENANT
    assert size >= checkpoint["tree_size"]
    assert [r["sequence"] for r in bundle["records"]] == list(range(1, size + 1))
    stored = [base64.b64decode(r["stored"]) for r in bundle["records"]]
    # the independent RFC verifier: the leaves recomputed from the bytes make the signed root
    assert rfc9162.mth(stored) == base64.b64decode(bundle["checkpoint"]["root_hash"])
    token = mint_token(platform_cloud, TENANT, "aud", ["auditor"])
    served = platform_cloud.http(
        "GET", f"/tenants/{TENANT}/audit/records/3", headers={"Authorization": f"Bearer {token}"}
    )
    assert served.content == stored[2]  # byte for byte what the record route serves

    offline = Offline(monkeypatch, tmp_path)
    capsys.readouterr()
    argv = ["audit", "verify", "--bundle", str(out), "--keys", str(keys)]
    assert cli.main(argv) == cli.EXIT_OK
    assert capsys.readouterr().out.startswith(f"VALID: records 1..{size} of {TENANT}'s checkpoint")
    assert cli.main(["audit", "verify", "--bundle", str(out), "--json"]) == cli.EXIT_OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["checked"] == size
    assert "--keys" in captured.err  # keys from the bundle itself: the auditor is told
    assert offline.attempts == []


def test_one_edited_byte_or_another_key_is_invalid_and_named(
    bundled: tuple[Path, Path, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, keys, _ = bundled
    bundle = json.loads(out.read_text())
    Offline(monkeypatch, tmp_path)
    edited = json.loads(json.dumps(bundle))
    stored = bytearray(base64.b64decode(edited["records"][3]["stored"]))
    stored[stored.index(b'"sequence":4') - 1] ^= 0x01  # one byte, in the JSON's punctuation
    edited["records"][3]["stored"] = base64.b64encode(bytes(stored)).decode()
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    capsys.readouterr()
    assert cli.main(["audit", "verify", "--bundle", str(tmp_path / "edited.json"), "--keys", str(keys)]) == 4
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("INVALID")
    assert "  sequence 4: inclusion_failed: its stored bytes are not leaf 3" in "\n".join(lines)
    assert {line.split(":")[0].strip() for line in lines[1:]} == {"sequence 4"}

    impostor = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(impostor.public_key()))
    kid = bundle["checkpoint"]["key_id"]
    forged_keys = {"keys": [{**jwk, "kid": kid, "alg": "ES256", "use": "sig"}]}
    (tmp_path / "forged-keys.json").write_text(json.dumps(forged_keys))
    (tmp_path / "swapped.json").write_text(json.dumps({**bundle, "keys": forged_keys}))
    size = bundle["checkpoint"]["tree_size"]
    for argv in (
        ["--bundle", str(tmp_path / "swapped.json")],
        ["--bundle", str(out), "--keys", str(tmp_path / "forged-keys.json")],
    ):
        assert cli.main(["audit", "verify", *argv, "--json"]) == cli.EXIT_INVALID
        report = json.loads(capsys.readouterr().out)
        assert [(p["sequence"], p["kind"]) for p in report["problems"]] == [
            (size, "bad_checkpoint_signature")
        ]
    # the auditor's own keys tell the swap in the bundle apart
    assert cli.main(["audit", "verify", "--bundle", str(tmp_path / "swapped.json"), "--keys", str(keys)]) == 0


def test_a_later_bundle_proves_the_earlier_checkpoint_a_prefix(
    bundled: tuple[Path, Path, dict[str, Any]],
    platform_cloud: RunningCloud,
    session_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, keys, _ = bundled
    first = json.loads(out.read_text())["checkpoint"]
    auditor = _sign_in(platform_cloud, session_file, TENANT, ["auditor"])
    _put_activity(platform_cloud, 100, 3)
    second = _checkpoint_now(platform_cloud, auditor, first["tree_size"] + 3)
    later = tmp_path / "later.json"
    start = str(first["tree_size"] + 1)
    argv = ["audit", "bundle", "--from", start, "--out", str(later), "--since-checkpoint", str(out), "--json"]
    assert cli.main(argv) == cli.EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert (summary["status"], summary["from"], summary["consistency_checked"]) == ("VALID", int(start), True)
    bundle = json.loads(later.read_text())
    assert bundle["consistency"]["first"] == first["tree_size"]
    assert bundle["consistency"]["second"] == bundle["checkpoint"]["tree_size"] >= second["tree_size"]
    Offline(monkeypatch, tmp_path)
    assert cli.main(["audit", "verify", "--bundle", str(later), "--keys", str(keys)]) == cli.EXIT_OK
    proof = bundle["consistency"]["proof"]
    proof[0] = base64.b64encode(bytes(32)).decode()  # a proof from another history
    (tmp_path / "forked.json").write_text(json.dumps(bundle))
    capsys.readouterr()
    assert cli.main(["audit", "verify", "--bundle", str(tmp_path / "forked.json"), "--keys", str(keys)]) == 4
    assert f"sequence {bundle['consistency']['second']}: consistency_failed" in capsys.readouterr().out
    # an older checkpoint whose root was changed: a root it did not sign
    changed = {**first, "root_hash": base64.b64encode(bytes(32)).decode()}
    bundle["consistency"] = {**json.loads(later.read_text())["consistency"], "checkpoint": changed}
    (tmp_path / "changed.json").write_text(json.dumps(bundle))
    assert cli.main(["audit", "verify", "--bundle", str(tmp_path / "changed.json"), "--keys", str(keys)]) == 4
    assert f"sequence {first['tree_size']}: checkpoint_mismatch" in capsys.readouterr().out


def test_only_an_auditor_of_the_tenant_can_bundle_it_and_only_what_a_checkpoint_covers(
    bundled: tuple[Path, Path, dict[str, Any]],
    platform_cloud: RunningCloud,
    session_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed_tenant(platform_cloud, "audit-bundle-x")
    out = tmp_path / "refused.json"
    _sign_in(platform_cloud, session_file, TENANT, ["viewer"])
    assert cli.main(["audit", "bundle", "--out", str(out)]) == cli.EXIT_AUTH  # 403: no audit:Read
    _sign_in(platform_cloud, session_file, "audit-bundle-x", ["auditor"])
    assert (
        cli.main(["audit", "bundle", "--tenant", TENANT, "--out", str(out)]) == cli.EXIT_AUTH
    )  # another tenant
    assert not out.exists()
    token = _sign_in(platform_cloud, session_file, TENANT, ["auditor"])
    capsys.readouterr()
    latest = platform_cloud.http(
        "GET", f"/tenants/{TENANT}/audit/checkpoint", headers={"Authorization": f"Bearer {token}"}
    )
    size = latest.json()["tree_size"]
    assert cli.main(["audit", "bundle", "--to", str(size + 1), "--out", str(out)]) == cli.EXIT_USAGE
    assert f"covers records 1..{size}" in capsys.readouterr().err
    assert cli.main(["audit", "bundle", "--from", "0", "--to", "1", "--out", str(out)]) == cli.EXIT_USAGE
    assert not out.exists()
