"""Policy documents checked the way AWS checks them before it accepts one.

moto stores any policy document it is given; AWS refuses a malformed one (a key policy naming
``role/x-*`` as a principal fails CreateKey with MalformedPolicyDocumentException). The local cloud
checks every document the code writes -- key policies, bucket, queue, topic, bus and secret
policies, IAM trust and permission policies -- with :func:`check_policy` and refuses what AWS
refuses (see ``motohooks.refuse_malformed_policies`` and the provisioner).

The grammar is AWS's (IAM JSON policy reference): the document's and statements' elements, Effect,
Version, Sid, Action/NotAction, Resource/NotResource, Principal/NotPrincipal, the condition block,
and which policy kinds must or must not name principals and resources. On top of it parliament
(duo-labs' linter, with AWS's service reference as of its release) expands each action and checks
its service prefix, the resources against each action's resource types and the condition keys;
of its findings only an unknown service prefix is a refusal, the rest are warnings (IAM accepts an
undocumented action or a resource no action applies to; it only never matches).
"""

from __future__ import annotations

import importlib
import importlib.resources
import importlib.util
import json
import re
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any


class Severity(Enum):
    """What AWS does with a document that has the finding."""

    REFUSED = "refused"  # the call fails (MalformedPolicyDocument and its kin)
    WARNING = "warning"  # accepted, but probably not what was meant


class Presence(Enum):
    """Whether a statement of a policy kind must name an element (Principal, Resource, Action)."""

    REQUIRED = "required"
    FORBIDDEN = "forbidden"
    # Accepted when missing, and the statement then has no effect (KMS key policies).
    INEFFECTIVE_WITHOUT = "ineffective without"


@dataclass(frozen=True)
class _Grammar:
    principal: Presence
    resource: Presence
    action: Presence
    # IAM takes only letters and digits in a Sid; the resource services take any string.
    alphanumeric_sid: bool = False
    # S3 alone knows canonical user ids.
    canonical_users: bool = False
    # KMS takes printable ASCII and Latin-1 only (and tab, LF, CR).
    latin1_only: bool = False


class PolicyKind(Enum):
    """Where a policy document is attached, which decides its grammar."""

    IDENTITY = "IAM permission policy"
    TRUST = "IAM role trust policy"
    KEY = "KMS key policy"
    BUCKET = "S3 bucket policy"
    QUEUE = "SQS queue policy"
    TOPIC = "SNS topic policy"
    EVENT_BUS = "EventBridge bus policy"
    SECRET = "Secrets Manager resource policy"  # noqa: S105 - a name, not a secret

    @property
    def grammar(self) -> _Grammar:
        return _GRAMMARS[self]


_RESOURCE_POLICY = _Grammar(Presence.REQUIRED, Presence.REQUIRED, Presence.REQUIRED)
_GRAMMARS = {
    # "Has prohibited field Principal" / "... Resource" (IAM's own words).
    PolicyKind.IDENTITY: _Grammar(
        Presence.FORBIDDEN, Presence.REQUIRED, Presence.REQUIRED, alphanumeric_sid=True
    ),
    PolicyKind.TRUST: _Grammar(
        Presence.REQUIRED, Presence.FORBIDDEN, Presence.REQUIRED, alphanumeric_sid=True
    ),
    # KMS: a statement without Resource or Action "has no effect", and CreateKey succeeds.
    PolicyKind.KEY: _Grammar(
        Presence.REQUIRED, Presence.INEFFECTIVE_WITHOUT, Presence.INEFFECTIVE_WITHOUT, latin1_only=True
    ),
    PolicyKind.BUCKET: _Grammar(
        Presence.REQUIRED, Presence.REQUIRED, Presence.REQUIRED, canonical_users=True
    ),
    PolicyKind.QUEUE: _RESOURCE_POLICY,
    PolicyKind.TOPIC: _RESOURCE_POLICY,
    PolicyKind.EVENT_BUS: _RESOURCE_POLICY,
    PolicyKind.SECRET: _RESOURCE_POLICY,
}


