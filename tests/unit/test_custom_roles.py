"""The bound of a custom role (authz/custom_roles.py): tenant-scoped actions only, never more than
its author holds -- proved over random permission sets -- and the SOX segregation-of-duties check
with custom roles in its pairs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenant_security.authz.custom_roles import (
    BuiltinRole,
    check_manageable,
    check_role_name,
    grantable,
    held_actions,
    tenant_actions_of,
)
from tenant_security.authz.rbac import BUILTIN_ROLES, SELF_SERVICE, TENANT_ACTIONS, is_allowed, permissions
from tenant_security.authz.routes import ROUTES
from tenant_security.compliance.checks import Checks
from tenant_security.errors import Forbidden, ValidationFailed
from tenant_security.models import parse_security_policies
from tests.support.compliance import evidence, user

EVERY_ACTION = sorted({r.action for r in ROUTES} | set(SELF_SERVICE))
SERVICES = sorted({a.split(":")[0] for a in EVERY_ACTION})
# Patterns as an author might write them: concrete actions (tenant and platform ones), a
# service's wildcard, prefixes, the whole wildcard, typos and malformed text.
PATTERNS = st.one_of(
    st.sampled_from(EVERY_ACTION),
    st.sampled_from(SERVICES).map(lambda s: f"{s}:*"),
    st.sampled_from(EVERY_ACTION).map(lambda a: a[: max(1, len(a) // 2)] + "*"),
    st.just("*"),
    st.sampled_from(
        ["files:Raed", "nothing:Read", "tenants:Delete", "auth:Logout", "files:?ead", "[f]iles:*"]
    ),
    st.text(alphabet="abcdefgRWL:*", min_size=1, max_size=12),
)


def _attempt(patterns: list[str], held: frozenset[str]) -> tuple[str, ...] | None:
    try:
        return grantable(patterns, held)
    except (ValidationFailed, Forbidden):
        return None


@settings(max_examples=600, deadline=None)
@given(caller=st.lists(PATTERNS, max_size=8), requested=st.lists(PATTERNS, min_size=1, max_size=8))
def test_a_role_never_grants_beyond_its_author_or_the_tenant(caller: list[str], requested: list[str]) -> None:
    """For any caller permission set and any requested pattern set: the stored role's expanded
    permissions are within the caller's and the tenant's actions, or the request is refused."""
    held = tenant_actions_of(caller)
    stored = _attempt(requested, held)
    if stored is None:
        return
    expanded = set(permissions(["custom"], {"custom": list(stored)})) - set(SELF_SERVICE)
    assert expanded <= set(TENANT_ACTIONS) & {a for a in TENANT_ACTIONS if is_allowed(a, caller)}
    # and it is exactly what the patterns grant in the tenant: nothing dropped silently either
    assert set(stored) == tenant_actions_of(requested)


@settings(max_examples=300, deadline=None)
@given(
    roles=st.lists(st.sampled_from(sorted(BUILTIN_ROLES)), max_size=3),
    requested=st.lists(PATTERNS, min_size=1),
)
def test_the_bound_holds_for_built_in_authors(roles: list[str], requested: list[str]) -> None:
    held = held_actions(roles, False, {})
    stored = _attempt(requested, held)
    if stored is not None:
        assert set(stored) <= held <= TENANT_ACTIONS


def test_a_tenant_admin_holds_every_tenant_action_and_a_platform_admin_may_grant_any() -> None:
    assert held_actions(["tenant-admin"], False, {}) == TENANT_ACTIONS
    assert held_actions(["platform-admin"], True, {}) == TENANT_ACTIONS
    # platform-admin counts only for the platform tenant's own (the flag), never by name
    assert held_actions(["platform-admin"], False, {}) == frozenset()
    assert grantable(["*"], TENANT_ACTIONS) == tuple(sorted(TENANT_ACTIONS))


def test_a_custom_role_admin_cannot_grant_what_it_lacks() -> None:
    custom = {"role-admin": ["roles:Write", "roles:Read", "secrets:Write"]}
    held = held_actions(["role-admin"], False, custom)
    assert grantable(["secrets:Write"], held) == ("secrets:Write",)
    with pytest.raises(Forbidden) as refused:
        grantable(["secrets:*"], held)  # a wildcard is judged by what it expands to
    assert "secrets:Read" in refused.value.message
    with pytest.raises(Forbidden):
        grantable(["secrets:Read"], held)


@pytest.mark.parametrize(
    "pattern", ["files:Raed", "tenants:Delete", "quotas:Write", "auth:Logout", "x", "f?les:*"]
)
def test_a_pattern_granting_no_tenant_action_is_a_field_error(pattern: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        grantable(["files:Read", pattern], TENANT_ACTIONS)
    assert [f["field"] for f in refused.value.fields or []] == ["permissions.1"]


def test_platform_only_actions_never_enter_a_role() -> None:
    assert set(grantable(["tenants:*"], TENANT_ACTIONS)) == {"tenants:Read"}


@pytest.mark.parametrize("name", ["tenant-admin", "viewer", "platform-admin"])
def test_built_in_names_are_not_redefined(name: str) -> None:
    with pytest.raises(BuiltinRole) as refused:
        check_role_name(name)
    assert (refused.value.status, refused.value.code) == (409, "builtin_role")


@pytest.mark.parametrize("name", ["a", "Ops", "1ops", "ops_team", "x" * 49, "ops/team"])
def test_role_names_follow_the_policy_rule(name: str) -> None:
    with pytest.raises(ValidationFailed):
        check_role_name(name)


def test_a_role_is_changed_only_by_someone_holding_all_of_it() -> None:
    check_manageable("ops", ["files:Read"], frozenset({"files:Read", "roles:Write"}))
    with pytest.raises(Forbidden):
        check_manageable("ops", ["secrets:Read"], frozenset({"files:Read", "roles:Write"}))
    with pytest.raises(Forbidden):  # a role stored as patterns (written before the bound) too
        check_manageable("ops", ["secrets:*"], frozenset({"secrets:Write"}))


def test_segregation_of_duties_pairs_may_name_custom_roles() -> None:
    policy = parse_security_policies(
        {
            "compliance": {
                "segregation_of_duties": [
                    ["payments-maker", "payments-approver"],
                    ["auditor", "payments-maker"],
                ]
            }
        }
    )
    checks = Checks(policy.compliance.segregation_of_duties)
    users = [
        user("ann", ["payments-approver", "payments-maker"]),
        user("bob", ["payments-maker"]),
        user("cy", ["auditor", "viewer"]),
    ]
    result = checks.segregation_of_duties(evidence(users=users))
    assert result["status"] == "fail"
    assert result["findings"] == [
        {"user": "ann", "conflicting_roles": ["payments-approver", "payments-maker"]}
    ]
