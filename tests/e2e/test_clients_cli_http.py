"""`tenant-security clients create|list|rotate|delete` and `login --client-id ID --client-secret-stdin`
against the local cloud: a tenant-admin signs in (a person), makes an API client, lists it and
rotates its secret; the client signs in with the secret on stdin and runs what its role allows;
the client is deleted and its saved token is refused. The secrets are in no file the CLI wrote
(nor anywhere under its home and working directory) and not in the local cloud's log."""

from __future__ import annotations

import functools
import http.client
import io
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from localcloud.xray import TRACES_FILE
from tenant_security.identity.client_secrets import SECRET_PATTERN
from tenant_security_tools import cli
from tenant_security_tools.client import SessionKind, load_session
from tests.support.cloud import RunningCloud
from tests.support.identity import Identity, create_user, first_sign_in, seed_tenant, seen

pytestmark = pytest.mark.e2e

TENANT = "cli-mach"
# the CLI's own source address: its sign-ins and token requests fill no other test's throttle
CLI_ADDRESS = "127.0.0.93"
CONSOLE_SCRIPT = Path(sys.executable).parent / "tenant-security"


@pytest.fixture
def from_cli_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's requests (urllib, plain HTTP to the local cloud) come from :data:`CLI_ADDRESS`."""
    bound = functools.partial(http.client.HTTPConnection, source_address=(CLI_ADDRESS, 0))
    monkeypatch.setattr(urllib.request.HTTPHandler, "http_open", lambda self, req: self.do_open(bound, req))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home and a working directory of the test's own: everything the CLI writes lands under it."""
    directory = tmp_path / "home"
    directory.mkdir()
    monkeypatch.setenv("HOME", str(directory))
    monkeypatch.chdir(directory)
    for name in ("TENANT_SECURITY_API_URL", "LOCALCLOUD_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return directory


@pytest.fixture
def tenant_admin(platform_cloud: RunningCloud, platform_admin: Identity) -> Identity:
    """A tenant-admin of :data:`TENANT` past the first sign-in (MFA enrolled, own password)."""
    seed_tenant(platform_cloud, TENANT)
    password = create_user(platform_cloud, platform_admin, TENANT, "mira", ["tenant-admin"])
    return first_sign_in(platform_cloud, TENANT, "mira", password)


def _use_session(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("TENANT_SECURITY_SESSION", str(path))


def _run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = ""
) -> tuple[int, str, str]:
    """``tenant-security argv`` with ``stdin`` on its standard input: the exit code, stdout, stderr."""
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _files_holding(root: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            found += [f"{path} holds secret #{i}" for i, secret in enumerate(secrets) if secret in text]
    return found


def test_a_tenant_admin_makes_a_client_that_signs_in_from_stdin_until_it_is_deleted(
    platform_cloud: RunningCloud,
    tenant_admin: Identity,
    home: Path,
    from_cli_address: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = platform_cloud.api_url
    person_path, client_path = home / "person" / "session.json", home / "machine" / "session.json"

    # the person: password on stdin, a backup code at the prompt
    _use_session(monkeypatch, person_path)
    monkeypatch.setattr(cli, "ask", lambda label: tenant_admin.backup_codes[0])
    argv = ["login", "--api", api, "--tenant", TENANT, "--username", "mira", "--password-stdin"]
    code, out, err = _run(capsys, monkeypatch, argv, tenant_admin.password + "\n")
    assert code == cli.EXIT_OK, err
    person = load_session(person_path)
    assert person is not None
    assert not person.is_client

    # create: the secret once, on stdout (the JSON reply with --json), a warning on stderr
    argv = ["clients", "create", "nightly-audit", "-r", "auditor", "--expires-in-days", "7", "--json"]
    code, out, err = _run(capsys, monkeypatch, argv)
    assert code == cli.EXIT_OK, err
    created = json.loads(out)
    first_secret, client_id = created["client_secret"], created["client_id"]
    seen(first_secret)
    assert re.fullmatch(SECRET_PATTERN, first_secret)
    assert client_id.startswith(f"{TENANT}_")
    assert created["roles"] == ["auditor"]
    assert out.count(first_secret) == 1
    assert first_secret not in err
    assert "shown only this once" in err

    # list: a table with the client, and JSON without any secret
    code, out, err = _run(capsys, monkeypatch, ["clients", "list"])
    assert code == cli.EXIT_OK, err
    header, *rows = out.splitlines()
    assert header.split() == ["client_id", "name", "roles", "expires_at", "last_used_at"]
    [row] = [r.split() for r in rows if r.startswith(client_id)]
    assert row[1:3] == ["nightly-audit", "auditor"]
    assert row[4] == "-"  # never used yet
    code, out, err = _run(capsys, monkeypatch, ["clients", "list", "--json"])
    assert code == cli.EXIT_OK, err
    assert client_id in [item["client_id"] for item in json.loads(out)["items"]]
    assert "client_secret" not in out
    assert "tsk_" not in out

    # rotate (no grace): a new secret once; the first one no longer signs in
    code, out, err = _run(capsys, monkeypatch, ["clients", "rotate", client_id])
    assert code == cli.EXIT_OK, err
    [secret] = re.findall(SECRET_PATTERN, out)
    seen(secret)
    assert secret != first_secret
    assert "shown only this once" in err

    _use_session(monkeypatch, client_path)
    login = ["login", "--api", api, "--client-id", client_id, "--client-secret-stdin"]
    code, out, err = _run(capsys, monkeypatch, login, first_secret)
    assert code == cli.EXIT_AUTH
    assert "refused: invalid_client: client authentication failed" in err
    assert not client_path.exists()

    # the client signs in, the installed console script with the secret piped to it as the
    # README shows (printf %s "$SECRET" | ...), no --tenant (its id names it)
    piped = subprocess.run(
        [str(CONSOLE_SCRIPT), *login],
        input=secret,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TENANT_SECURITY_SESSION": str(client_path)},
    )
    assert piped.returncode == cli.EXIT_OK, piped.stderr
    assert f"signed in as API client {client_id} of {TENANT}" in piped.stdout
    assert secret not in piped.stdout + piped.stderr  # never echoed
    machine = load_session(client_path)
    assert machine is not None
    assert (machine.tenant_id, machine.username, machine.kind) == (TENANT, client_id, SessionKind.CLIENT)
    seen(machine.access_token)

    # what its role allows works; what no machine may do is refused
    code, out, err = _run(capsys, monkeypatch, ["status"])
    assert code == cli.EXIT_OK, err
    assert re.search(rf"signed in as\s+{client_id} \(API client", out)
    assert re.search(r"status\s+ACTIVE", out)
    code, out, err = _run(capsys, monkeypatch, ["policy", "get", "--json"])
    assert code == cli.EXIT_OK, err
    assert "access_control" in json.loads(out)
    code, out, err = _run(capsys, monkeypatch, ["clients", "create", "successor", "-r", "auditor"])
    assert code == cli.EXIT_AUTH  # auditor holds no clients:Create, and no machine makes machines
    assert "tsk_" not in out

    # the person deletes the client: its saved token is refused from the next request
    _use_session(monkeypatch, person_path)
    code, out, err = _run(capsys, monkeypatch, ["clients", "list"])
    assert code == cli.EXIT_OK, err
    [row] = [r.split() for r in out.splitlines() if r.startswith(client_id)]
    assert row[4] != "-"  # last_used_at: the token request was noted
    code, out, err = _run(capsys, monkeypatch, ["clients", "delete", client_id])
    assert code == cli.EXIT_OK, err
    assert f"deleted: {client_id}" in out
    code, out, err = _run(capsys, monkeypatch, ["clients", "list", "--json"])
    assert client_id not in [item["client_id"] for item in json.loads(out)["items"]]

    _use_session(monkeypatch, client_path)
    code, out, err = _run(capsys, monkeypatch, ["status"])
    assert code == cli.EXIT_AUTH
    refused = platform_cloud.http(
        "GET", f"/tenants/{TENANT}", headers={"Authorization": f"Bearer {machine.access_token}"}
    )
    assert refused.status_code in (401, 403), refused.text
    code, out, err = _run(capsys, monkeypatch, login, secret)
    assert code == cli.EXIT_AUTH  # the secret of a deleted client gets no token either
    code, out, err = _run(capsys, monkeypatch, ["logout"])
    assert code == cli.EXIT_OK
    assert not client_path.exists()

    # the secrets: in no file the CLI wrote (it wrote the sessions only), nor in the cloud's log
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert written == ["person/session.json"]
    assert _files_holding(home, [first_secret, secret]) == []
    _assert_not_logged(platform_cloud, client_id, [first_secret, secret])


def _assert_not_logged(cloud: RunningCloud, client_id: str, secrets: list[str]) -> None:
    log = cloud.log() + (cloud.state_dir / TRACES_FILE).read_text()
    assert f'"client_id":"{client_id}"' in log  # the client's token requests were logged
    for i, secret in enumerate(secrets):
        assert secret not in log, f"secret #{i} is in the local cloud's log"
        assert secret[4:] not in log, f"secret #{i}'s random part is in the local cloud's log"
