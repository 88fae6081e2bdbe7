"""Red team 19b: every function that decrypts under a key may ask KMS about that key.

crypto._kms_unavailable tells a KMS throttle or outage (503) from a refusal by asking KMS
about the message's key: DescribeKey, then Decrypt. A function whose role may Decrypt under a key
but not DescribeKey it gets AccessDenied from the probe, which is not transient: a throttled
Decrypt becomes DecryptionRefused -- a 403 for an MFA code (auth API, tenant secrets keys), a
tenant secret read (data API), and in the audit writer a sealed event's personal fields dropped
from the record for good (event_pii.open catches DecryptionRefused) or a stored record decoded
as none (audit/cipher.py).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from localcloud.template import transform_template
from tests.support.cloud import REAL_TEMPLATE
from tests.support.iam import statements


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return transform_template(REAL_TEMPLATE, {}, "us-east-1")[0]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def _function_statements(cfn: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for name, res in cfn["Resources"].items():
        if res["Type"] != "AWS::Lambda::Function":
            continue
        role = cfn["Resources"][res["Properties"]["Role"]["Fn::GetAtt"][0]]
        found[name] = [
            s
            for p in role["Properties"].get("Policies", [])
            for s in statements(p["PolicyDocument"])
            if s.get("Effect") == "Allow"
        ]
    return found


def _aliases(statement: dict[str, Any]) -> list[str]:
    condition = statement.get("Condition") or {}
    found = condition.get("ForAnyValue:StringLike", {}).get("kms:ResourceAliases", [])
    return [json.dumps(found)] if not isinstance(found, list) else [json.dumps(a) for a in found]


def _covers(describe: dict[str, Any], decrypt: dict[str, Any]) -> bool:
    """True when ``describe`` reaches every key ``decrypt`` does: the same resource, and no
    alias condition or one whose pattern matches the decrypt's (tenant-* covers tenant-*-data)."""
    if json.dumps(describe.get("Resource"), sort_keys=True) != json.dumps(
        decrypt.get("Resource"), sort_keys=True
    ):
        return False
    if not describe.get("Condition"):
        return True
    wanted = _aliases(decrypt)
    return bool(wanted) and all(
        any(fnmatch.fnmatchcase(w, d.replace('*"', "*")) or w == d for d in _aliases(describe))
        for w in wanted
    )


def test_every_decrypt_grant_comes_with_describe_key_on_the_same_keys(cfn: dict[str, Any]) -> None:
    missing = []
    for function, granted in _function_statements(cfn).items():
        for statement in granted:
            if "kms:Decrypt" not in _actions(statement):
                continue
            if not any("kms:DescribeKey" in _actions(s) and _covers(s, statement) for s in granted):
                missing.append(f"{function}:{statement.get('Sid')}")
    # fails: AuthApiFunction:TenantMfaSecrets, AuditWriterFunction:{RecordEncryption,
    # PlatformSubjectKeys, TenantSubjectKeys}, DataApiFunction:TenantSecretsKeys,
    # ComplianceApiFunction:DecryptRecords (the AuditLogKey)
    assert missing == [], missing
