"""Who may change a provisioning tenant (moto): the execution that registered it, and only once
no step of an earlier owner can still be running.

Regression (red team): an operator stopped execution A while A's compensation Lambda was at work
(stopping an execution does not stop a Lambda step in flight); B took the registration over and
provisioned the tenant, then A's compensation went on and deleted everything B built.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.users import UserStore
from tenant_security.models.onboarding import parse_onboarding_request
from tenant_security.onboarding.executions import STEP_TIMEOUT_MARGIN_SECONDS, execution_checker
from tenant_security.onboarding.provisioner import TenantProvisioner
from tenant_security.tenants import NotOwner, TenantStore
from tests.support.clock import ManualClock
from tests.support.moto import create_table, mocked_aws
from tests.support.settings import local_settings

pytestmark = pytest.mark.integration
A = "arn:aws:states:us-east-1:123456789012:execution:dcisionai-tenant-onboarding:run-A"
B = "arn:aws:states:us-east-1:123456789012:execution:dcisionai-tenant-onboarding:run-B"
STEP_TIMEOUT = 120


class Executions:
    """Step Functions' DescribeExecution, as the test sets each execution."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}

    def run(self, arn: str) -> None:
        self.state[arn] = {"status": "RUNNING"}

    def stop(self, arn: str, at: float) -> None:
        self.state[arn] = {"status": "ABORTED", "stopDate": datetime.fromtimestamp(at, UTC)}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        return self.state[executionArn]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TenantProvisioner, Executions, ManualClock]]:
    with mocked_aws(monkeypatch):
        settings = local_settings()
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        for table, keys in (
            (settings.tenants_table, ("tenant_id",)),
            (settings.users_table, ("tenant_id", "username")),
            (settings.sessions_table, ("tenant_id", "session_id")),
            (settings.counters_table, ("pk", "sk")),
        ):
            create_table(ddb, table, *keys)
        executions, clock = Executions(), ManualClock()
        provisioner = TenantProvisioner(
            settings,
            boto3.client("kms", region_name="us-east-1"),
            boto3.client("s3", region_name="us-east-1"),
            boto3.client("secretsmanager", region_name="us-east-1"),
            TenantStore(ddb, settings.tenants_table),
            UserStore(ddb, settings.users_table),
            SessionStore(ddb, settings.sessions_table, settings.counters_table),
            lambda: None,  # type: ignore[arg-type,return-value]
            execution_running=execution_checker(executions, STEP_TIMEOUT, clock),
        )
        yield provisioner, executions, clock


REQUEST = {
    "tenant_id": "victim",
    "name": "Victim",
    "isolation": "schema",
    "admin": {"username": "owner", "email": "o@v.io"},
}


def test_an_execution_stopped_a_moment_ago_is_not_taken_over(
    world: tuple[TenantProvisioner, Executions, ManualClock],
) -> None:
    provisioner, executions, clock = world
    request = parse_onboarding_request(REQUEST)
    executions.run(A)
    assert provisioner.register(request, A)["proceed"] is True
    executions.stop(A, clock())  # ... while its compensation Lambda may still be running
    executions.run(B)
    assert provisioner.register(request, B) == {"status": "PROVISIONING", "proceed": False}
    clock.now += STEP_TIMEOUT  # still within a step's timeout (and its margin)
    assert provisioner.register(request, B)["proceed"] is False
    with pytest.raises(NotOwner):
        provisioner.create_keys(request, B)  # B changes nothing meanwhile


def test_an_execution_over_for_longer_than_a_step_is_taken_over_and_its_work_is_the_new_owners(
    world: tuple[TenantProvisioner, Executions, ManualClock],
) -> None:
    provisioner, executions, clock = world
    request = parse_onboarding_request(REQUEST)
    executions.run(A)
    provisioner.register(request, A)
    executions.stop(A, clock())
    clock.now += STEP_TIMEOUT + STEP_TIMEOUT_MARGIN_SECONDS + 1  # no step of A can run any more
    executions.run(B)
    assert provisioner.register(request, B)["proceed"] is True
    assert provisioner.compensate("victim", A, "late")["compensated"] is False  # A: not its tenant
    record = provisioner.tenants.get("victim")
    assert record is not None
    assert (record.status, record.owner_execution) == ("PROVISIONING", B)


def test_an_execution_step_functions_no_longer_knows_is_over(
    world: tuple[TenantProvisioner, Executions, ManualClock],
) -> None:
    provisioner, executions, _clock = world
    request = parse_onboarding_request(REQUEST)
    executions.run(A)
    provisioner.register(request, A)
    del executions.state[A]

    def gone(executionArn: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "ExecutionDoesNotExist", "Message": "gone"}}, "DescribeExecution"
        )

    executions.describe_execution = gone  # type: ignore[method-assign]
    assert provisioner.register(request, B)["proceed"] is True


def test_a_duplicate_delivery_registering_at_the_same_moment_claims_nothing_and_undoes_nothing(
    world: tuple[TenantProvisioner, Executions, ManualClock],
) -> None:
    """EventBridge delivered the one request twice: two running executions register at once.
    Exactly one owns the tenant; the other neither provisions nor compensates anything."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    provisioner, executions, _clock = world
    request = parse_onboarding_request(REQUEST)
    executions.run(A)
    executions.run(B)
    barrier = Barrier(2)

    def register(execution: str) -> bool:
        barrier.wait()
        return bool(provisioner.register(request, execution)["proceed"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        proceeds = dict(zip((A, B), pool.map(register, (A, B)), strict=True))
    assert sorted(proceeds.values()) == [False, True]
    owner = next(arn for arn, mine in proceeds.items() if mine)
    other = B if owner == A else A
    record = provisioner.tenants.get("victim")
    assert record is not None
    assert (record.status, record.owner_execution) == ("PROVISIONING", owner)
    with pytest.raises(NotOwner):
        provisioner.create_keys(request, other)
    assert provisioner.compensate("victim", other, "a step failed")["compensated"] is False
    after = provisioner.tenants.get("victim")
    assert after is not None
    assert (after.status, after.owner_execution) == ("PROVISIONING", owner)
