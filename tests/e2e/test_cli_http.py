"""`tenant-security` against the local cloud: login (enrolment, code, new password), status,
onboard --file --wait (an EventBridge event) and the exit codes scripts rely on."""

from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tenant_security import aws
from tenant_security_tools import cli
from tenant_security_tools.client import Session, load_session, save_session
from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import Identity, create_user, mint_token, seed_tenant, seen


@pytest.fixture
def session_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "session.json"
    monkeypatch.setenv("TENANT_SECURITY_SESSION", str(path))
    return path


class Terminal:
    """Plays the person at the prompts: answers from what the CLI printed so far."""

    def __init__(self, capsys: pytest.CaptureFixture[str], secrets: dict[str, str]) -> None:
        self.capsys, self.secrets, self.err, self.out, self.asked = capsys, secrets, "", "", []
        self.said_before_secret: list[str] = []  # the last line on stderr when a secret was asked

    def read(self) -> None:
        captured = self.capsys.readouterr()
        self.err, self.out = self.err + captured.err, self.out + captured.out

    def ask(self, label: str) -> str:
        self.read()
        self.asked.append(label)
        if "Code" in label or "code" in label:
            if "code_override" in self.secrets:
                return self.secrets["code_override"]
            match = re.search(r"by hand: ([A-Z2-7]+)", self.err)
            secret = match.group(1) if match else self.secrets["totp"]
            self.secrets["totp"] = secret
            code = pyotp.TOTP(secret).now()
            seen(secret, code)
            return code
        raise AssertionError(f"unexpected prompt {label!r}")

    def ask_secret(self, label: str) -> str:
        self.read()
        self.asked.append(label)
        self.said_before_secret += self.err.splitlines()[-1:]
        return (
            self.secrets["new_password"]
            if label in ("New password: ", "Again: ")
            else self.secrets["password"]
        )


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Terminal:
    term = Terminal(capsys, {})
    monkeypatch.setattr(cli, "ask", term.ask)
    monkeypatch.setattr(cli, "ask_secret", term.ask_secret)
    return term


def test_first_login_enrols_mfa_changes_the_password_and_keeps_a_private_session(
    platform_cloud: RunningCloud, platform_admin: Identity, session_file: Path, terminal: Terminal
) -> None:
    seed_tenant(platform_cloud, "clitour")
    terminal.secrets["password"] = create_user(
        platform_cloud, platform_admin, "clitour", "dana", ["tenant-admin"]
    )
    terminal.secrets["new_password"] = "Cli-" + pyotp.random_base32()[:20]
    seen(terminal.secrets["new_password"])

    argv = ["login", "--api", platform_cloud.api_url, "--tenant", "clitour", "--username", "dana"]
    assert cli.main(argv) == cli.EXIT_OK
    terminal.read()
    assert terminal.asked == ["Password: ", "Code from the app: ", "New password: ", "Again: "]
    assert "Backup codes" in terminal.err
    assert "signed in as dana of clitour" in terminal.out

    # The session: owner-only, a token and nothing a person typed.
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(session_file.parent.stat().st_mode) == 0o700
    saved = session_file.read_text()
    for secret in (terminal.secrets["password"], terminal.secrets["new_password"], terminal.secrets["totp"]):
        assert secret not in saved
    session = load_session(session_file)
    assert session is not None
    assert (session.tenant_id, session.username) == ("clitour", "dana")

    assert cli.main(["status"]) == cli.EXIT_OK
    terminal.read()
    assert re.search(r"status\s+ACTIVE", terminal.out)
    assert cli.main(["status", "--tenant", "someone-else", "--json"]) == cli.EXIT_AUTH  # 403: not its tenant
    assert cli.main(["logout"]) == cli.EXIT_OK
    assert not session_file.exists()
    assert cli.main(["status"]) == cli.EXIT_AUTH


