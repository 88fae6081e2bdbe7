"""Who may put which platform events: each role its own kinds, only with the platform's source,
and the bus's own policy denying the platform's source (and offboarding requests) to everyone else."""

from __future__ import annotations

from localcloud.template import transform_template
from tests.support.cloud import REAL_TEMPLATE

PLATFORM_SOURCE = "dcisionai.tenant-security"


def test_the_template_lets_each_role_put_only_its_own_kinds_of_event() -> None:
    cfn = transform_template(REAL_TEMPLATE, {}, "us-east-1")[0]["Resources"]
    allowed: dict[str, set[str]] = {}
    for logical_id, resource in cfn.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                if "events:PutEvents" not in actions:
                    continue
                condition = statement["Condition"]["StringEquals"]
                assert condition["events:source"] == PLATFORM_SOURCE, logical_id
                allowed[logical_id] = set(condition["events:detail-type"])
    assert allowed["AuthorizerFunctionRole"] == {"Security Alert"}
    assert "Tenant Offboarding Requested" in allowed["AdminApiFunctionRole"]
    assert all(
        "Tenant Offboarding Requested" not in kinds
        for role, kinds in allowed.items()
        if role != "AdminApiFunctionRole"
    )
    assert allowed["OnboardingStateMachineRole"] == {"Tenant Onboarded", "Tenant Onboarding Failed"}
    assert allowed["OffboardingStateMachineRole"] == {"Tenant Offboarded"}
    statements = {
        r["Properties"]["StatementId"]: r["Properties"]["Statement"]
        for r in cfn.values()
        if r["Type"] == "AWS::Events::EventBusPolicy"
    }
    platform = statements["OnlyThePlatformSpeaksAsThePlatform"]
    assert (platform["Effect"], platform["Principal"], platform["Action"]) == (
        "Deny",
        {"AWS": "*"},
        "events:PutEvents",
    )
    assert platform["Condition"]["StringEquals"] == {"events:source": PLATFORM_SOURCE}
    speakers = {ref["Fn::GetAtt"][0] for ref in platform["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]}
    assert speakers == set(allowed)  # exactly the roles IAM lets put the platform's events
    offboarding = statements["OnlyTheAdminApiAsksForOffboarding"]
    assert offboarding["Effect"] == "Deny"
    assert offboarding["Condition"]["StringEquals"] == {"events:detail-type": "Tenant Offboarding Requested"}
    assert offboarding["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == {
        "Fn::GetAtt": ["AdminApiFunctionRole", "Arn"]
    }
