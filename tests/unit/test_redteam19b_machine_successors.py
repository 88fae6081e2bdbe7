"""Red team 19b: what a leaked tenant-admin client secret can still turn into a credential that
outlives the client's deletion.

rbac.NOT_FOR_MACHINES keeps users:Create from machines because "a leaked secret must not be
able to make itself a successor that outlives its deletion". A machine holding tenant-admin may
still raise any existing user of the tenant (an insider's viewer account, say) to tenant-admin
(users:WriteRoles), or redefine a custom role that user holds (roles:Write): that user then
makes a new client, and deleting the leaked one ends nothing. Either those two go into
NOT_FOR_MACHINES too, or the stated reason (and users:Create's refusal, which a service
provisioning users needs -- there is no SCIM here) is reconsidered.
"""

from __future__ import annotations

import pytest

from tenant_security.authz.rbac import TENANT_ADMIN, may_use, permissions
from tenant_security.authz.routes import rule_for


@pytest.mark.parametrize(
    ("method", "resource"),
    [
        ("PUT", "/tenants/{tenant_id}/users/{username}/roles"),
        ("PUT", "/tenants/{tenant_id}/roles/{role}"),
    ],
)
def test_a_machine_cannot_hand_a_person_the_power_to_mint_machines(method: str, resource: str) -> None:
    rule = rule_for(method, resource)
    assert rule is not None
    granted = permissions([TENANT_ADMIN], {})
    assert may_use(rule, granted)  # a person who is tenant-admin may
    assert not may_use(rule, granted, machine=True)  # fails: a tenant-admin client may too