class Version(Enum):
    """The policy language versions AWS knows."""

    CURRENT = "2012-10-17"
    ORIGINAL = "2008-10-17"  # what IAM assumes without a Version: no policy variables


class Effect(Enum):
    """A statement's Effect (case-sensitive)."""

    ALLOW = "Allow"
    DENY = "Deny"


class PrincipalType(Enum):
    """The keys of a Principal object."""

    AWS = "AWS"
    SERVICE = "Service"
    FEDERATED = "Federated"
    CANONICAL_USER = "CanonicalUser"


_DOCUMENT_ELEMENTS = {"Version", "Id", "Statement"}
_STATEMENT_ELEMENTS = {
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
}
# Set qualifiers and the IfExists suffix a condition operator may carry.
_SET_QUALIFIERS = ("ForAllValues:", "ForAnyValue:")
_IF_EXISTS = "IfExists"
_NULL = "Null"  # takes no IfExists: it asks whether the key exists

_PARTITIONS = {"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"}
_WILDCARDS = re.compile(r"[*?]")
_POLICY_VARIABLE = re.compile(r"\$\{[^}]*\}")
# arn:partition:service:region:account:resource -- wildcards allowed in a Resource's segments.
_ARN = re.compile(
    r"arn:(?P<partition>[^:]*):(?P<service>[^:]+):(?P<region>[^:]*):(?P<account>[^:]*):.+", re.S
)
_ACCOUNT_ID = re.compile(r"\d{12}")
_IAM_NAME = r"[\w+=,.@-]{1,128}"
_IAM_PATH = r"(?:/[\w+=,.@/-]*)?/"  # "/" or "/a/b/" (the path IAM names the role under)
_PRINCIPAL_ARN = re.compile(
    r"arn:(?P<partition>[a-z-]+):(?:"
    rf"iam::\d{{12}}:(?:root|(?:role|user){_IAM_PATH}{_IAM_NAME})"
    rf"|sts::\d{{12}}:(?:assumed-role/{_IAM_NAME}/{_IAM_NAME}|federated-user/{_IAM_NAME})"
    r"|iam::cloudfront:user/CloudFront Origin Access Identity [A-Z0-9]+"
    r")"
)
_SERVICE_PRINCIPAL = re.compile(
    r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.amazonaws\.com(\.cn)?"
)
_IDENTITY_PROVIDERS = {
    "cognito-identity.amazonaws.com",
    "www.amazon.com",
    "graph.facebook.com",
    "accounts.google.com",
}
_PROVIDER_ARN = re.compile(
    r"arn:(?P<partition>[a-z-]+):iam::\d{12}:(?:saml-provider/[\w.-]+|oidc-provider/\S+)"
)
_CANONICAL_USER = re.compile(r"[0-9a-f]{64}")
# IAM unique ids (AROA..., AIDA...): what a policy shows once its principal was deleted; KMS
# refuses to be given one ("one or more invalid principals").
_UNIQUE_ID = re.compile(r"A[A-Z]{3}[A-Z0-9]{16,}")
_ACTION = re.compile(r"[A-Za-z0-9-]+:[\w*?-]+")
_CONDITION_KEY = re.compile(r"[A-Za-z0-9-]+:.+")  # (a tag key may hold spaces)
_KEY_POLICY_TEXT = re.compile(r"[\t\n\r\x20-\xff]*")

# parliament's findings that mean AWS refuses the document; every other one is a warning.
_PARLIAMENT_REFUSALS = {"UNKNOWN_PREFIX", "MALFORMED", "MALFORMED_JSON"}
# parliament's findings on the Resource element: none applies to a statement without one.
_RESOURCE_FINDINGS = {"RESOURCE_STAR", "RESOURCE_MISMATCH", "RESOURCE_EFFECTIVELY_STAR"}


