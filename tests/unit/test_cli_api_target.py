"""Where the CLI sends a password or a token: only to the API the user named (``--api``,
TENANT_SECURITY_API_URL) or, with ``--local``, to the local cloud on this machine; never on through
a redirect. Real HTTP servers on 127.0.0.1 record what reached them."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tenant_security.private_files import DirectoryPolicy, write_private_file
from tenant_security_tools import cli, demo
from tenant_security_tools import client as client_module
from tenant_security_tools.client import (
    ApiClient,
    ApiError,
    Session,
    checked_api_url,
    is_loopback_host,
    save_session,
)


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str | None
    body: bytes


@dataclass
class Recorder:
    """An HTTP server on 127.0.0.1 that answers every request the same way and remembers it."""

    status: int = 401
    location: str | None = None
    requests: list[Recorded] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.requests.append(
                    Recorded(
                        self.command, self.path, self.headers.get("Authorization"), self.rfile.read(length)
                    )
                )
                body = json.dumps({"error": "unauthorized", "message": "recorded"}).encode()
                self.send_response(recorder.status)
                if recorder.location is not None:
                    self.send_header("Location", recorder.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = answer  # noqa: N815 - http.server's names

            def log_message(self, *_args: object) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def recorders() -> Iterator[Callable[..., Recorder]]:
    started: list[Recorder] = []

    def start(**kwargs: object) -> Recorder:
        started.append(Recorder(**kwargs).start())  # type: ignore[arg-type]
        return started[-1]

    yield start
    for recorder in started:
        recorder.stop()


@pytest.fixture
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own and none of the variables that name an API."""
    monkeypatch.chdir(tmp_path)
    for name in ("TENANT_SECURITY_API_URL", "LOCALCLOUD_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENANT_SECURITY_SESSION", str(tmp_path / "config" / "session.json"))
    return tmp_path


@dataclass
class Prompts:
    """The password prompt, and the last line said on stderr each time it was asked."""

    capsys: pytest.CaptureFixture[str]
    said_before_password: list[str] = field(default_factory=list)

    def ask_secret(self, label: str) -> str:
        self.said_before_password += self.capsys.readouterr().err.splitlines()[-1:]
        return "the-password"

    def ask(self, label: str) -> str:
        raise AssertionError(f"unexpected prompt {label!r}")


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Prompts:
    answers = Prompts(capsys)
    monkeypatch.setattr(cli, "ask_secret", answers.ask_secret)
    monkeypatch.setattr(cli, "ask", answers.ask)
    return answers


def plant_bootstrap(directory: Path, api_url: str, file_mode: int = 0o600) -> Path:
    """A bootstrap.json as the local cloud writes it (0600), or as a checkout would (0644)."""
    path = directory / "bootstrap.json"
    write_private_file(
        path, json.dumps({"api_url": api_url, "password": "x"}), DirectoryPolicy.NOT_WORLD_WRITABLE
    )
    path.chmod(file_mode)
    return path


LOGIN = ["login", "--tenant", "acme", "--username", "dana"]


# ---------------------------------------------------------------------- which API login signs in to
@pytest.mark.parametrize("file_mode", [0o600, 0o644], ids=oct)
def test_a_bootstrap_file_in_the_working_directory_is_not_used_without_local(
    clean_environment: Path,
    recorders: Callable[..., Recorder],
    prompts: Prompts,
    capsys: pytest.CaptureFixture[str],
    file_mode: int,
) -> None:
    foreign = recorders()
    plant_bootstrap(clean_environment / ".localcloud", foreign.url, file_mode)
    assert cli.main(LOGIN) == cli.EXIT_USAGE
    assert "--local" in capsys.readouterr().err
    assert prompts.said_before_password == []  # no password was asked for
    assert foreign.requests == []


