"""The CLI's session file and the local cloud's bootstrap.json: written as new 0600 files (never
through a planted symlink, never keeping a wider mode), in a directory that is the user's own, and
read only when nobody else could have written or read them."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud, LocalCloudConfig
from tenant_security.private_files import UnsafeFile
from tenant_security_tools import cli
from tenant_security_tools.client import Session, load_session, save_session

SESSION = Session("https://api.example.com", "acme", "dana", "the-access-token", time.time() + 600)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A directory of the user's own (0700), standing in for ~/.config."""
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    """A local cloud that is never started: only its bootstrap.json is written."""
    state = tmp_path / "state"
    state.mkdir(mode=0o755)  # as `make local` makes it, with a usual umask
    local = LocalCloud(LocalCloudConfig(template=tmp_path / "template.yaml", state_dir=state))
    local.bootstrap = lambda: {"api_url": "http://127.0.0.1:3000", "password": "one-time"}  # type: ignore[method-assign]
    yield local
    local.stop()


# ---------------------------------------------------------------------- the session file
def test_a_missing_session_directory_is_made_0700_and_the_session_0600(home: Path) -> None:
    path = home / "tenant-security" / "session.json"
    save_session(SESSION, path)
    assert mode(path.parent) == 0o700
    assert stat.S_ISREG(path.lstat().st_mode)
    assert mode(path) == 0o600
    assert load_session(path) == SESSION
    assert sorted(p.name for p in path.parent.iterdir()) == ["session.json"]  # no temporary left


def test_a_symlink_planted_at_the_session_path_is_replaced_not_followed(home: Path) -> None:
    victim = home / "victim.txt"
    victim.write_text("someone's file\n")
    victim.chmod(0o644)
    path = home / "session.json"
    path.symlink_to(victim)
    save_session(SESSION, path)
    assert victim.read_text() == "someone's file\n"  # not truncated, not written through
    assert mode(victim) == 0o644
    assert not path.is_symlink()
    assert stat.S_ISREG(path.lstat().st_mode)
    assert mode(path) == 0o600
    assert load_session(path) == SESSION


def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(home: Path) -> None:
    victim = home / "victim.txt"
    victim.write_text("someone's file\n")
    (home / "session.tmp").symlink_to(victim)  # where the earlier code wrote first
    save_session(SESSION, home / "session.json")
    assert victim.read_text() == "someone's file\n"


@pytest.mark.parametrize("existing", ["session.json", "session.tmp"])  # and the earlier temporary's name
def test_an_existing_file_with_a_wider_mode_does_not_lend_it_to_the_session(
    home: Path, existing: str
) -> None:
    (home / existing).write_text("{}")
    (home / existing).chmod(0o644)
    save_session(SESSION, home / "session.json")
    assert mode(home / "session.json") == 0o600


@pytest.mark.parametrize("directory_mode", [0o777, 0o770, 0o720, 0o702], ids=oct)
def test_a_session_directory_others_can_write_is_refused(home: Path, directory_mode: int) -> None:
    shared = home / "shared"
    shared.mkdir()
    shared.chmod(directory_mode)
    with pytest.raises(UnsafeFile, match="writable by others"):
        save_session(SESSION, shared / "session.json")
    assert list(shared.iterdir()) == []


def test_a_session_directory_of_another_user_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: os.stat(home).st_uid + 1)  # as seen by another user
    with pytest.raises(UnsafeFile, match="another user"):
        save_session(SESSION, home / "session.json")


def test_a_session_file_that_is_a_symlink_is_not_read(home: Path) -> None:
    real = home / "elsewhere.json"
    save_session(SESSION, real)
    (home / "session.json").symlink_to(real)
    with pytest.raises(UnsafeFile, match="symlink"):
        load_session(home / "session.json")


@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604, 0o660], ids=oct)
def test_a_session_file_others_can_read_or_write_is_not_read(home: Path, file_mode: int) -> None:
    path = home / "session.json"
    save_session(SESSION, path)
    path.chmod(file_mode)
    with pytest.raises(UnsafeFile, match="by others"):
        load_session(path)


def test_a_session_file_of_another_user_is_not_read(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = home / "session.json"
    save_session(SESSION, path)
    monkeypatch.setattr(os, "getuid", lambda: path.stat().st_uid + 1)
    with pytest.raises(UnsafeFile, match="another user"):
        load_session(path)


def test_no_session_file_is_no_session(home: Path) -> None:
    assert load_session(home / "session.json") is None


def test_the_cli_says_why_it_refuses_a_session_file(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / "session.json"
    save_session(SESSION, path)
    path.chmod(0o644)
    monkeypatch.setenv("TENANT_SECURITY_SESSION", str(path))
    assert cli.main(["status"]) == cli.EXIT_FAILED
    assert f"{path} is readable or writable by others" in capsys.readouterr().err


# ---------------------------------------------------------------------- the local cloud's bootstrap.json
def test_bootstrap_json_is_a_new_0600_file_even_over_a_planted_symlink(cloud: LocalCloud) -> None:
    state = cloud.config.state_dir
    victim = state.parent / "victim.txt"
    victim.write_text("someone's file\n")
    (state / "bootstrap.json").symlink_to(victim)
    cloud._write_bootstrap()
    path = state / "bootstrap.json"
    assert victim.read_text() == "someone's file\n"
    assert stat.S_ISREG(path.lstat().st_mode)
    assert mode(path) == 0o600
    assert json.loads(path.read_text())["password"] == "one-time"


def test_a_symlink_planted_at_the_old_temporary_name_of_bootstrap_json_is_not_followed(
    cloud: LocalCloud,
) -> None:
    state = cloud.config.state_dir
    victim = state.parent / "victim.txt"
    victim.write_text("someone's file\n")
    victim.chmod(0o644)
    (state / "bootstrap.tmp").symlink_to(victim)
    cloud._write_bootstrap()
    assert victim.read_text() == "someone's file\n"  # neither written nor made 0600 through the link
    assert mode(victim) == 0o644


def test_bootstrap_json_does_not_keep_a_wider_mode(cloud: LocalCloud) -> None:
    path = cloud.config.state_dir / "bootstrap.json"
    path.write_text("{}")
    path.chmod(0o644)
    cloud._write_bootstrap()
    assert mode(path) == 0o600


def test_bootstrap_json_is_not_written_in_a_world_writable_state_directory(cloud: LocalCloud) -> None:
    cloud.config.state_dir.chmod(0o777)
    with pytest.raises(UnsafeFile, match="writable by others"):
        cloud._write_bootstrap()
    assert list(cloud.config.state_dir.iterdir()) == []


def test_bootstrap_json_may_be_in_a_group_writable_state_directory(cloud: LocalCloud) -> None:
    cloud.config.state_dir.chmod(0o775)  # umask 002: the state directory is not the secret
    cloud._write_bootstrap()
    assert mode(cloud.config.state_dir / "bootstrap.json") == 0o600


def test_bootstrap_json_is_not_written_in_another_users_state_directory(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "getuid", lambda: cloud.config.state_dir.stat().st_uid + 1)
    with pytest.raises(UnsafeFile, match="another user"):
        cloud._write_bootstrap()


def test_login_stops_before_the_password_when_the_session_could_not_be_kept(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = home / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("TENANT_SECURITY_SESSION", str(shared / "session.json"))
    monkeypatch.setattr(cli, "ask_secret", lambda label: pytest.fail("asked for the password"))
    argv = ["login", "--api", "https://api.example.com", "--tenant", "acme", "--username", "dana"]
    assert cli.main(argv) == cli.EXIT_FAILED
    assert "writable by others" in capsys.readouterr().err
