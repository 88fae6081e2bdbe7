"""`tenant-security clients ...` and `login --client-id`: the arguments, and the requests they
build, as a real HTTP server on 127.0.0.1 receives them (the token request: form-urlencoded
client_credentials, the secret in HTTP Basic only, RFC 6749 §2.3.1's encoding), what is saved
(a client's session, 0600, no secret) and what is printed (the secret once, on stdout)."""

from __future__ import annotations

import base64
import io
import json
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tenant_security.identity.client_credentials import client_credentials, token_form
from tenant_security_tools import cli
from tenant_security_tools.client import Session, SessionKind, load_session, save_session
from tenant_security_tools.clients_cli import basic_credentials, table, token_request

CLIENT_ID = "acme_0123456789abcdef0123"
SECRET = "tsk_" + "A1b2C3d4E5" * 4 + "xyz" + "Q9w8E7"  # the shape of one: tsk_ + 49 base62
TOKEN = "eyJ.machine.token"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Api:
    """An HTTP server on 127.0.0.1 answering each (method, path) as told, recording every request."""

    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Api:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                api.seen.append(
                    Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                )
                status, reply = api.answers.get((self.command, self.path), (404, {"error": "not_found"}))
                body = b"" if reply is None else json.dumps(reply).encode()
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = answer  # noqa: N815 - http.server's names

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self