@dataclass(frozen=True)
class Finding:
    """One problem of a policy document: where (``Statement[1] (Sid)``) and what."""

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass(frozen=True)
class PolicyCheck:
    """What AWS would say to a policy document: refusals fail the call, warnings do not."""

    kind: PolicyKind
    findings: tuple[Finding, ...]

    @property
    def refusals(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.REFUSED]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def accepted(self) -> bool:
        """True when AWS would store the document."""
        return not self.refusals

    def message(self) -> str:
        """The refusals in one line, as an error message."""
        return f"malformed {self.kind.value}: " + "; ".join(str(f) for f in self.refusals)


# ---------------------------------------------------------------------- parliament
_import_lock = threading.Lock()


@cache
def _parliament() -> Any:
    """parliament, imported once.

    parliament 1.6 finds its data files with ``pkg_resources``, which setuptools no longer ships
    (81 and later); a stand-in with the one function it calls is put in place for the import only.
    """
    with _import_lock:  # moto's request threads check documents at once
        if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
            return importlib.import_module("parliament")
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
        try:
            return importlib.import_module("parliament")
        finally:
            del sys.modules["pkg_resources"]


@cache
def _operators() -> frozenset[str]:
    """The condition operators AWS knows, lower-cased (parliament's table, with every form)."""
    _parliament()  # first: the submodule's import needs the package's
    base = [str(name) for name in importlib.import_module("parliament.statement").OPERATORS]
    forms: set[str] = set()
    for name in base:
        suffixes = ("",) if name == _NULL else ("", _IF_EXISTS)
        for prefix in ("", *_SET_QUALIFIERS):
            forms.update(f"{prefix}{name}{suffix}".lower() for suffix in suffixes)
    return frozenset(forms)


# ---------------------------------------------------------------------- the check
def check_policy(document: str | Mapping[str, Any], kind: PolicyKind) -> PolicyCheck:
    """Check a policy document (JSON text or parsed) as AWS would before storing it as ``kind``."""
    findings = list(_check_document(document, kind))
    return PolicyCheck(kind, tuple(findings))


def _refused(where: str, message: str) -> Finding:
    return Finding(Severity.REFUSED, where, message)


def _warning(where: str, message: str) -> Finding:
    return Finding(Severity.WARNING, where, message)


