"""The onboarding and offboarding state machines against AWS's rules (issue 16, items 15 and 18).

- A throttled step (reserved concurrency) is refused at once on AWS: every Lambda task retries
  ``Lambda.TooManyRequestsException`` on its own, long enough and with jitter, so concurrent
  onboardings never run out of retries; Compensate retries longest.
- ``States.ALL`` does not catch ``States.Runtime``: a path a state reads that is not there ends
  the execution without compensation. Every path into a step's result is a field the step
  guarantees (``STEP_OUTPUT_FIELDS``, checked by the function), and the events read the caught
  error only through its normalised copy.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MACHINES = {
    name: json.loads((ROOT / "statemachines" / f"tenant_{name}.asl.json").read_text())
    for name in ("onboarding", "offboarding")
}
THROTTLE = "Lambda.TooManyRequestsException"
SERVICE = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"}
# How long a throttled step keeps trying at least (the delays before jitter): several
# onboardings share the onboarding function's reserved concurrency, each step up to minutes.
THROTTLE_WINDOW_SECONDS = 300


def _onboarding_function() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fn_onboarding", ROOT / "functions" / "onboarding" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lambda_tasks() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (machine, name, state)
        for machine, definition in MACHINES.items()
        for name, state in definition["States"].items()
        if state.get("Resource") == "arn:aws:states:::lambda:invoke"
    ]


def _window(retrier: dict[str, Any]) -> float:
    """The retrier's delays before jitter, summed (Step Functions' back-off, capped)."""
    interval = float(retrier.get("IntervalSeconds", 1))
    rate = float(retrier.get("BackoffRate", 2.0))
    cap = float(retrier.get("MaxDelaySeconds", 1e9))
    return sum(min(cap, interval * rate**k) for k in range(int(retrier.get("MaxAttempts", 3))))


@pytest.mark.parametrize(
    ("machine", "name", "state"), _lambda_tasks(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_lambda_task_retries_a_throttle_on_its_own_long_enough_with_jitter(
    machine: str, name: str, state: dict[str, Any]
) -> None:
    retry = state["Retry"]
    (throttle,) = [r for r in retry if THROTTLE in r["ErrorEquals"]]
    assert throttle["ErrorEquals"] == [THROTTLE]  # its own attempts, not shared with other errors
    assert throttle["JitterStrategy"] == "FULL"  # concurrent runs do not retry in step
    assert throttle["MaxAttempts"] >= 20
    assert _window(throttle) >= THROTTLE_WINDOW_SECONDS, (machine, name)
    (service,) = [r for r in retry if SERVICE & set(r["ErrorEquals"])]
    assert set(service["ErrorEquals"]) == SERVICE
    assert service["JitterStrategy"] == "FULL"
    assert any(r["ErrorEquals"] == ["TransientError"] for r in retry)
    assert all("States.ALL" not in r["ErrorEquals"] for r in retry)


def test_compensation_outlasts_every_other_steps_throttle() -> None:
    """A throttled Compensate left the tenant PROVISIONING with its resources leaked."""
    states = MACHINES["onboarding"]["States"]
    (compensate,) = [r for r in states["Compensate"]["Retry"] if r["ErrorEquals"] == [THROTTLE]]
    others = [
        r
        for _m, name, state in _lambda_tasks()
        if name != "Compensate"
        for r in state["Retry"]
        if r["ErrorEquals"] == [THROTTLE]
    ]
    assert compensate["MaxAttempts"] > max(r["MaxAttempts"] for r in others)
    (transient,) = [r for r in states["Compensate"]["Retry"] if r["ErrorEquals"] == ["TransientError"]]
    assert transient["MaxAttempts"] >= 8


def _paths(value: Any) -> list[str]:
    """Every JSONPath a state's fields read (``x.$`` values, Choice variables)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if (key.endswith(".$") or key == "Variable") and isinstance(child, str):
                found += re.findall(r"\$\$?\.[A-Za-z0-9_.\-]+", child) or [child]
            else:
                found += _paths(child)
    elif isinstance(value, list):
        for child in value:
            found += _paths(child)
    return found