@pytest.fixture
def api() -> Iterator[Api]:
    running = Api().start()
    yield running
    assert running.server is not None
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture
def session_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("TENANT_SECURITY_API_URL", "LOCALCLOUD_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config" / "session.json"
    monkeypatch.setenv("TENANT_SECURITY_SESSION", str(path))
    return path


@pytest.fixture
def no_prompt(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any prompt is recorded and answered with nothing."""
    asked: list[str] = []

    def ask(label: str) -> str:
        asked.append(label)
        return ""

    monkeypatch.setattr(cli, "ask", ask)
    monkeypatch.setattr(cli, "ask_secret", ask)
    return asked


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def _token_reply(expires_in: int = 900) -> tuple[int, Any]:
    return 200, {"access_token": TOKEN, "token_type": "Bearer", "expires_in": expires_in, "scope": "auditor"}


# ---------------------------------------------------------------------- the token request
@pytest.mark.parametrize(
    "secret", [SECRET, "p a+s:s%w/o=r&d", "ünïcödé:"], ids=["a secret", "reserved characters", "non-ASCII"]
)
def test_basic_credentials_form_urlencode_before_base64_and_the_server_reads_them_back(secret: str) -> None:
    header = basic_credentials(CLIENT_ID, secret)
    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic"
    raw = base64.b64decode(encoded).decode()
    assert raw.count(":") == 1  # a ':' in the secret is percent-encoded, so the split is the id's
    assert " " not in raw
    # the platform's own token endpoint decodes what the CLI sends to the same id and secret
    assert client_credentials({"grant_type": "client_credentials"}, header) == (CLIENT_ID, secret)


def test_the_token_request_is_client_credentials_with_the_secret_in_the_header_only() -> None:
    fields, headers = token_request(CLIENT_ID, SECRET)
    assert fields == {"grant_type": "client_credentials"}
    assert set(headers) == {"Authorization"}
    assert SECRET not in json.dumps(fields)
    narrowed, _ = token_request(CLIENT_ID, SECRET, "auditor viewer")
    assert narrowed == {"grant_type": "client_credentials", "scope": "auditor viewer"}


def test_login_with_a_client_id_posts_the_form_and_saves_a_clients_session(
    api: Api,
    session_path: Path,
    no_prompt: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api.answers[("POST", "/oauth2/token")] = _token_reply()
    _stdin(monkeypatch, SECRET)  # as printf %s "$SECRET" sends it: no newline
    argv = [
        "login",
        "--api",
        api.url,
        "--client-id",
        CLIENT_ID,
        "--client-secret-stdin",
        "--scope",
        "auditor",
    ]
    assert cli.main(argv) == cli.EXIT_OK
    assert no_prompt == []  # read from stdin, nothing asked
    [request] = api.seen
    assert (request.method, request.path) == ("POST", "/oauth2/token")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request.body.decode())) == {"grant_type": "client_credentials", "scope": "auditor"}
    assert request.headers["Authorization"] == basic_credentials(CLIENT_ID, SECRET)
    assert SECRET.encode() not in request.body  # client_secret_basic: never in the body too
    # the platform's endpoint accepts this request as it came
    form = token_form(request.body.decode(), request.headers["Content-Type"])
    assert client_credentials(form, request.headers["Authorization"]) == (CLIENT_ID, SECRET)

    out, err = capsys.readouterr()
    assert f"Signing in to {api.url} as API client {CLIENT_ID}" in err
    assert f"signed in as API client {CLIENT_ID} of acme for 15 minutes" in out
    assert SECRET not in out + err  # never echoed
    assert stat.S_IMODE(session_path.stat().st_mode) == 0o600
    assert SECRET not in session_path.read_text()
    session = load_session(session_path)
    assert session is not None
    assert (session.tenant_id, session.username, session.access_token) == ("acme", CLIENT_ID, TOKEN)
    assert session.kind == SessionKind.CLIENT
    assert session.is_client
    assert 0 < session.expires_at - time.time() <= 900


def test_status_says_the_session_is_a_clients_and_logout_calls_nothing(
    api: Api, session_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = Session(api.url, "acme", CLIENT_ID, TOKEN, time.time() + 600, SessionKind.CLIENT)
    save_session(client, session_path)
    api.answers[("GET", "/tenants/acme")] = (200, {"tenant_id": "acme", "status": "ACTIVE"})
    assert cli.main(["status"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"{CLIENT_ID} (API client, not refreshed;" in out
    assert api.seen[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    calls = len(api.seen)
    assert cli.main(["logout"]) == cli.EXIT_OK  # a client's token has no session on the server
    assert len(api.seen) == calls
    assert not session_path.exists()


def test_an_expired_clients_session_says_to_sign_in_as_the_client_again(
    session_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_session(
        Session("http://127.0.0.1:9", "acme", CLIENT_ID, TOKEN, time.time() - 1, SessionKind.CLIENT),
        session_path,
    )
    assert cli.main(["status"]) == cli.EXIT_AUTH
    assert f"--client-id {CLIENT_ID} --client-secret-stdin" in capsys.readouterr().err


def test_a_session_saved_before_clients_existed_is_a_persons(session_path: Path) -> None:
    session_path.parent.mkdir(mode=0o700)
    fields = {"api_url": "http://127.0.0.1:9", "tenant_id": "acme", "username": "dana"}
    session_path.write_text(json.dumps({**fields, "access_token": "t", "expires_at": time.time() + 60}))
    session_path.chmod(0o600)
    session = load_session(session_path)
    assert session is not None
    assert not session.is_client


@pytest.mark.parametrize(
    ("status", "reply", "code"),
    [
        (
            401,
            {"error": "invalid_client", "error_description": "client authentication failed"},
            cli.EXIT_AUTH,
        ),
        (400, {"error": "unauthorized_client", "error_description": "machine access is off"}, cli.EXIT_AUTH),
        (400, {"error": "invalid_scope", "error_description": "the client does not hold: x"}, cli.EXIT_AUTH),
        (429, {"error": "too_many_requests", "message": "slow down"}, cli.EXIT_FAILED),
        (200, {"access_token": TOKEN, "token_type": "mac", "expires_in": 900}, cli.EXIT_FAILED),
    ],
    ids=["invalid_client", "unauthorized_client", "invalid_scope", "throttled", "not a bearer token"],
)
def test_a_refused_token_request_prints_the_description_and_saves_nothing(
    api: Api,
    session_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status: int,
    reply: dict[str, Any],
    code: int,
) -> None:
    api.answers[("POST", "/oauth2/token")] = (status, reply)
    _stdin(monkeypatch, SECRET + "\n")
    assert cli.main(["login", "--api", api.url, "--client-id", CLIENT_ID, "--client-secret-stdin"]) == code
    err = capsys.readouterr().err
    assert (reply.get("error_description") or reply.get("message") or "no bearer token") in err
    if "error_description" in reply:
        assert f"refused: {reply['error']}: {reply['error_description']}" in err
    assert SECRET not in err
    assert not session_path.exists()


# ---------------------------------------------------------------------- the login arguments
@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--client-id", CLIENT_ID, "--username", "dana"], "not with --username"),
        (["--client-id", CLIENT_ID, "--password-stdin"], "not with --username or --password-stdin"),
        (["--client-id", "acme-0123", "--client-secret-stdin"], "not a client id"),
        (["--client-id", CLIENT_ID.upper(), "--client-secret-stdin"], "not a client id"),
        (["--client-id", CLIENT_ID, "--tenant", "globex"], "the client belongs to acme"),
        (["--client-secret-stdin", "--tenant", "acme", "--username", "dana"], "give --client-id"),
        (["--scope", "viewer", "--tenant", "acme", "--username", "dana"], "give --client-id"),
        (["--username", "dana"], "login needs --tenant"),
        (["--tenant", "acme"], "login needs --username"),
        ([], "login needs --tenant and --username"),
    ],
)
def test_login_arguments_are_a_person_or_a_client_never_both(
    api: Api,
    session_path: Path,
    no_prompt: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    _stdin(monkeypatch, SECRET)
    assert cli.main(["login", "--api", api.url, *argv]) == cli.EXIT_USAGE
    assert says in capsys.readouterr().err
    assert api.seen == []  # refused before anything is sent or asked
    assert no_prompt == []


def test_a_secret_given_as_the_client_id_is_refused_without_echoing_it(
    api: Api, session_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["login", "--api", api.url, "--client-id", SECRET]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "rotate it" in err
    assert SECRET not in err
    assert api.seen == []


def test_client_id_with_its_own_tenant_is_accepted_and_the_person_login_still_needs_both(
    api: Api, session_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.answers[("POST", "/oauth2/token")] = _token_reply()
    _stdin(monkeypatch, SECRET)
    argv = ["login", "--api", api.url, "--tenant", "acme", "--client-id", CLIENT_ID, "--client-secret-stdin"]
    assert cli.main(argv) == cli.EXIT_OK
    args = cli._parser().parse_args(["login", "--tenant", "acme", "--username", "dana", "--password-stdin"])
    assert (args.tenant, args.username, args.password_stdin, args.client_id) == ("acme", "dana", True, None)


def test_an_empty_stdin_is_a_usage_error(
    api: Api, session_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, "\n")
    assert cli.main(["login", "--api", api.url, "--client-id", CLIENT_ID, "--client-secret-stdin"]) == 2
    assert "no client secret" in capsys.readouterr().err
    assert api.seen == []


def test_without_client_secret_stdin_the_secret_is_asked_without_echo(
    api: Api, session_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(cli, "ask_secret", lambda label: asked.append(label) or SECRET)
    api.answers[("POST", "/oauth2/token")] = _token_reply()
    assert cli.main(["login", "--api", api.url, "--client-id", CLIENT_ID]) == cli.EXIT_OK
    assert asked == ["Client secret: "]
    assert api.seen[0].headers["Authorization"] == basic_credentials(CLIENT_ID, SECRET)


# ---------------------------------------------------------------------- the clients commands
@pytest.fixture
def admin_session(api: Api, session_path: Path) -> Session:
    session = Session(api.url, "acme", "tina", "person-token", time.time() + 600)
    save_session(session, session_path)
    return session


NEW_CLIENT = {
    "client_id": CLIENT_ID,
    "name": "billing-sync",
    "roles": ["auditor", "viewer"],
    "ip_whitelist": [],
    "created_at": "2026-01-01T00:00:00+00:00",
    "expires_at": "2026-03-02T00:00:00+00:00",
    "last_used_at": None,
    "client_secret": SECRET,
}


def test_create_sends_an_idempotency_key_and_prints_the_secret_once_on_stdout(
    api: Api, admin_session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers[("POST", "/tenants/acme/clients")] = (201, NEW_CLIENT)
    argv = ["clients", "create", "billing-sync", "-r", "auditor", "-r", "viewer", "--expires-in-days", "30"]
    assert cli.main([*argv, "--ip", "10.0.0.0/8"]) == cli.EXIT_OK
    [request] = api.seen
    assert json.loads(request.body) == {
        "name": "billing-sync",
        "roles": ["auditor", "viewer"],
        "expires_in_days": 30,
        "ip_whitelist": ["10.0.0.0/8"],
    }
    assert uuid.UUID(request.headers["Idempotency-Key"]).version == 4
    assert request.headers["Authorization"] == "Bearer person-token"
    out, err = capsys.readouterr()
    assert out.count(SECRET) == 1
    assert SECRET not in err
    assert "shown only this once" in err
    assert f"client_id: {CLIENT_ID}" in out

    api.answers[("POST", "/tenants/globex/clients")] = (201, NEW_CLIENT)
    assert cli.main(["clients", "create", "second", "-r", "viewer", "--tenant", "globex", "--json"]) == 0
    again = api.seen[-1]
    assert again.path == "/tenants/globex/clients"
    assert json.loads(again.body) == {"name": "second", "roles": ["viewer"]}  # the API's defaults
    assert again.headers["Idempotency-Key"] != request.headers["Idempotency-Key"]  # a new client, a new key
    out = capsys.readouterr().out
    assert json.loads(out)["client_secret"] == SECRET


def test_create_needs_a_name_and_a_role(admin_session: Session, api: Api) -> None:
    assert cli.main(["clients", "create", "billing-sync"]) == cli.EXIT_USAGE
    assert cli.main(["clients", "create", "-r", "viewer"]) == cli.EXIT_USAGE
    assert api.seen == []


def test_list_prints_a_table_and_json_on_request(
    api: Api, admin_session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = {key: value for key, value in NEW_CLIENT.items() if key != "client_secret"}
    used = {
        **listed,
        "client_id": "acme_ffffffffffffffffffff",
        "name": "etl",
        "last_used_at": "2026-01-02T03:04:00+00:00",
    }
    api.answers[("GET", "/tenants/acme/clients")] = (200, {"items": [listed, used]})
    assert cli.main(["clients", "list"]) == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["client_id", "name", "roles", "expires_at", "last_used_at"]
    assert lines[1].split() == [CLIENT_ID, "billing-sync", "auditor,viewer", listed["expires_at"], "-"]
    assert lines[2].split()[-1] == "2026-01-02T03:04:00+00:00"
    assert lines[1].index("auditor,viewer") == lines[0].index("roles")  # aligned
    assert cli.main(["clients", "list", "--json"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"items": [listed, used]}


def test_table_aligns_the_columns() -> None:
    text = table([{"client_id": "a_1", "name": "n", "roles": [], "expires_at": None, "last_used_at": ""}])
    header, row = text.splitlines()
    assert row.split() == ["a_1", "n", "-", "-", "-"]
    assert header.index("name") == row.index("n")


def test_rotate_sends_the_grace_and_prints_the_new_secret_once(
    api: Api, admin_session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    path = f"/tenants/acme/clients/{CLIENT_ID}/secret"
    api.answers[("POST", path)] = (
        200,
        {"client_id": CLIENT_ID, "client_secret": SECRET, "previous_secret_expires_at": None},
    )
    assert cli.main(["clients", "rotate", CLIENT_ID]) == cli.EXIT_OK
    assert json.loads(api.seen[-1].body) == {"grace_seconds": 0}  # the default: the old one ends now
    out, err = capsys.readouterr()
    assert out.count(SECRET) == 1
    assert "shown only this once" in err
    assert cli.main(["clients", "rotate", CLIENT_ID, "--grace-seconds", "3600", "--json"]) == cli.EXIT_OK
    assert json.loads(api.seen[-1].body) == {"grace_seconds": 3600}
    assert json.loads(capsys.readouterr().out)["client_secret"] == SECRET


def test_delete_calls_delete_on_the_client_and_a_404_is_exit_6(
    api: Api, admin_session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers[("DELETE", f"/tenants/acme/clients/{CLIENT_ID}")] = (204, None)
    assert cli.main(["clients", "delete", CLIENT_ID]) == cli.EXIT_OK
    assert api.seen[-1].method == "DELETE"
    assert f"deleted: {CLIENT_ID}" in capsys.readouterr().out
    assert cli.main(["clients", "delete", "acme_00000000000000000000"]) == cli.EXIT_NOT_FOUND


def test_client_commands_without_a_session_are_exit_5(session_path: Path, api: Api) -> None:
    assert cli.main(["clients", "list"]) == cli.EXIT_AUTH
    assert api.seen == []
