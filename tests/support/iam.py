"""Which AWS actions each function's role allows, against the calls it really made.

The local cloud enforces IAM for the functions' calls (``localcloud.iam``: role, resource and key
policies, conditions), so a denied call already fails the test that made it. This is the
backstop, and what is left of the check with ``LOCALCLOUD_IAM=report``: the local cloud signs each
function's calls with its own access key (``<key>-<LogicalId>``) and moto's server counts them by
service and operation: every call a function made in the tests must be an action its role in
template.yaml allows.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from localcloud.iam.calls import S3_IAM_ACTIONS

# SigV4 service names whose operation is not an IAM action of the same prefix.
_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}
# Calls that need no permission.
_FREE = {"sts:GetCallerIdentity"}
# Calls IAM authorises through the actions on each item instead of an action of their own.
_BY_ITEM_ACTIONS = {
    "dynamodb:TransactWriteItems": (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ),
    "dynamodb:TransactGetItems": ("dynamodb:GetItem",),
}
# S3 operations whose IAM action has another name: the local cloud's own table.
_S3_ACTIONS = S3_IAM_ACTIONS


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy document's statements (one may stand alone, not in a list)."""
    found = document.get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


def allowed_actions(cfn: dict[str, Any], function: str) -> list[str]:
    """Actions the function's role allows (its inline policies; SAM adds logs and X-Ray)."""
    role_id = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    actions = ["logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments"]
    for policy in cfn["Resources"][role_id]["Properties"].get("Policies", []):
        for statement in statements(policy["PolicyDocument"]):
            if statement.get("Effect") == "Allow":
                action = statement["Action"]
                actions += [action] if isinstance(action, str) else list(action)
    return actions


def _granted(action_patterns: list[str], wanted: tuple[str, ...]) -> bool:
    return any(
        fnmatch.fnmatchcase(w.lower(), a.lower()) or fnmatch.fnmatchcase(a.lower(), w.lower())
        for a in action_patterns
        for w in wanted
    )


def ungranted_calls(cfn: dict[str, Any], calls: dict[str, int]) -> list[str]:
    """``Function: service:Operation`` for every counted call its role does not allow."""
    functions = {k for k, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    missing = set()
    for key in calls:
        caller, _, call = key.partition("|")
        function = caller.rsplit("-", 1)[-1]
        if function not in functions:
            continue  # the tests' own or the local cloud's calls
        service, _, operation = call.partition(":")
        action = f"{_IAM_PREFIX.get(service, service)}:{operation}"
        if action in _FREE:
            continue
        if service == "s3":
            action = _S3_ACTIONS.get(operation, action)
        wanted = _BY_ITEM_ACTIONS.get(action, (action,))
        if not _granted(allowed_actions(cfn, function), wanted):
            missing.add(f"{function}: {action}")
    return sorted(missing)