def test_without_api_or_local_login_says_what_to_give(
    clean_environment: Path, prompts: Prompts, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(LOGIN) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--api" in err
    assert "--local" in err
    assert prompts.said_before_password == []


@pytest.mark.parametrize(
    "foreign_url",
    [
        "https://api.example.com",
        "https://localhost.example.com",
        "http://127.0.0.1.nip.io:3000",
        "https://10.0.0.7:3000",
        "ftp://127.0.0.1/",
    ],
)
def test_local_refuses_a_bootstrap_file_whose_url_is_not_this_machine(
    clean_environment: Path, prompts: Prompts, capsys: pytest.CaptureFixture[str], foreign_url: str
) -> None:
    plant_bootstrap(clean_environment / ".localcloud", foreign_url)
    assert cli.main([*LOGIN, "--local"]) == cli.EXIT_USAGE
    assert "--local: refusing" in capsys.readouterr().err
    assert prompts.said_before_password == []


def test_local_refuses_a_bootstrap_file_as_a_checkout_leaves_it(
    clean_environment: Path,
    recorders: Callable[..., Recorder],
    prompts: Prompts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    planted = recorders()  # even on this machine: the local cloud writes it 0600, git does not
    plant_bootstrap(clean_environment / ".localcloud", planted.url, 0o644)
    assert cli.main([*LOGIN, "--local"]) == cli.EXIT_USAGE
    assert "by others" in capsys.readouterr().err
    assert planted.requests == []
    assert prompts.said_before_password == []


def test_local_without_a_running_local_cloud_is_a_usage_error(
    clean_environment: Path, prompts: Prompts, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*LOGIN, "--local"]) == cli.EXIT_USAGE
    assert "make local" in capsys.readouterr().err


def test_local_takes_the_url_from_the_state_directory_and_says_it_before_the_password(
    clean_environment: Path,
    recorders: Callable[..., Recorder],
    prompts: Prompts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local, decoy = recorders(), recorders()
    plant_bootstrap(clean_environment / ".localcloud", decoy.url)  # the working directory's: not this one
    state = clean_environment / "state"
    plant_bootstrap(state, local.url)
    monkeypatch.setenv("LOCALCLOUD_STATE_DIR", str(state))
    assert cli.main([*LOGIN, "--local"]) == cli.EXIT_AUTH  # the recorder refuses the password
    assert prompts.said_before_password == [f"Signing in to {local.url} as dana@acme"]
    assert [(r.method, r.path) for r in local.requests] == [("POST", "/auth/login")]
    assert decoy.requests == []


def test_api_and_the_environment_name_the_api_and_it_is_said_before_the_password(
    clean_environment: Path,
    recorders: Callable[..., Recorder],
    prompts: Prompts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    named, from_environment = recorders(), recorders()
    monkeypatch.setenv("TENANT_SECURITY_API_URL", from_environment.url + "/")
    assert cli.main([*LOGIN, "--api", named.url]) == cli.EXIT_AUTH
    assert cli.main(LOGIN) == cli.EXIT_AUTH
    assert prompts.said_before_password == [
        f"Signing in to {named.url} as dana@acme",
        f"Signing in to {from_environment.url} as dana@acme",
    ]
    assert len(named.requests) == len(from_environment.requests) == 1


def test_the_url_is_said_before_a_password_is_read_from_stdin(
    clean_environment: Path,
    recorders: Callable[..., Recorder],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = recorders()
    said: list[str] = []

    class Stdin:
        def readline(self) -> str:
            said.extend(capsys.readouterr().err.splitlines()[-1:])
            return "the-password\n"

    monkeypatch.setattr("sys.stdin", Stdin())
    assert cli.main([*LOGIN, "--api", api.url, "--password-stdin"]) == cli.EXIT_AUTH
    assert said == [f"Signing in to {api.url} as dana@acme"]


def test_api_and_local_together_are_a_usage_error(clean_environment: Path, prompts: Prompts) -> None:
    assert cli.main([*LOGIN, "--local", "--api", "https://api.example.com"]) == cli.EXIT_USAGE


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "localhost", "LOCALHOST", "localhost."])
def test_this_machine(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    ["", None, "128.0.0.1", "10.0.0.1", "::2", "localhost.example.com", "0.0.0.0"],  # noqa: S104 - a host name here, not a bind
)
def test_not_this_machine(host: str | None) -> None:
    assert not is_loopback_host(host)


def test_plain_http_only_to_this_machine() -> None:
    assert checked_api_url("http://127.8.0.1:3000/") == "http://127.8.0.1:3000"
    assert checked_api_url("http://[::1]:3000") == "http://[::1]:3000"
    assert checked_api_url("https://api.example.com/prod") == "https://api.example.com/prod"
    with pytest.raises(ValueError, match="http:// only for this machine"):
        checked_api_url("http://api.example.com")
    with pytest.raises(ValueError, match="not on this machine"):
        checked_api_url("https://api.example.com", loopback_only=True)


# ---------------------------------------------------------------------- redirects
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(
    recorders: Callable[..., Recorder], status: int, method: str
) -> None:
    elsewhere = recorders(status=200)
    api = recorders(status=status, location=f"{elsewhere.url}/stolen")
    client = ApiClient(api.url, token="the-bearer-token")
    with pytest.raises(ApiError) as refused:
        client.call(method, "/tenants/acme", {} if method == "POST" else None)
    assert refused.value.status == status
    assert refused.value.code == "redirect"
    assert elsewhere.url in refused.value.message
    assert [r.authorization for r in api.requests] == ["Bearer the-bearer-token"]
    assert elsewhere.requests == []


def test_a_relative_redirect_is_refused_too_and_named(recorders: Callable[..., Recorder]) -> None:
    api = recorders(status=302, location="/somewhere-else")
    with pytest.raises(ApiError, match=f"redirecting to {api.url}"):
        ApiClient(api.url, token="t").call("GET", "/tenants/acme")
    assert len(api.requests) == 1  # asked once, not again at the new path


def test_the_cli_refuses_a_redirect_with_exit_1_naming_the_host(
    clean_environment: Path, recorders: Callable[..., Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = recorders(status=200)
    api = recorders(status=302, location=f"{elsewhere.url}/tenants/acme")
    session = Session(api.url, "acme", "dana", "the-bearer-token", time.time() + 600)
    save_session(session, clean_environment / "config" / "session.json")
    assert cli.main(["status"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert f"redirecting to {elsewhere.url}" in err
    assert "not followed" in err
    assert len(api.requests) == 1
    assert elsewhere.requests == []


def test_the_demo_refuses_a_local_cloud_that_is_not_this_machine(
    clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = clean_environment / "state"
    plant_bootstrap(state, "https://api.example.com")  # the tour would send new passwords there
    assert demo.main(["--state-dir", str(state)]) == 2
    assert "not on this machine" in capsys.readouterr().out


@pytest.mark.parametrize("variable", ["http_proxy", "HTTP_PROXY"])
def test_a_call_to_this_machine_never_goes_through_a_proxy(
    recorders: Callable[..., Recorder], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """Red team B: with $http_proxy set, the local login's password went to the proxy in clear."""
    proxy, api = recorders(status=200), recorders(status=200)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, proxy.url)
    # as in a process started with the variable set (urllib reads it when the opener is built)
    monkeypatch.setattr(client_module, "_OPENER", urllib.request.build_opener(client_module._NoRedirects))
    ApiClient(api.url).call(
        "POST", "/auth/login", {"tenant_id": "acme", "username": "dana", "password": "pw"}
    )
    assert len(api.requests) == 1
    assert proxy.requests == []
