"""The local cloud's authorization of each AWS call, as the account would authorize it.

A call signed by a function's access key (``<key>-<LogicalId>``) is evaluated as its execution
role's session: the role's identity policies (inline and managed, as provisioned in moto's IAM
from template.yaml) and the resource's policy -- the key policy for KMS (KMS's rules: the key
policy must allow, directly or by naming the account, in which case IAM must allow too), the
bucket, bus, queue and secret policies otherwise (same account: an allow in either suffices). An
explicit Deny anywhere wins. A denied call is answered as the service answers (AccessDenied...).

Every condition key in a statement that could apply must be one the local cloud supplies (or
knows to be absent from such a call); any other is an error (500), never a silent allow.

CreateKey, PutKeyPolicy and ReplicateKey with a key policy are checked for lockout whoever calls:
the caller must be able to PutKeyPolicy through the new policy, or KMS refuses it.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from localcloud.iam.calls import Call, Check, UnmappedCall, checks_of, kms_key, parse_call
from localcloud.iam.evaluator import Decision, EvaluatorError, PolicyEvaluator, Principal, Simulation

log = logging.getLogger("localcloud.iam")

# Condition keys the local cloud supplies for a role's call (or knows it never carries).
_GLOBAL_KEYS = (
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principaltype",
    "aws:principalisawsservice",
    "aws:principaltag/*",
    "aws:securetransport",
    "aws:requestedregion",
    # set only when a service principal or a service on its own behalf calls: never a role's call
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:principalservicename",
    "aws:principalservicenameslist",
)
_SERVICE_KEYS = {
    "kms": (
        "kms:resourcealiases",
        "kms:requestalias",
        # not kms:EncryptionContext:<key>: iam-simulate 0.1.173 matches a key's variable part only
        # after a "/" (aws:PrincipalTag/x) and drops the request's value, so a statement on it would
        # refuse what AWS allows; a policy naming it is refused here, loudly (README lists it)
        "kms:encryptioncontextkeys",
        "kms:viaservice",
        "kms:calleraccount",
        "aws:resourcetag/*",
        "aws:requesttag/*",
        "aws:tagkeys",
    ),
    "secretsmanager": ("aws:resourcetag/*", "aws:requesttag/*", "aws:tagkeys"),
    "dynamodb": ("dynamodb:leadingkeys",),
    "events": ("events:source", "events:detail-type"),
    "s3": ("s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"),
}
# Keys iam-simulate types as multivalued (the service reference's ArrayOfString, for PutRule's
# patterns) that a PutEvents entry carries exactly one value of: EventBridge's documented policies
# test them with StringEquals. For one value, ``ForAnyValue:<op>`` (``ForAllValues:`` for a
# negated operator) is the same test, and the simulator takes it.
_ONE_VALUE_KEYS = frozenset({"events:source", "events:detail-type"})
_LOCKOUT = "The new key policy will not allow you to update the key policy in the future."


class UnsupportedConditionKey(RuntimeError):
    """A policy that could apply uses a condition key the local cloud does not supply."""


@dataclass(frozen=True)
class Denial:
    """An answer in the service's own error shape: status, headers, body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def statements(document: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """A policy document's statements."""
    if not document:
        return []
    found = document.get("Statement", [])
    return [found] if isinstance(found, Mapping) else list(found)


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def _may_apply(statement: Mapping[str, Any], action: str) -> bool:
    action = action.lower()
    if "Action" in statement:
        return any(fnmatch.fnmatchcase(action, a.lower()) for a in _strings(statement["Action"]))
    return not any(fnmatch.fnmatchcase(action, a.lower()) for a in _strings(statement.get("NotAction")))


def unsupported_condition_keys(policies: Iterable[Mapping[str, Any] | None], action: str) -> list[str]:
    """Condition keys of statements that may apply to ``action`` which the local cloud cannot supply."""
    allowed = _GLOBAL_KEYS + _SERVICE_KEYS.get(action.split(":", 1)[0].lower(), ())
    unknown = []
    for document in policies:
        for statement in statements(document):
            if not _may_apply(statement, action):
                continue
            for block in (statement.get("Condition") or {}).values():
                for key in block:
                    if not any(fnmatch.fnmatchcase(str(key).lower(), pattern) for pattern in allowed):
                        unknown.append(str(key))
    return sorted(set(unknown))


def one_valued(document: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``document`` with single-valued operators on :data:`_ONE_VALUE_KEYS` written as set operators."""
    if not document or not any(
        str(key).lower() in _ONE_VALUE_KEYS
        for statement in statements(document)
        for block in (statement.get("Condition") or {}).values()
        for key in block
    ):
        return document
    rewritten = []
    for statement in statements(document):
        condition: dict[str, dict[str, Any]] = {}
        for operator, block in (statement.get("Condition") or {}).items():
            for key, value in block.items():
                target = operator
                if str(key).lower() in _ONE_VALUE_KEYS and ":" not in operator and operator != "Null":
                    target = ("ForAllValues:" if "Not" in operator else "ForAnyValue:") + operator
                condition.setdefault(target, {})[key] = value
        rewritten.append({**statement, "Condition": condition} if condition else dict(statement))
    return {**document, "Statement": rewritten}


