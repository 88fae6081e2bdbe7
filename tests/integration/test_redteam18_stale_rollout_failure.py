"""Red team (issue 18): a stale rollout execution that fails half-way leaves AWS wrong in silence.

Executions "may run in any order and at once, and the latest stored policy wins": an execution
whose pass converged to an older policy converges again when it sees a newer one -- but only when
the pass ends. When the pass fails for good half-way (an AccessDenied at the audit bucket, after
the keys), RolloutFailed ends the execution, and _record_failure records and alerts only for the
revision the profile names: the newer revision already recorded ``applied``, so nothing is
recorded and nobody is alerted, while the older pass has scheduled the replicas of a region the
current policy keeps for deletion. GET says ``applied``; KMS deletes the replicas in 7 days.
"""

from __future__ import annotations

import pytest

from tenant_security.config import KEY_PURPOSES
from tenant_security.policy.rollout import RolloutFailed
from tests.integration.test_policy_rollout import TENANT, World, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def test_a_stale_pass_that_fails_is_not_left_as_applied(world: World) -> None:  # noqa: F811
    world.onboard(data_locality=["us-east-1", "us-west-2"])
    narrow = world.change(data_protection={"data_locality": ["us-east-1"]})
    newer: dict[str, int] = {}

    def meanwhile() -> None:
        # while revision `narrow` is being applied (it read the narrow policy), the region comes
        # back and that revision's execution runs to its end first ...
        newer["revision"] = world.change(data_protection={"data_locality": ["us-east-1", "us-west-2"]})
        assert world.rollout.apply(TENANT, newer["revision"])["status"] == "applied"
        # ... and then the audit bucket refuses the slower pass (a permission, a flake)
        world.failing["put_object_lock_configuration"] = "AccessDenied"

    world.before["enable_key_rotation"] = meanwhile
    with pytest.raises(RolloutFailed):
        world.rollout.apply(TENANT, narrow)

    rollout = world.rollout_of()
    stale = {p: world.replicas(purpose=p) for p in KEY_PURPOSES}
    in_step = all(states == {"us-west-2": "Enabled"} for states in stale.values())
    told = rollout["status"] != "applied" or bool(world.alerts.sent)
    assert in_step or told, (
        f"the policy keeps us-west-2, GET says {rollout['status']} (revision {rollout['revision']}), "
        f"no alert, and the replicas are {stale}"
    )
