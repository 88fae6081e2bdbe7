"""The policy rollout's convergence plan (which replicas to add, restore, drop or wait for), its
refusals, and the state machine that runs it, against recording fakes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tenant_security.locality import (
    DataLocalityViolation,
    check_data_region,
    check_writable_in,
    replica_regions,
)
from tenant_security.models.policies import parse_security_policies
from tenant_security.onboarding.keys import ReplicaPlan, plan_replicas
from tenant_security.policy.rollout import PolicyRollout, execution_name, failure_detail
from tenant_security.tenants import TenantProfile, TenantStatus
from tests.support.settings import local_settings
from tests.unit.test_state_machines import SERVICE, THROTTLE, THROTTLE_WINDOW_SECONDS, _paths, _window

ROOT = Path(__file__).resolve().parents[2]
MACHINE = json.loads((ROOT / "statemachines" / "tenant_policy_rollout.asl.json").read_text())
HOME = "us-east-1"


def policies(regions: list[str], cross_region: bool = True, **protection: Any) -> Any:
    return parse_security_policies(
        {"data_protection": {"data_locality": regions, "cross_region_encryption": cross_region, **protection}}
    )


@pytest.mark.parametrize(
    ("states", "old", "new", "plan"),
    [
        # widening: a replica in the new region
        (
            {"us-west-2": "Enabled"},
            ["us-east-1", "us-west-2"],
            ["us-east-1", "us-west-2", "eu-west-1"],
            ReplicaPlan(add=("eu-west-1",)),
        ),
        # narrowing: the dropped region's replica is scheduled for deletion
        (
            {"us-west-2": "Enabled", "eu-west-1": "Enabled"},
            ["us-east-1", "us-west-2", "eu-west-1"],
            ["us-east-1", "eu-west-1"],
            ReplicaPlan(drop=("us-west-2",)),
        ),
        # a dropped region comes back while its replica waits for deletion: restored
        (
            {"us-west-2": "PendingDeletion"},
            ["us-east-1"],
            ["us-east-1", "us-west-2"],
            ReplicaPlan(restore=("us-west-2",)),
        ),
        # a restore cut short between CancelKeyDeletion and EnableKey: enabled
        (
            {"us-west-2": "Disabled"},
            ["us-east-1"],
            ["us-east-1", "us-west-2"],
            ReplicaPlan(restore=("us-west-2",)),
        ),
        # converged already: nothing (a repeated rollout is a no-op)
        ({"us-west-2": "Enabled"}, ["us-east-1", "us-west-2"], ["us-east-1", "us-west-2"], ReplicaPlan()),
        # dropped already: a pending deletion is not scheduled twice
        ({"us-west-2": "PendingDeletion"}, ["us-east-1", "us-west-2"], ["us-east-1"], ReplicaPlan()),
        # KMS still creating a replica: wait for it, whether it stays or goes
        (
            {"us-west-2": "Creating", "eu-west-1": "Updating"},
            ["us-east-1", "us-west-2"],
            ["us-east-1", "eu-west-1"],
            ReplicaPlan(busy=("eu-west-1", "us-west-2")),
        ),
    ],
)
def test_the_plan_takes_the_replicas_there_are_to_the_regions_the_new_policy_wants(
    states: dict[str, str], old: list[str], new: list[str], plan: ReplicaPlan
) -> None:
    # the old policy, converged, needed nothing
    converged = dict.fromkeys(replica_regions(policies(old), HOME), "Enabled")
    assert plan_replicas(converged, replica_regions(policies(old), HOME)) == ReplicaPlan()
    assert plan_replicas(states, replica_regions(policies(new), HOME)) == plan


def test_turning_cross_region_encryption_off_drops_every_replica() -> None:
    wanted = replica_regions(policies(["us-east-1", "us-west-2", "eu-west-1"], cross_region=False), HOME)
    assert wanted == []
    plan = plan_replicas({"us-west-2": "Enabled", "eu-west-1": "Disabled"}, wanted)
    assert plan == ReplicaPlan(drop=("eu-west-1", "us-west-2"))
    assert plan.changes == {"dropped": ["eu-west-1", "us-west-2"]}


def test_a_narrowed_data_locality_refuses_writes_in_the_dropped_region_at_once() -> None:
    """No wait for the rollout: the locality checks read the stored policy itself."""
    before = TenantProfile("acme", "Acme", TenantStatus.ACTIVE, policies=policies(["us-east-1", "us-west-2"]))
    after = TenantProfile("acme", "Acme", TenantStatus.ACTIVE, policies=policies(["us-east-1"]))
    check_writable_in(before, "us-west-2")
    check_data_region({"X-Data-Region": "us-west-2"}, before)
    with pytest.raises(DataLocalityViolation):
        check_writable_in(after, "us-west-2")
    with pytest.raises(DataLocalityViolation):
        check_data_region({"X-Data-Region": "us-west-2"}, after)
    check_writable_in(after, "us-east-1")


class FakeKeys:
    def __init__(self, multi: bool | None) -> None:
        self.multi = multi
        self.asked: list[str] = []

    def multi_region(self, tenant_id: str) -> bool | None:
        self.asked.append(tenant_id)
        return self.multi

    def converge_key(self, tenant_id: str, purpose: str, policies: Any) -> dict[str, list[str]]:
        raise AssertionError("refusals never change AWS")


def rollout(keys: FakeKeys) -> PolicyRollout:
    return PolicyRollout(local_settings(), None, None, None, keys, None, None, "")  # type: ignore[arg-type]


def tenant(tenant_id: str = "acme", **policy: Any) -> TenantProfile:
    return TenantProfile(tenant_id, "T", TenantStatus.ACTIVE, policies=parse_security_policies(policy))


def fields(problems: list[dict[str, str]]) -> list[str]:
    return [p["field"] for p in problems]


def test_a_single_region_tenant_may_not_turn_cross_region_encryption_on() -> None:
    keys = FakeKeys(multi=False)
    old = tenant(data_protection={"cross_region_encryption": False})
    new = policies(["us-east-1", "us-west-2"], cross_region=True)
    assert fields(rollout(keys).refusals(old, new)) == ["data_protection.cross_region_encryption"]
    assert keys.asked == ["acme"]
    # multi-Region keys: fine; a change that adds no replica region asks KMS nothing
    assert rollout(FakeKeys(multi=True)).refusals(old, new) == []
    same = FakeKeys(multi=False)
    assert rollout(same).refusals(tenant(), policies(["us-east-1", "us-west-2"], key_rotation_days=180)) == []
    assert same.asked == []


def test_a_data_locality_without_this_stacks_region_is_refused() -> None:
    problems = rollout(FakeKeys(multi=True)).refusals(tenant(), policies(["eu-west-1"]))
    assert fields(problems) == ["data_protection.data_locality"]
    assert "us-east-1" in problems[0]["message"]


def test_the_platform_tenants_key_is_the_stacks_own() -> None:
    platform = tenant(local_settings().platform_tenant_id)
    problems = rollout(FakeKeys(multi=None)).refusals(
        platform, policies(["us-east-1", "us-west-2"], cross_region=False, key_rotation_days=365)
    )
    assert sorted(fields(problems)) == [
        "data_protection.cross_region_encryption",
        "data_protection.key_rotation_days",
    ]
    # its retention and data locality may change (per-record retention, the locality checks)
    assert (
        rollout(FakeKeys(multi=None)).refusals(
            platform, parse_security_policies({"audit_logging": {"retention_days": 400}})
        )
        == []
    )


def test_a_failure_detail_names_the_operation_and_code_never_the_message() -> None:
    from botocore.exceptions import ClientError

    error = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "arn:aws:iam::123456789012:role/x is not"}},
        "ReplicateKey",
    )
    assert failure_detail(error, "data key") == "data key: ReplicateKey answered AccessDeniedException"
    assert failure_detail(ValueError("secret=hunter2"), "audit bucket") == "audit bucket: ValueError"
    assert execution_name("acme", 7) == "acme-policy-7"


# ---------------------------------------------------------------------- the state machine
def _function() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fn_policy_rollout", ROOT / "functions" / "policy_rollout" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tasks() -> dict[str, dict[str, Any]]:
    return {
        n: s for n, s in MACHINE["States"].items() if s.get("Resource") == "arn:aws:states:::lambda:invoke"
    }


@pytest.mark.parametrize("name", sorted(_tasks()))
def test_every_step_retries_throttles_and_transient_errors_on_its_own(name: str) -> None:
    retry = _tasks()[name]["Retry"]
    (throttle,) = [r for r in retry if THROTTLE in r["ErrorEquals"]]
    assert throttle["ErrorEquals"] == [THROTTLE]
    assert throttle["JitterStrategy"] == "FULL"
    assert _window(throttle) >= THROTTLE_WINDOW_SECONDS
    (service,) = [r for r in retry if SERVICE & set(r["ErrorEquals"])]
    assert set(service["ErrorEquals"]) == SERVICE
    assert any(r["ErrorEquals"] == ["TransientError"] for r in retry)
    assert all("States.ALL" not in r["ErrorEquals"] for r in retry)


def test_a_failure_is_recorded_once_and_the_execution_ends_failed() -> None:
    states = MACHINE["States"]
    catches = states["Apply"]["Catch"]
    # apply recorded (and alerted) a RolloutFailed itself: straight to the Fail state
    assert catches[0] == {"ErrorEquals": ["RolloutFailed"], "ResultPath": "$.error", "Next": "RolloutFailed"}
    # anything else (retries exhausted, a Lambda error): the fail step records it first
    assert catches[1]["ErrorEquals"] == ["States.ALL"]
    assert catches[1]["Next"] == "RecordFailure"
    assert states["RecordFailure"]["Parameters"]["Payload"]["step"] == "fail"
    assert states["RecordFailure"]["Next"] == "RolloutFailed"
    assert states["RolloutFailed"]["Type"] == "Fail"
    assert "Catch" not in states["RecordFailure"]  # its own failure fails the execution (alarmed)


def test_every_path_into_a_steps_result_is_a_field_the_step_guarantees() -> None:
    app = _function()
    checked = 0
    for name, state in _tasks().items():
        step = state["Parameters"]["Payload"]["step"]
        assert step in app.STEPS, name
        for path in _paths(state.get("ResultSelector") or {}):
            field = path.removeprefix("$.Payload.")
            assert field in app.STEP_OUTPUT_FIELDS[step], (name, path)
            checked += 1
    assert checked >= 1
    with pytest.raises(app.MalformedStepResult, match="status"):
        app._checked("apply", {"revision": 3})