# ---------------------------------------------------------------------- principals
def _role_documents(account: str, role_name: str) -> tuple[tuple[str, str], ...]:
    """A role's identity policies as moto's IAM holds them (inline, then managed): name, JSON."""
    from moto.iam.models import iam_backends

    role = iam_backends[account]["global"].get_role(role_name)
    found: list[tuple[str, str]] = []
    for name, document in role.policies.items():
        found.append((name, document if isinstance(document, str) else json.dumps(document)))
    for arn, policy in role.managed_policies.items():
        document = next(v for v in policy.versions if v.is_default).document
        found.append((arn, document if isinstance(document, str) else json.dumps(document)))
    return tuple(found)


@functools.lru_cache(maxsize=512)
def _parsed(document: str) -> dict[str, Any]:
    """A policy document parsed (the same text is parsed once; the result is never changed)."""
    return dict(json.loads(document))


def _role_policies(account: str, role_name: str) -> list[tuple[str, dict[str, Any]]]:
    """A role's identity policies, parsed."""
    return [(name, _parsed(document)) for name, document in _role_documents(account, role_name)]


ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "LocalAdministrator", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
}


class Authorizer:
    """Authorizes the calls moto's server receives. ``functions``: access key -> principal."""

    def __init__(
        self,
        evaluator: PolicyEvaluator,
        account: str,
        functions: Mapping[str, Principal],
        report_only: bool = False,
    ) -> None:
        """``report_only``: log what would be denied and let it through (LOCALCLOUD_IAM=report)."""
        self.evaluator = evaluator
        self.account = account
        self.functions = dict(functions)
        self.report_only = report_only
        self.denied = 0
        # decisions by the question as asked (the policies' own text included): no simulation to
        # build for a call asked before
        self._decisions: dict[tuple[Any, ...], Decision] = {}

    # ------------------------------------------------------------------ entry
    def authorize(
        self, environ: Mapping[str, Any], body: bytes, access_key: str, service: str, region: str
    ) -> Denial | None:
        """None when AWS would let the call through to the service; its error otherwise."""
        principal = self.functions.get(access_key)
        try:
            call = parse_call(environ, body, service, region, self.account)
            lockout = self._lockout(call, principal, access_key)
            if lockout is not None or principal is None:
                return lockout
            for check in checks_of(call, self.account):
                where = f"{check.action} on {check.resource}"
                denial = self._check(call, principal, check)
                if denial is not None:
                    self.denied += 1
                    log.info(
                        "%s: %s %s on %s with the condition keys %s",
                        "would deny" if self.report_only else "denied",
                        principal.session_arn,
                        check.action,
                        check.resource,
                        # the keys, not their values: a partition key or an encryption context
                        # may hold a user name or an address, which no log may carry
                        sorted(check.context),
                    )
                    if not self.report_only:
                        return denial
        except (UnmappedCall, UnsupportedConditionKey, EvaluatorError) as exc:
            log.error(
                "cannot authorize a %s call by %s (%s): %s",
                service,
                access_key,
                locals().get("where", "-"),
                exc,
            )
            return _error(service, 500, "InternalFailure", f"localcloud IAM: {exc}")
        return None

    # ------------------------------------------------------------------ one check
    def _check(self, call: Call, principal: Principal, check: Check) -> Denial | None:
        documents = _role_documents(principal.account, principal.role_name)
        question = (
            principal.session_arn,
            principal.role_arn,
            tuple(sorted(principal.tags.items())),
            check.action,
            check.resource,
            check.resource_account,
            json.dumps(check.context, sort_keys=True),
            documents,
            json.dumps(check.resource_policy, sort_keys=True),
        )
        decision = self._decisions.get(question)
        if decision is None:
            decision = self._decide(principal, check, [(name, _parsed(text)) for name, text in documents])
            if len(self._decisions) > 20_000:
                self._decisions.clear()
            self._decisions[question] = decision
        if decision.allowed:
            return None
        return _denied(call, principal, check, decision)

    def _decide(
        self, principal: Principal, check: Check, identity: list[tuple[str, dict[str, Any]]]
    ) -> Decision:
        unknown = unsupported_condition_keys([p for _, p in identity] + [check.resource_policy], check.action)
        if unknown:
            raise UnsupportedConditionKey(
                f"{check.action}: condition keys the local cloud does not supply: {unknown}"
            )
        context = {**principal.context(), **check.context}
        simulation = Simulation(
            principal.session_arn,
            check.action,
            check.resource,
            check.resource_account or self.account,
            context,
            [(name, one_valued(policy) or policy) for name, policy in identity],
            one_valued(check.resource_policy),
        )
        decision = self.evaluator.decide(simulation)
        if not decision.allowed:
            log.debug("%s: %s", decision.value, json.dumps(simulation.document()))
        return decision

    # ------------------------------------------------------------------ key policy lockout
    def _lockout(self, call: Call, principal: Principal | None, access_key: str) -> Denial | None:
        if call.service != "kms" or call.operation not in ("CreateKey", "PutKeyPolicy", "ReplicateKey"):
            return None
        policy_text = call.params.get("Policy")
        if not policy_text or call.params.get("BypassPolicyLockoutSafetyCheck"):
            return None
        try:
            policy = json.loads(policy_text)
        except ValueError:
            return None  # malformed: refused by the policy document check (motohooks)
        key_id = str(call.params.get("KeyId") or "")
        key = kms_key(self.account, call.region, key_id) if key_id else None
        region = str(call.params.get("ReplicaRegion") or call.region)
        resource = (
            str(key.arn).replace(call.region, region)
            if key is not None
            else (f"arn:aws:kms:{region}:{self.account}:key/00000000-0000-0000-0000-000000000000")
        )
        if principal is not None:
            caller, identity = principal.session_arn, _role_policies(principal.account, principal.role_name)
            context: dict[str, Any] = principal.context()
        else:  # the tests', an operator's: an administrator of the account
            caller = f"arn:aws:iam::{self.account}:user/{access_key}"
            identity, context = (
                [("LocalAdministrator", ADMIN_POLICY)],
                {
                    "aws:PrincipalArn": caller,
                    "aws:PrincipalAccount": self.account,
                    "aws:PrincipalType": "User",
                },
            )
        unknown = unsupported_condition_keys([policy], "kms:PutKeyPolicy")
        if unknown:
            raise UnsupportedConditionKey(
                f"kms:PutKeyPolicy: condition keys the local cloud does not supply: {unknown}"
            )
        context.update(
            {"aws:RequestedRegion": region, "aws:SecureTransport": "true", "kms:CallerAccount": self.account}
        )
        try:
            decision = self.evaluator.decide(
                Simulation(caller, "kms:PutKeyPolicy", resource, self.account, context, identity, policy)
            )
        except EvaluatorError as exc:
            # iam-simulate refuses a malformed policy; the policy document check answers it as AWS does
            log.info("lockout check skipped: %s", exc)
            return None
        if decision.allowed:
            return None
        log.info(
            "%s: a key policy that locks %s out", "would refuse" if self.report_only else "refused", caller
        )
        return None if self.report_only else _error("kms", 400, "MalformedPolicyDocumentException", _LOCKOUT)


