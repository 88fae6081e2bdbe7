"""Metrics (EMF) and log context the alarms and the dashboard rely on.

Each metric the template's alarms or dashboard read is checked here against what the code really
prints, so renaming one side breaks a test rather than silently blinding an alarm.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcloud.template import load_template
from tenant_security import services
from tenant_security.errors import RateLimited, Unauthorized
from tenant_security.http import make_resolver
from tenant_security.observability import METRICS_NAMESPACE, bind_request, make_logger, record_metric
from tests.support.cloud import REAL_TEMPLATE
from tests.unit.test_sample_events import FakeContext, load_function, sample


def _printed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def _metrics(printed: list[dict[str, Any]]) -> list[tuple[str, dict[str, str], float]]:
    """(name, dimensions, value) of every EMF metric in the printed lines."""
    found = []
    for line in printed:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == METRICS_NAMESPACE
            dimensions = {name: line[name] for name in directive["Dimensions"][0]}
            for metric in directive["Metrics"]:
                value = line[metric["Name"]]
                found.append((metric["Name"], dimensions, value[0] if isinstance(value, list) else value))
    return found


def _template_resource(name: str) -> dict[str, Any]:
    return dict(load_template(REAL_TEMPLATE)["Resources"][name]["Properties"])


def test_a_metric_with_its_own_dimensions(capsys: pytest.CaptureFixture[str]) -> None:
    record_metric("QuotaRefusal", quota="rate_limited")
    ((name, dimensions, value),) = _metrics(_printed(capsys))
    assert (name, value) == ("QuotaRefusal", 1.0)
    assert dimensions["quota"] == "rate_limited"


def test_the_caller_is_on_every_log_line_and_leaves_with_the_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tenant_security import observability

    logger = make_logger(service="context-test")  # writes to the captured stdout
    monkeypatch.setattr(observability, "logger", logger)
    bind_request("acme", "alice")
    logger.info("first request")
    bind_request(None, None)  # the next request in the same execution environment
    logger.info("second request")
    first, second = _printed(capsys)
    assert (first["tenant_id"], first["user"]) == ("acme", "alice")
    assert "tenant_id" not in second
    assert "user" not in second


class _Fixed:
    def __init__(self, decision: dict[str, Any] | Exception) -> None:
        self.decision = decision

    def authorize(self, event: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.decision, Exception):
            raise self.decision
        return self.decision


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (
            {"principalId": "acme/alice", "context": {"tenant_id": "acme", "user": "alice"}},
            ("allow", "allowed"),
        ),
        (
            {"principalId": "acme/alice", "context": {"tenant_id": "acme", "deny_reason": "mfa_required"}},
            ("deny", "mfa_required"),
        ),
        (Unauthorized("expired token"), ("unauthorized", "invalid_credentials")),
    ],
)
def test_authorizer_decisions_are_counted_by_reason(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    decision: dict[str, Any] | Exception,
    expected: tuple[str, str],
) -> None:
    module = load_function("authorizer")
    monkeypatch.setattr(services, "request_authorizer", lambda: _Fixed(decision))
    if isinstance(decision, Exception):
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            module.lambda_handler(sample("authorizer_request.json"), FakeContext())
    else:
        module.lambda_handler(sample("authorizer_request.json"), FakeContext())
    decisions = [d for n, d, _ in _metrics(_printed(capsys)) if n == module.DECISION_METRIC]
    assert [(d["decision"], d["reason"]) for d in decisions] == [expected]


def test_an_authorizer_failure_is_the_metric_its_alarm_watches(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_function("authorizer")
    monkeypatch.setattr(services, "request_authorizer", lambda: _Fixed(RuntimeError("dynamodb down")))
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        module.lambda_handler(sample("authorizer_request.json"), FakeContext())
    printed = _metrics(_printed(capsys))
    alarm = _template_resource("AuthorizerErrorsAlarm")
    (watched,) = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if m["Id"] == "caught"]
    assert watched["Namespace"] == METRICS_NAMESPACE
    assert (watched["MetricName"], 1.0) in [(name, value) for name, _, value in printed]
    # Powertools adds the service dimension from POWERTOOLS_SERVICE_NAME, which the template sets.
    service = _template_resource("AuthorizerFunction")["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert watched["Dimensions"] == [{"Name": "service", "Value": service}]


def test_quota_refusals_are_counted_by_quota(capsys: pytest.CaptureFixture[str]) -> None:
    app = make_resolver()

    @app.get("/busy")
    def busy() -> dict[str, str]:
        raise RateLimited("acme: request limit reached (minute)")

    event = {"httpMethod": "GET", "path": "/busy", "resource": "/busy", "requestContext": {"requestId": "r1"}}
    reply = app.resolve(event, FakeContext())
    assert reply["statusCode"] == 429
    assert [(n, d["quota"]) for n, d, _ in _metrics(_printed(capsys))] == [("QuotaRefusal", "rate_limited")]


class _Provisioner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def activate(self, request: Any, execution: str) -> dict[str, str]:
        return {"status": "ACTIVE"}

    def compensate(self, tenant_id: str, execution: str, reason: str) -> dict[str, Any]:
        self.calls.append(reason)
        return {"tenant_id": tenant_id, "compensated": True}

    def validate(self, data: Any) -> Any:
        return data

    def seconds_since_registered(self, tenant_id: str) -> float:
        return 42.0


@pytest.mark.parametrize(("step", "outcome"), [("activate", "onboarded"), ("compensate", "rolled_back")])
def test_onboarding_outcome_and_duration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], step: str, outcome: str
) -> None:
    module = load_function("onboarding")

    class NoFaults:
        def check(self, *args: Any) -> None:
            return None

    monkeypatch.setattr(services, "provisioner", _Provisioner)
    monkeypatch.setattr(services, "faults", NoFaults)
    event = {"step": step, "tenant_id": "acme", "request": {"tenant_id": "acme"}, "error": {"Error": "X"}}
    module.lambda_handler(event, FakeContext())
    printed = _metrics(_printed(capsys))
    assert ("OnboardingOutcome", outcome, 1.0) in [(n, d.get("outcome"), v) for n, d, v in printed]
    assert ("OnboardingDuration", outcome, 42.0) in [(n, d.get("outcome"), v) for n, d, v in printed]


def test_the_dashboard_reads_the_metrics_the_code_writes() -> None:
    body = _template_resource("OperationsDashboard")["DashboardBody"]["Fn::Sub"][0]
    for metric in (
        "AuthorizerDecision",
        "QuotaRefusal",
        "OnboardingOutcome",
        "OnboardingDuration",
        "AuditLag",
    ):
        assert metric in body
    assert "ApproximateNumberOfMessagesVisible" in body  # dead-letter depth, SQS's own metric
    placeholders = {"${AWS::Region}": "us-east-1", "${Namespace}": METRICS_NAMESPACE}
    for name in ("ResourcePrefix", "Stage", "EventDeliveryDLQ.QueueName"):
        placeholders["${" + name + "}"] = "x"
    for placeholder, value in placeholders.items():
        body = body.replace(placeholder, value)
    import re

    body = re.sub(r"\$\{[A-Za-z]+Alarm\.Arn\}", "arn:aws:cloudwatch:us-east-1:1:alarm:x", body)
    widgets = json.loads(body)["widgets"]
    assert len(widgets) >= 7


def test_the_hourly_tick_reports_the_dead_letter_depth(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    import boto3

    from tenant_security import aws
    from tests.support.moto import mocked_aws

    module = load_function("audit_writer")
    with mocked_aws(monkeypatch):
        aws.reset_clients()
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        for n in range(3):
            sqs.send_message(QueueUrl=queue_url, MessageBody=f"undelivered event {n}")
        monkeypatch.setattr(services, "settings", lambda: SimpleNamespace(event_dlq_url=queue_url))
        monkeypatch.setattr(
            services, "audit_writer", lambda: SimpleNamespace(checkpoint_all=lambda: [], take_lost=lambda: [])
        )
        tick = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-11-27T00:00:00Z"}
        assert module.lambda_handler(tick, FakeContext()) == {"checkpoints": []}
        aws.reset_clients()
    printed = _metrics(_printed(capsys))
    assert ("DeadLetterDepth", 3.0) in [(name, value) for name, _, value in printed]


def test_a_forged_event_is_the_metric_its_alarm_watches(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.audit import activity_event, audit_stack
    from tests.support.moto import mocked_aws

    module = load_function("audit_writer")
    with mocked_aws(monkeypatch):
        stack = audit_stack()
        stack.add_tenant("acme")
        monkeypatch.setattr(services, "audit_writer", stack.writer)
        genuine = activity_event("acme", 1)
        module.lambda_handler(genuine, FakeContext())
        forged = {**activity_event("acme", 2), "source": "attacker.example"}
        module.lambda_handler(forged, FakeContext())
    printed = _metrics(_printed(capsys))
    assert [name for name, _, _ in printed].count("ForgedEvents") == 1  # the forged one only
    alarm = _template_resource("ForgedEventsAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == (METRICS_NAMESPACE, "ForgedEvents")
    service = _template_resource("AuditWriterFunction")["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]