def test_login_local_signs_in_to_the_running_local_cloud_and_says_where_first(
    platform_cloud: RunningCloud,
    platform_admin: Identity,
    session_file: Path,
    terminal: Terminal,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_tenant(platform_cloud, "clilocal")
    terminal.secrets["password"] = create_user(
        platform_cloud, platform_admin, "clilocal", "lee", ["tenant-admin"]
    )
    terminal.secrets["new_password"] = "Cli-" + pyotp.random_base32()[:20]
    seen(terminal.secrets["new_password"])
    monkeypatch.delenv("TENANT_SECURITY_API_URL", raising=False)
    monkeypatch.setenv("LOCALCLOUD_STATE_DIR", str(platform_cloud.state_dir))
    monkeypatch.chdir(tmp_path)  # no .localcloud here: the URL comes from the state directory

    assert cli.main(["login", "--local", "--tenant", "clilocal", "--username", "lee"]) == cli.EXIT_OK
    assert terminal.asked[0] == "Password: "
    assert terminal.said_before_secret[0] == f"Signing in to {platform_cloud.api_url} as lee@clilocal"
    session = load_session(session_file)
    assert session is not None
    assert (session.api_url, session.username) == (platform_cloud.api_url, "lee")


def test_a_wrong_code_or_password_is_exit_5_and_saves_nothing(
    platform_cloud: RunningCloud, platform_admin: Identity, session_file: Path, terminal: Terminal
) -> None:
    terminal.secrets.update(password=platform_admin.password, code_override="000000")
    argv = [
        "login",
        "--api",
        platform_cloud.api_url,
        "--tenant",
        "platform",
        "--username",
        platform_admin.username,
    ]
    assert cli.main(argv) == cli.EXIT_AUTH
    terminal.secrets["password"] = "not-the-password"
    assert cli.main(argv) == cli.EXIT_AUTH
    assert not session_file.exists()


def test_login_refuses_plain_http_to_another_host(session_file: Path, terminal: Terminal) -> None:
    argv = ["login", "--api", "http://api.example.com", "--tenant", "acme", "--username", "a"]
    assert cli.main(argv) == cli.EXIT_USAGE


def test_a_bad_tenant_id_is_a_usage_error(aws_here: None) -> None:
    assert cli.main(["audit", "verify", "--tenant", "Not A Tenant; DROP"]) == cli.EXIT_USAGE


@pytest.fixture
def platform_session(platform_cloud: RunningCloud, platform_admin: Identity, session_file: Path) -> Session:
    session = Session(
        platform_cloud.api_url, "platform", platform_admin.username, platform_admin.token, time.time() + 600
    )
    save_session(session, session_file)
    return session


@pytest.fixture
def aws_here(platform_cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in platform_cloud.aws_environment().items():
        monkeypatch.setenv(name, value)
    aws.reset_clients()
    yield
    aws.reset_clients()


def _request_file(tmp_path: Path, tenant_id: str, **extra: Any) -> Path:
    path = tmp_path / f"{tenant_id}.yaml"
    lines = [
        f"tenant_id: {tenant_id}",
        "name: CLI Tour",
        "isolation: schema",
        "admin:",
        "  username: owner",
        f"  email: owner@{tenant_id}.example",
    ]
    lines += [f"{key}: {json.dumps(value)}" for key, value in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_onboard_puts_the_event_and_follows_it_to_active(
    platform_cloud: RunningCloud,
    platform_session: Session,
    aws_here: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request = _request_file(tmp_path, "cli-onboarded")
    argv = ["onboard", "--file", str(request), "--wait", "--timeout", "240", "--json"]
    assert cli.main(argv) == cli.EXIT_OK
    captured = capsys.readouterr()
    assert "requested on dcisionai-platform" in captured.err
    assert re.search(r"\]\s+ACTIVE", captured.err)  # progress, status by status
    assert json.loads(captured.out)["status"] == "ACTIVE"
    assert cli.main(["status", "--tenant", "cli-onboarded"]) == cli.EXIT_OK


def test_onboard_refuses_an_invalid_file_before_putting_anything(
    platform_session: Session, aws_here: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _request_file(tmp_path, "cli-bad", isolation="shared")  # a repeated key: the last one wins
    assert cli.main(["onboard", "--file", str(bad)]) == cli.EXIT_USAGE
    assert "isolation" in capsys.readouterr().err
    (tmp_path / "broken.yaml").write_text("tenant_id: [unclosed\n")
    assert cli.main(["onboard", "--file", str(tmp_path / "broken.yaml")]) == cli.EXIT_USAGE
    assert cli.main(["onboard", "--file", str(tmp_path / "missing.yaml")]) == cli.EXIT_USAGE
    assert cli.main(["status", "--tenant", "cli-bad"]) == cli.EXIT_NOT_FOUND


def test_onboard_wait_without_a_session_fails_before_the_event(
    session_file: Path, aws_here: None, tmp_path: Path
) -> None:
    request = _request_file(tmp_path, "cli-nosession")
    assert cli.main(["onboard", "--file", str(request), "--wait"]) == cli.EXIT_AUTH


def _park(cloud: RunningCloud, event: dict[str, Any], target_arn: str) -> None:
    """A dead letter as EventBridge writes it: the event, and the target it gave up on."""
    sqs = cloud.client("sqs")

    def attribute(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value}

    sqs.send_message(
        QueueUrl=sqs.get_queue_url(QueueName="dcisionai-event-delivery-dlq")["QueueUrl"],
        MessageBody=json.dumps(event),
        MessageAttributes={"ERROR_CODE": attribute("THROTTLING"), "TARGET_ARN": attribute(target_arn)},
    )


def test_events_redrive_hands_a_dead_lettered_audit_event_to_the_writer_once(
    platform_cloud: RunningCloud, aws_here: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Red team A: the runbook's put-events could not bring a parked record back on AWS."""
    seed_tenant(platform_cloud, "redrive-co")
    writer = platform_cloud.client("lambda").get_function(FunctionName="dcisionai-audit-writer")
    event = {
        "version": "0",
        "id": "c2f4e1d0-redrive",
        "source": "dcisionai.tenant-security",
        "detail-type": "User Activity",
        "account": "123456789012",
        "time": "2026-11-30T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "event_id": "redriven-admin-action",
            "tenant_id": "redrive-co",
            "action": "users:Delete",
            "category": "admin",
            "outcome": "success",
            "status": 204,
        },
    }
    _park(platform_cloud, event, writer["Configuration"]["FunctionArn"])
    _park(platform_cloud, event, writer["Configuration"]["FunctionArn"])  # parked twice
    stranger = "arn:aws:lambda:us-east-1:123456789012:function:not-the-platforms"
    _park(platform_cloud, {**event, "id": "for-a-stranger"}, stranger)
    capsys.readouterr()
    assert cli.main(["events", "redrive", "--json"]) == cli.EXIT_FAILED  # one message was kept
    reports = json.loads(capsys.readouterr().out)
    mine = [r for r in reports if r.get("event_id") in ("c2f4e1d0-redrive", "for-a-stranger")]
    assert sorted(r["result"] for r in mine) == ["kept-unknown-target", "redriven", "redriven"]
    auditor = mint_token(platform_cloud, "redrive-co", "aud", ["auditor"])

    def trail() -> list[dict[str, Any]]:
        return platform_cloud.http(
            "GET", "/tenants/redrive-co/audit", headers={"Authorization": f"Bearer {auditor}"}
        ).json()["items"]

    records = wait_for(lambda: [r for r in trail() if r["event_id"] == "redriven-admin-action"] or None)
    assert [r["action"] for r in records] == ["users:Delete"]  # once, on its own tenant's chain
    capsys.readouterr()
    assert cli.main(["events", "redrive", "--dry-run", "--json"]) == cli.EXIT_FAILED  # it would keep one
    left = [r for r in json.loads(capsys.readouterr().out) if r.get("event_id") == "for-a-stranger"]
    assert [r["result"] for r in left] == ["kept-unknown-target"]  # still there, still not handed on
    _unpark(platform_cloud, "for-a-stranger")


def _unpark(cloud: RunningCloud, event_id: str) -> None:
    """The operator's own clean-up of a message no redrive hands on."""
    sqs = cloud.client("sqs")
    queue = sqs.get_queue_url(QueueName="dcisionai-event-delivery-dlq")["QueueUrl"]
    for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        if json.loads(message["Body"]).get("id") == event_id:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            return
    raise AssertionError(f"{event_id} is not in the dead-letter queue")