# ---------------------------------------------------------------------- error shapes
def _reason(check: Check, decision: Decision) -> str:
    if decision is Decision.EXPLICITLY_DENIED:
        where = "a resource-based policy" if check.resource_policy else "an identity-based policy"
        return f"with an explicit deny in {where}"
    # a key's check (under its key policy); an alias or tag-on-create check is IAM's alone
    if check.action.startswith("kms:") and check.resource_policy is not None and not check.iam_only:
        return f"because no resource-based policy allows the {check.action} action"
    return f"because no identity-based policy allows the {check.action} action"


def _denied(call: Call, principal: Principal, check: Check, decision: Decision) -> Denial:
    message = (
        f"User: {principal.session_arn} is not authorized to perform: {check.action} on resource: "
        f"{check.resource} {_reason(check, decision)}"
    )
    if check.via == "secretsmanager":
        message = f"Access to KMS is not allowed ({message})"
    return _error(
        call.service,
        403 if call.service in ("s3", "sns", "lambda") else 400,
        "AccessDeniedException",
        message,
    )


def _error(service: str, status: int, code: str, message: str) -> Denial:
    """The error ``service`` answers with, in its protocol."""
    if service == "s3":
        s3_code = {"AccessDeniedException": "AccessDenied", "InternalFailure": "InternalError"}.get(
            code, code
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{s3_code}</Code><Message>{_xml(message)}</Message></Error>"
        )
        return Denial(status, (("Content-Type", "application/xml"),), body.encode())
    if service in ("sns", "iam", "sts"):
        query_code = {
            "AccessDeniedException": "AuthorizationError" if service == "sns" else "AccessDenied"
        }.get(code, code)
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{query_code}</Code>"
            f"<Message>{_xml(message)}</Message></Error><RequestId>localcloud</RequestId></ErrorResponse>"
        )
        return Denial(status, (("Content-Type", "text/xml"),), body.encode())
    if service == "lambda":
        body = json.dumps({"Type": "User", "Message": message})
        return Denial(
            status, (("Content-Type", "application/json"), ("x-amzn-ErrorType", code)), body.encode()
        )
    headers: list[tuple[str, str]] = [("Content-Type", "application/x-amz-json-1.1")]
    if service == "sqs":
        headers.append(("x-amzn-query-error", f"{code.removesuffix('Exception')};Sender"))
    code_type = f"com.amazonaws.dynamodb.v20120810#{code}" if service == "dynamodb" else code
    return Denial(status, tuple(headers), json.dumps({"__type": code_type, "message": message}).encode())


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
