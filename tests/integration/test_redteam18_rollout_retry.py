"""Red team (issue 18): a rollout whose start never happened is never started.

PolicyAdmin.change commits the document with ``rollout: pending`` and only then calls
StartExecution. When the function dies in between (Lambda timeout, out of memory, the process
killed) or StartExecution fails (throttled: rollout ``failed``), the client sees a 5xx / failed
rollout and does what a client does: sends the same PUT again. The same document again is "no
change" (no revision), so nothing starts the rollout: the keys keep their old rotation period and
replicas (a dropped data_locality region keeps its key replica) while GET says ``pending``
forever. Nothing else ever restarts a pending rollout (no sweep, no alarm: no execution failed).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_policy_admin import change, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


class Crash(BaseException):
    """The function's process ending mid-request (a Lambda timeout is not an Exception)."""


def test_a_retried_put_after_a_crash_before_start_execution_starts_the_rollout(
    world: dict[str, Any],  # noqa: F811 - the fixture
) -> None:
    rollouts = world["rollouts"]
    body = {"audit_logging": {"retention_days": 3650}}

    def crash(tenant_id: str, revision: int) -> None:
        raise Crash

    rollouts.start = crash
    with pytest.raises(Crash):
        world["admin"].change(change(body))
    assert world["store"].get("acme").rollout["status"] == "pending"

    del rollouts.start  # StartExecution works again; the client retries its request
    reply = world["admin"].change(change(body))
    # The rollout of revision 1 must have been started by now (or the retry must say it is not)
    assert rollouts.started == [("acme", 1)], (
        f"rollout {reply.document['rollout']} and no execution was ever started"
    )


def test_a_retried_put_after_a_start_that_failed_starts_the_rollout(
    world: dict[str, Any],  # noqa: F811 - the fixture
) -> None:
    rollouts = world["rollouts"]
    body = {"data_protection": {"key_rotation_days": 180}}
    rollouts.fail = True
    assert world["admin"].change(change(body)).document["rollout"]["status"] == "failed"
    rollouts.fail = False
    world["admin"].change(change(body))  # the same request again, once Step Functions is back
    assert rollouts.started == [("acme", 1)]