def test_every_path_into_a_steps_result_is_a_field_the_step_guarantees() -> None:
    fields = _onboarding_function().STEP_OUTPUT_FIELDS
    checked = 0
    for definition in MACHINES.values():
        states = definition["States"]
        stored: dict[str, str] = {}  # "$.admin" -> the step whose whole Payload is kept there
        for name, state in states.items():
            if state.get("Resource") != "arn:aws:states:::lambda:invoke":
                continue
            step = state["Parameters"]["Payload"]["step"]
            assert step in fields, name
            for path in _paths(state.get("ResultSelector") or {}):
                if path == "$.Payload":
                    continue  # the whole result, read further by later states (below)
                (field,) = re.fullmatch(r"\$\.Payload\.([A-Za-z0-9_\-]+)", path).groups()  # type: ignore[union-attr]
                assert field in fields[step], (name, path)
                checked += 1
            if (state.get("ResultSelector") or {}).get("result.$") == "$.Payload":
                stored[state["ResultPath"]] = step
        for name, state in states.items():
            for path in _paths({k: v for k, v in state.items() if k != "ResultSelector"}):
                match = re.fullmatch(r"(\$\.[A-Za-z0-9_\-]+)\.result\.([A-Za-z0-9_\-]+).*", path)
                if match and match.group(1) in stored:
                    assert match.group(2) in fields[stored[match.group(1)]], (name, path)
                    checked += 1
    assert checked >= 10  # the test looked at the paths it is about


def test_the_events_read_the_caught_error_only_through_its_normalised_copy() -> None:
    """A Catch's error output may lack a Cause; the events read ``$.failure.merged``, which the
    Pass states before them merge over defaults (States.JsonMerge), so their paths exist."""
    states = MACHINES["onboarding"]["States"]
    for name, state in states.items():
        assert not [p for p in _paths(state.get("Parameters") or {}) if p.startswith("$.error.")], name
    for event in ("FailedEvent", "RejectedEvent"):
        detail = states[event]["Parameters"]["Entries"][0]["Detail"]
        assert (detail["error.$"], detail["reason.$"]) == ("$.failure.merged.Error", "$.failure.merged.Cause")
    for defaults, describe, event in (
        ("FailureDefaults", "DescribeFailure", "FailedEvent"),
        ("RejectionDefaults", "DescribeRejection", "RejectedEvent"),
    ):
        assert set(states[defaults]["Result"]) == {"Error", "Cause"}
        assert states[defaults]["Next"] == describe
        assert states[describe]["Next"] == event
    targets = {c["Next"] for s in states.values() for c in s.get("Catch", [])}
    targets |= {c["Next"] for s in states.values() for c in s.get("Choices", [])}
    assert "FailedEvent" not in targets
    assert "RejectedEvent" not in targets


def test_a_step_result_without_a_field_the_machine_reads_fails_in_the_function() -> None:
    app = _onboarding_function()
    with pytest.raises(app.MalformedStepResult, match="compensated"):
        app._checked("compensate", {"tenant_id": "acme"})
    assert app._checked("register", {"status": "PROVISIONING", "proceed": True}) == {
        "status": "PROVISIONING",
        "proceed": True,
    }


def test_the_largest_valid_onboarding_request_fits_in_an_event_and_a_state() -> None:
    """Every list and string of the request at its maximum: far under the limit, so the limit
    never refuses a valid request, and the execution's state stays under 256 KB."""
    from tenant_security.models.onboarding import parse_onboarding_request
    from tenant_security.onboarding.requests import ONBOARDING_REQUEST_MAX_BYTES
    from tests.support.tenants import request_body

    body: dict[str, Any] = request_body("a" * 20, "schema")
    body["name"] = "\u00e9" * 128  # escaped as \\u00e9: 6 bytes each in the event
    body["admin"] = {"username": "owner", "email": f"{'a' * 64}@{'b' * 120}.{'c' * 63}"}
    policies = body.setdefault("security_policies", {})
    policies["access_control"] = {
        "ip_whitelist": [f"2001:db8:{i:x}::/48" for i in range(100)],
    }
    policies["compliance"] = {
        "segregation_of_duties": [[f"r{i:02d}" + "a" * 45, f"s{i:02d}" + "b" * 45] for i in range(50)],
    }
    body.setdefault("resource_quotas", {})["domains"] = {f"d{i:02d}" + "x" * 29: True for i in range(100)}
    request = parse_onboarding_request(body)
    size = len(json.dumps(request.model_dump(mode="json")))
    assert size < ONBOARDING_REQUEST_MAX_BYTES / 2
    assert ONBOARDING_REQUEST_MAX_BYTES < 262_144 / 3  # the request, beside the steps' results