def _check_document(document: str | Mapping[str, Any], kind: PolicyKind) -> Iterator[Finding]:
    if isinstance(document, str):
        if kind.grammar.latin1_only and not _KEY_POLICY_TEXT.fullmatch(document):
            yield _refused("", "a key policy may hold printable ASCII and Latin-1 characters only")
        try:
            document = json.loads(document)
        except ValueError as exc:
            yield _refused("", f"not JSON ({exc})")
            return
    if not isinstance(document, Mapping):
        yield _refused("", "a policy document is a JSON object")
        return
    for element in sorted(set(document) - _DOCUMENT_ELEMENTS):
        yield _refused("", f"unknown element {element!r} (a policy has Version, Id and Statement)")
    yield from _check_version(document)
    statements = document.get("Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        yield _refused("", "a policy needs a Statement: an object or a non-empty list of them")
        return
    sids: set[str] = set()
    for index, statement in enumerate(statements):
        where = _where(index, statement)
        sid = statement.get("Sid") if isinstance(statement, Mapping) else None
        if isinstance(sid, str) and sid:
            if sid in sids:
                yield _refused(where, f"duplicate Sid {sid!r} (statement ids must be unique)")
            sids.add(sid)
        yield from _check_statement(statement, where, kind)


def _where(index: int, statement: Any) -> str:
    sid = statement.get("Sid") if isinstance(statement, Mapping) else None
    return f"Statement[{index}]" + (f" ({sid})" if isinstance(sid, str) and sid else "")


def _check_version(document: Mapping[str, Any]) -> Iterator[Finding]:
    version = document.get("Version", Version.ORIGINAL.value)  # IAM's assumption without one
    known = {v.value for v in Version}
    if not isinstance(version, str) or version not in known:
        yield _refused("", f"Version {version!r} is not one of {sorted(known)}")
    elif version == Version.ORIGINAL.value and _POLICY_VARIABLE.search(json.dumps(document)):
        yield _warning("", f"policy variables under Version {version} (implied without one) are plain text")


def _check_statement(statement: Any, where: str, kind: PolicyKind) -> Iterator[Finding]:
    if not isinstance(statement, Mapping):
        yield _refused(where, "a statement is a JSON object")
        return
    if not statement:
        yield _refused(where, "empty statement")
        return
    refused = False
    for finding in _statement_grammar(statement, where, kind):
        refused = refused or finding.severity is Severity.REFUSED
        yield finding
    # parliament reads only well-formed statements (and one it cannot read says nothing new).
    if not refused:
        yield from _parliament_findings(statement, where, kind)


def _statement_grammar(statement: Mapping[str, Any], where: str, kind: PolicyKind) -> Iterator[Finding]:
    grammar = kind.grammar
    for element in sorted(set(statement) - _STATEMENT_ELEMENTS):
        yield _refused(where, f"unknown element {element!r}")
    sid = statement.get("Sid")
    if "Sid" in statement and not isinstance(sid, str):
        yield _refused(where, "Sid must be a string")
    elif grammar.alphanumeric_sid and isinstance(sid, str) and not sid.isalnum() and sid:
        yield _refused(where, f"Sid {sid!r}: IAM takes letters and digits only")
    effect = statement.get("Effect")
    if not isinstance(effect, str) or effect not in {e.value for e in Effect}:
        yield _refused(where, f"Effect must be Allow or Deny, not {effect!r}")
    yield from _either("Principal", statement, where, grammar.principal, kind)
    yield from _either("Action", statement, where, grammar.action, kind)
    yield from _either("Resource", statement, where, grammar.resource, kind)
    for name in ("Principal", "NotPrincipal"):
        if name in statement and grammar.principal is not Presence.FORBIDDEN:
            yield from _check_principal(statement[name], f"{where} {name}", grammar)
    if "NotPrincipal" in statement and effect == Effect.ALLOW.value:
        yield _warning(where, "NotPrincipal with Allow grants everyone else (AWS advises against it)")
    for name in ("Action", "NotAction"):
        if name in statement:
            yield from _check_actions(statement[name], f"{where} {name}")
    for name in ("Resource", "NotResource"):
        if name in statement:
            yield from _check_resources(statement[name], f"{where} {name}", kind)
    if "Condition" in statement:
        yield from _check_condition(statement["Condition"], f"{where} Condition")


def _either(
    element: str, statement: Mapping[str, Any], where: str, presence: Presence, kind: PolicyKind
) -> Iterator[Finding]:
    """``element`` or ``Not<element>``: one of them, as ``presence`` asks of this kind."""
    negated = f"Not{element}"
    present = [name for name in (element, negated) if name in statement]
    if len(present) == 2:
        yield _refused(where, f"both {element} and {negated}")
    elif present and presence is Presence.FORBIDDEN:
        yield _refused(where, f"has prohibited field {present[0]} ({kind.value} statements name none)")
    elif not present and presence is Presence.REQUIRED:
        yield _refused(where, f"needs {element} or {negated}")
    elif not present and presence is Presence.INEFFECTIVE_WITHOUT:
        yield _warning(where, f"no {element}: AWS accepts the statement, and it has no effect")


def _strings(value: Any) -> list[str] | None:
    """A string or a non-empty list of strings as a list; None for anything else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _check_principal(principal: Any, where: str, grammar: _Grammar) -> Iterator[Finding]:
    if principal == "*":
        return
    if not isinstance(principal, Mapping) or not principal:
        yield _refused(where, 'a principal is "*" or an object such as {"AWS": ...} or {"Service": ...}')
        return
    types_known = {t.value for t in PrincipalType}
    for key, value in principal.items():
        names = _strings(value)
        if key not in types_known:
            yield _refused(where, f"unknown principal type {key!r} (one of {sorted(types_known)})")
        elif names is None:
            yield _refused(where, f"{key}: a string or a non-empty list of strings")
        else:
            for name in names:
                problem = _principal_problem(PrincipalType(key), name, grammar)
                if problem:
                    yield _refused(where, f"invalid principal {key}: {name!r}: {problem}")


def _principal_problem(kind: PrincipalType, name: str, grammar: _Grammar) -> str | None:
    """Why AWS refuses ``name`` as a principal of ``kind``, or None."""
    if kind is PrincipalType.AWS:
        if name == "*" or _ACCOUNT_ID.fullmatch(name):
            return None
        if _WILDCARDS.search(name):
            return (
                "a wildcard inside a principal ARN (name the account and match the ARN with an "
                "aws:PrincipalArn ArnLike condition)"
            )
        if _UNIQUE_ID.fullmatch(name):
            return "a unique id (its principal was deleted), not an ARN"
        match = _PRINCIPAL_ARN.fullmatch(name)
        if match is None or match["partition"] not in _PARTITIONS:
            return "not an account id, account root, role, user or session ARN"
        return None
    if kind is PrincipalType.SERVICE:
        return None if _SERVICE_PRINCIPAL.fullmatch(name) else "a service principal is <name>.amazonaws.com"
    if kind is PrincipalType.FEDERATED:
        match = _PROVIDER_ARN.fullmatch(name)
        if name in _IDENTITY_PROVIDERS or (match is not None and match["partition"] in _PARTITIONS):
            return None
        return "neither a known identity provider nor a SAML or OIDC provider ARN"
    if not grammar.canonical_users:
        return "canonical user ids are S3's only"
    return None if _CANONICAL_USER.fullmatch(name) else "a canonical user id is 64 hex digits"


def _check_actions(value: Any, where: str) -> Iterator[Finding]:
    actions = _strings(value)
    if actions is None:
        yield _refused(where, "a string or a non-empty list of strings")
        return
    for action in actions:
        if action != "*" and not _ACTION.fullmatch(action):
            yield _refused(where, f"{action!r}: an action is <service prefix>:<name> (or *)")


def arn_problem(arn: str) -> str | None:
    """Why ``arn`` is no well-formed ARN (wildcards and policy variables allowed), or None."""
    match = _ARN.fullmatch(_POLICY_VARIABLE.sub("x", arn))
    if match is None:
        return "not arn:<partition>:<service>:<region>:<account>:<resource>"
    partition = match["partition"]
    if partition not in _PARTITIONS and not _WILDCARDS.search(partition):
        return f"unknown partition {partition!r}"
    return None


def _check_resources(value: Any, where: str, kind: PolicyKind) -> Iterator[Finding]:
    resources = _strings(value)
    if resources is None:
        yield _refused(where, "a string or a non-empty list of strings")
        return
    for resource in resources:
        problem = None if resource == "*" else arn_problem(resource)
        if problem:
            yield _refused(where, f"{resource!r}: {problem}")
        elif kind is PolicyKind.KEY and resource != "*":
            yield _warning(where, f'{resource!r}: in a key policy the Resource is "*" (this key)')


def _check_condition(condition: Any, where: str) -> Iterator[Finding]:
    if not isinstance(condition, Mapping):
        yield _refused(where, "a condition block is an object of operators")
        return
    for operator, block in condition.items():
        if str(operator).lower() not in _operators():
            yield _refused(where, f"unknown condition operator {operator!r}")
            continue
        if not isinstance(block, Mapping) or not block:
            yield _refused(where, f"{operator}: an object of condition keys and values")
            continue
        for key, values in block.items():
            if not _CONDITION_KEY.fullmatch(str(key)):
                yield _refused(where, f"{operator} {key!r}: a condition key is <prefix>:<name>")
            scalars = values if isinstance(values, list) else [values]
            if not all(isinstance(v, str | int | float | bool) for v in scalars):
                yield _refused(where, f"{operator} {key}: values are strings, numbers or booleans")
            elif not scalars:
                yield _warning(where, f"{operator} {key}: no value (the condition never holds)")


def _parliament_findings(statement: Mapping[str, Any], where: str, kind: PolicyKind) -> Iterator[Finding]:
    """parliament's analysis of one statement (actions, resources, condition keys)."""
    action = next((name for name in ("Action", "NotAction") if name in statement), None)
    if action is None:
        return  # a key policy's statement without actions (warned about): nothing to expand
    resource = next((name for name in ("Resource", "NotResource") if name in statement), None)
    # parliament reads the statement only: no principal (checked above), no Sid (IAM's rule is not
    # every service's), "*" for a trust policy's missing resource (its findings are then dropped).
    shown: dict[str, Any] = {"Effect": statement["Effect"], action: statement[action]}
    shown[resource or "Resource"] = statement[resource] if resource else "*"
    if "Condition" in statement:
        shown["Condition"] = statement["Condition"]
    document = json.dumps({"Version": Version.CURRENT.value, "Statement": [shown]})
    try:
        analysed = _parliament().analyze_policy_string(document, ignore_private_auditors=True)
    except Exception as exc:  # parliament's own failure is no verdict of AWS's
        yield _warning(where, f"parliament could not analyse the statement ({exc})")
        return
    # A resource policy's "*" is the resource itself; a trust policy has none.
    ignored = _RESOURCE_FINDINGS if resource is None else set()
    if kind is not PolicyKind.IDENTITY:
        ignored = ignored | {"RESOURCE_STAR"}
    for finding in analysed.findings:
        if finding.issue in ignored:
            continue
        severity = Severity.REFUSED if finding.issue in _PARLIAMENT_REFUSALS else Severity.WARNING
        detail = finding.detail or finding.location.get("string", "")
        yield Finding(severity, where, f"{finding.issue}: {detail}")


# ---------------------------------------------------------------------- template resources
def template_policies(resource_type: str, properties: Mapping[str, Any]) -> list[tuple[str, PolicyKind, Any]]:
    """The policy documents a (resolved) template resource carries: ``(property, kind, document)``."""
    found: list[tuple[str, PolicyKind, Any]] = []
    if resource_type == "AWS::IAM::Role":
        if "AssumeRolePolicyDocument" in properties:
            found.append(
                ("AssumeRolePolicyDocument", PolicyKind.TRUST, properties["AssumeRolePolicyDocument"])
            )
        for policy in properties.get("Policies", []):
            found.append(
                (f"Policies[{policy.get('PolicyName')}]", PolicyKind.IDENTITY, policy["PolicyDocument"])
            )
    elif resource_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        found.append(("PolicyDocument", PolicyKind.IDENTITY, properties["PolicyDocument"]))
    elif resource_type == "AWS::KMS::Key" and "KeyPolicy" in properties:
        found.append(("KeyPolicy", PolicyKind.KEY, properties["KeyPolicy"]))
    elif resource_type in _RESOURCE_POLICY_TYPES:
        kind, name = _RESOURCE_POLICY_TYPES[resource_type]
        found.append((name, kind, properties[name]))
    elif resource_type == "AWS::Events::EventBusPolicy":
        if "Statement" in properties:
            # One statement per resource; CloudFormation puts it in the bus's policy under its id.
            statement = {"Sid": properties.get("StatementId"), **properties["Statement"]}
            document: Any = {"Version": Version.CURRENT.value, "Statement": [statement]}
            found.append(("Statement", PolicyKind.EVENT_BUS, document))
        elif "Policy" in properties:
            found.append(("Policy", PolicyKind.EVENT_BUS, properties["Policy"]))
    return found


_RESOURCE_POLICY_TYPES = {
    "AWS::S3::BucketPolicy": (PolicyKind.BUCKET, "PolicyDocument"),
    "AWS::SQS::QueuePolicy": (PolicyKind.QUEUE, "PolicyDocument"),
    "AWS::SNS::TopicPolicy": (PolicyKind.TOPIC, "PolicyDocument"),
    "AWS::SecretsManager::ResourcePolicy": (PolicyKind.SECRET, "ResourcePolicy"),
}
