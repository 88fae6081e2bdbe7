"""Where the local cloud plugs into moto (running in this process).

- Lambda ``Invoke`` (from boto3 clients, Step Functions tasks and anything else) runs the
  function in :class:`~localcloud.lambdas.LambdaRuntime` instead of moto's Docker path.
- EventBridge rules hand their ``lambda``, ``states`` and ``sns`` targets to
  :class:`~localcloud.eventbridge.EventDelivery`; other targets (SQS, logs, buses) stay moto's,
  and a DISABLED rule delivers nothing (moto ignores the state).
- Step Functions executions started without a name get a UUID, as in AWS (moto's interpreter
  names them "None", so a second unnamed execution would clash).
- S3 bucket policies see the request's condition values (moto evaluates conditions with none, so
  any conditional Deny would match everything): the SSE-KMS headers, and ``aws:SecureTransport``
  as true — the local endpoint stands in for AWS's HTTPS one.
- DynamoDB writes are serialised, each whole request: moto's TransactWriteItems deep-copies a
  table for rollback and fails when another thread writes to it meanwhile, and an UpdateItem's
  returned values are read after the write (real DynamoDB has neither limit).
- Every call that writes a policy document (key, bucket, queue, topic, bus, secret and IAM
  policies) has it checked by :mod:`localcloud.policies` first and is refused with the error AWS
  gives for a malformed one (moto stores anything).
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import html
import importlib
import json
import logging
import struct
import threading
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import requests

from localcloud.eventbridge import EventDelivery
from localcloud.lambdas import LambdaRuntime
from localcloud.policies import PolicyKind, check_policy

_OURS = ("lambda", "states", "sns")  # moto's EventBridge delivers to none of these


def _moto_class(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _patch(cls: Any, attribute: str, make: Any) -> None:
    """Replace ``cls.attribute`` by ``make(original)``, once per process (re-installs rebind)."""
    marker = f"_localcloud_original_{attribute}"
    original = getattr(cls, marker, None) or getattr(cls, attribute)
    setattr(cls, marker, original)
    setattr(cls, attribute, make(original))


_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
# Reads take the same lock: moto applies a write attribute by attribute, and a read beside it
# could see an item half-written (DynamoDB's item reads are atomic).
_DYNAMODB_READS = ("get_item", "query", "scan", "batch_get_item", "transact_get_items")
_dynamodb_lock = threading.RLock()


def serialize_dynamodb_writes() -> None:
    """Run moto's DynamoDB writes one at a time, and no read during a write (idempotent)."""

    def make_locked(original: Any) -> Any:
        def locked(*args: Any, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return original(*args, **kwargs)

        return locked

    # The whole request, not only the backend call: moto reads the returned attributes
    # (ReturnValues) after the backend returns, and another write could slip in between.
    handler = _moto_class("moto.dynamodb.responses", "DynamoHandler")
    for name in _DYNAMODB_WRITES + _DYNAMODB_READS:
        _patch(handler, name, make_locked)


_s3_put_lock = threading.RLock()


def atomic_s3_conditional_puts() -> None:
    """A conditional PutObject (If-Match / If-None-Match) checks and writes as one step, as S3's
    does; moto checks, then writes, and two writers of the same key both succeed (idempotent)."""

    def make_locked(original: Any) -> Any:
        def put_object(self: Any) -> Any:
            if not (self.headers.get("If-None-Match") or self.headers.get("If-Match")):
                return original(self)
            with _s3_put_lock:
                return original(self)

        return put_object

    _patch(_moto_class("moto.s3.responses", "S3Response"), "put_object", make_locked)


_transaction = threading.local()


class _TransactionSnapshots:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend.

    moto deep-copies every table a transaction touches (to roll back on failure), so one
    transaction costs time in proportion to the whole table -- the audit chain's heads table
    made each append slower than the last. Writes are serialised (above), so a snapshot needs
    only the items the transaction names; every other item is shared, unchanged.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        targets = getattr(_transaction, "targets", None)
        table_class = _moto_class("moto.dynamodb.models.table", "Table")
        if targets is None or not isinstance(value, table_class):
            return copy.deepcopy(value, memo)
        dynamo_type = _moto_class("moto.dynamodb.models.dynamo_type", "DynamoType")
        clone = copy.copy(value)
        ranged = bool(value.range_key_attr)
        clone.items = type(value.items)(dict, {h: (dict(v) if ranged else v) for h, v in value.items.items()})
        for key in targets.get(value.name, []):
            if value.hash_key_attr not in key:
                continue
            hash_value = dynamo_type(key[value.hash_key_attr])
            if ranged and value.range_key_attr in key:
                range_value = dynamo_type(key[value.range_key_attr])
                if range_value in value.items.get(hash_value, {}):
                    clone.items[hash_value][range_value] = copy.deepcopy(value.items[hash_value][range_value])
            elif not ranged and hash_value in value.items:
                clone.items[hash_value] = copy.deepcopy(value.items[hash_value])
        return clone


def cheap_transaction_snapshots() -> None:
    """Let moto's transactions snapshot only the items they write (idempotent)."""
    models = importlib.import_module("moto.dynamodb.models")
    backend = models.DynamoDBBackend
    original = backend.transact_write_items
    if getattr(original, "_localcloud", False):
        return

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        targets: dict[str, list[dict[str, Any]]] = {}
        for item in transact_items:
            _, op = next(iter(item.items()))
            key = op.get("Key") or op.get("Item")
            if op.get("TableName") and key:
                targets.setdefault(op["TableName"], []).append(key)
        _transaction.targets = targets
        try:
            return original(self, transact_items)
        finally:
            _transaction.targets = None

    transact_write_items._localcloud = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items
    models.copy = _TransactionSnapshots()  # type: ignore[attr-defined]


def kms_multi_region_ciphertexts() -> None:
    """moto's ciphertext header holds 36 characters of key id; a multi-Region key's id (``mrk-``
    and 36 more) is cut short and its ciphertexts never decrypt. Give the id room (idempotent)."""
    utils: Any = importlib.import_module("moto.kms.utils")
    if getattr(utils, "_localcloud_key_id_room", False):
        return
    width = 40
    header = f">{width}s{utils.IV_LEN}s{utils.TAG_LEN}s"
    header_len = width + utils.IV_LEN + utils.TAG_LEN

    def serialize(ciphertext: Any) -> bytes:
        packed = struct.pack(header, ciphertext.key_id.encode(), ciphertext.iv, ciphertext.tag)
        return packed + bytes(ciphertext.ciphertext)

    def deserialize(ciphertext_blob: bytes) -> Any:  # (moto passes it by name)
        key_id, iv, tag = struct.unpack(header, ciphertext_blob[:header_len])
        return utils.Ciphertext(
            key_id=key_id.rstrip(b"\x00").decode(), iv=iv, ciphertext=ciphertext_blob[header_len:], tag=tag
        )

    utils._serialize_ciphertext_blob = serialize
    utils._deserialize_ciphertext_blob = deserialize
    utils._localcloud_key_id_room = True


def kms_key_states() -> None:
    """KMS refuses to encrypt, decrypt or sign with a key that is disabled or pending deletion;
    moto does not (idempotent). Crypto-shredding at offboarding relies on it."""
    backend = _moto_class("moto.kms.models", "KmsBackend")
    json_error = _moto_class("moto.core.exceptions", "JsonRESTError")

    class KMSInvalidStateException(json_error):  # type: ignore[misc, valid-type]
        code = 400

        def __init__(self, message: str) -> None:
            super().__init__("KMSInvalidStateException", message)

    def require_enabled(kms: Any, key_id: str) -> None:
        key = kms.keys.get(kms.any_id_to_key_id(key_id))
        if key is not None and key.key_state != "Enabled":
            raise KMSInvalidStateException(f"{key.arn} is {key.key_state}.")

    def make_by_key(original: Any) -> Any:
        def by_key(self: Any, key_id: str, *args: Any, **kwargs: Any) -> Any:
            require_enabled(self, key_id)
            return original(self, key_id, *args, **kwargs)

        return by_key

    def make_decrypt(original: Any) -> Any:
        def decrypt(self: Any, *args: Any, **kwargs: Any) -> Any:
            plaintext, arn = original(self, *args, **kwargs)
            require_enabled(self, arn)
            return plaintext, arn

        return decrypt

    for name in ("encrypt", "generate_data_key", "sign"):
        _patch(backend, name, make_by_key)
    _patch(backend, "decrypt", make_decrypt)


_s3_request = threading.local()
_S3_CONDITION_HEADERS = {
    "x-amz-server-side-encryption": "s3:x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id": "s3:x-amz-server-side-encryption-aws-kms-key-id",
}


def s3_policy_conditions() -> None:
    """Evaluate S3 bucket policies with the request's condition values (idempotent)."""

    def make_key_response(original: Any) -> Any:
        def key_response(self: Any, request: Any, full_url: str) -> Any:
            _s3_request.headers = {k.lower(): v for k, v in dict(request.headers).items()}
            try:
                return original(self, request, full_url)
            finally:
                _s3_request.headers = {}

        return key_response

    def make_get_permission(_original: Any) -> Any:
        def get_permission(self: Any, action: str, resource: str) -> Any:
            access = importlib.import_module("moto.iam.access_control")
            if self.policy is None:
                return access.PermissionResult.NEUTRAL
            headers = getattr(_s3_request, "headers", {}) or {}
            values = {"aws:SecureTransport": "true"}
            values.update({key: headers[h] for h, key in _S3_CONDITION_HEADERS.items() if h in headers})
            policy = access.IAMPolicy(self.policy.decode())
            return policy.is_action_permitted(action, resource, None, values)

        return get_permission

    def expected(value: Any) -> list[str]:
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    # moto implements StringEquals only and takes any other operator as satisfied.
    operations = _moto_class("moto.iam.policy_conditions", "CONDITION_OPERATIONS")
    operations.update(
        {
            "StringNotEquals": lambda want, got: got not in expected(want),
            "StringLike": lambda want, got: any(fnmatch.fnmatchcase(got, w) for w in expected(want)),
            "StringNotLike": lambda want, got: not any(fnmatch.fnmatchcase(got, w) for w in expected(want)),
            "Bool": lambda want, got: got.lower() in [w.lower() for w in expected(want)],
        }
    )

    def make_statement_check(original: Any) -> Any:
        def is_action_permitted(
            self: Any,
            action: str,
            resource: str = "*",
            principal: Any = None,
            incoming_condition_values: Any = None,
        ) -> Any:
            # moto answers DENIED when a condition does not hold (right for a trust policy's Allow);
            # in a resource policy such a statement simply does not apply.
            statement = self._statement
            if (
                statement.get("Condition")
                and statement.get("Resource")
                and not self._check_conditions(incoming_condition_values)
            ):
                return _moto_class("moto.iam.access_control", "PermissionResult").NEUTRAL
            return original(self, action, resource, principal, incoming_condition_values)

        return is_action_permitted

    _patch(
        _moto_class("moto.iam.access_control", "IAMPolicyStatement"),
        "is_action_permitted",
        make_statement_check,
    )
    _patch(_moto_class("moto.s3.responses", "S3Response"), "_key_response", make_key_response)
    _patch(_moto_class("moto.s3.models", "FakeBucket"), "get_permission", make_get_permission)


# ---------------------------------------------------------------------- policy documents
_policy_log = logging.getLogger("localcloud.policies")
# Warnings already logged: the same documents are written again and again (a key policy per key).
_policy_warnings: set[str] = set()
_policy_warnings_lock = threading.Lock()


@dataclass(frozen=True)
class _PolicyWrite:
    """An API call that writes policy documents: moto's handler method, the documents it would
    write (read from the parsed request), and the error AWS answers a malformed one with."""

    module: str
    handler: str
    method: str
    kind: PolicyKind
    code: str
    documents: Callable[[Any, tuple[Any, ...]], list[Any]]


def _param(name: str) -> Callable[[Any, tuple[Any, ...]], list[Any]]:
    return lambda handler, _args: [handler._get_param(name)]


def _policy_attribute(handler: Any, _args: tuple[Any, ...]) -> list[Any]:
    return [(handler._get_param("Attributes") or {}).get("Policy")]


def _topic_policy_attribute(handler: Any, _args: tuple[Any, ...]) -> list[Any]:
    return [handler._get_param("AttributeValue")] if handler._get_param("AttributeName") == "Policy" else []


def _bucket_policy(handler: Any, args: tuple[Any, ...]) -> list[Any]:
    # _bucket_response_put(request, bucket_name, querystring): PutBucketPolicy is ?policy
    return [handler.body] if "policy" in args[2] else []


_MALFORMED = "MalformedPolicyDocumentException"
_POLICY_WRITES = (
    *(
        _PolicyWrite(
            "moto.kms.responses", "KmsResponse", method, PolicyKind.KEY, _MALFORMED, _param("Policy")
        )
        for method in ("create_key", "put_key_policy", "replicate_key")
    ),
    _PolicyWrite(
        "moto.s3.responses",
        "S3Response",
        "_bucket_response_put",
        PolicyKind.BUCKET,
        "MalformedPolicy",
        _bucket_policy,
    ),
    *(
        _PolicyWrite(
            "moto.sqs.responses",
            "SQSResponse",
            method,
            PolicyKind.QUEUE,
            "InvalidAttributeValue",
            _policy_attribute,
        )
        for method in ("create_queue", "set_queue_attributes")
    ),
    _PolicyWrite(
        "moto.sns.responses",
        "SNSResponse",
        "create_topic",
        PolicyKind.TOPIC,
        "InvalidParameter",
        _policy_attribute,
    ),
    _PolicyWrite(
        "moto.sns.responses",
        "SNSResponse",
        "set_topic_attributes",
        PolicyKind.TOPIC,
        "InvalidParameter",
        _topic_policy_attribute,
    ),
    _PolicyWrite(
        "moto.events.responses",
        "EventsHandler",
        "put_permission",
        PolicyKind.EVENT_BUS,
        _MALFORMED,
        _param("Policy"),
    ),
    _PolicyWrite(
        "moto.secretsmanager.responses",
        "SecretsManagerResponse",
        "put_resource_policy",
        PolicyKind.SECRET,
        _MALFORMED,
        _param("ResourcePolicy"),
    ),
    _PolicyWrite(
        "moto.iam.responses",
        "IamResponse",
        "create_role",
        PolicyKind.TRUST,
        "MalformedPolicyDocument",
        _param("AssumeRolePolicyDocument"),
    ),
    _PolicyWrite(
        "moto.iam.responses",
        "IamResponse",
        "update_assume_role_policy",
        PolicyKind.TRUST,
        "MalformedPolicyDocument",
        _param("PolicyDocument"),
    ),
    *(
        _PolicyWrite(
            "moto.iam.responses",
            "IamResponse",
            method,
            PolicyKind.IDENTITY,
            "MalformedPolicyDocument",
            _param("PolicyDocument"),
        )
        for method in (
            "put_role_policy",
            "put_user_policy",
            "put_group_policy",
            "create_policy",
            "create_policy_version",
        )
    ),
)


@cache
def _policy_refused() -> Any:
    """The exception a refused document raises in moto's handler.

    An S3ClientError (a ServiceException) defined outside moto: moto serialises it in the
    service's own protocol (JSON, query XML, S3's XML, SQS's query-compatible JSON) with the code
    given, as botocore parses AWS's errors; S3's handler catches only its own error class.
    """
    s3_client_error = _moto_class("moto.s3.exceptions", "S3ClientError")

    class PolicyRefused(s3_client_error):  # type: ignore[misc, valid-type]
        code = _MALFORMED

    # EventBridge's model has no MalformedPolicyDocumentException shape; moto warns, and sends it.
    warnings.filterwarnings("ignore", message=r"Exception\(PolicyRefused\)", category=UserWarning)
    return PolicyRefused


def _check_written(write: _PolicyWrite, document: str | bytes) -> None:
    """Raise the call's error if AWS would refuse ``document``; log its warnings (once a document)."""
    check = check_policy(document.decode() if isinstance(document, bytes) else document, write.kind)
    if check.accepted and check.warnings:
        line = f"{write.kind.value} ({write.method}) accepted, as AWS would, with warnings: " + "; ".join(
            str(w) for w in check.warnings
        )
        with _policy_warnings_lock:
            first = line not in _policy_warnings
            _policy_warnings.add(line)
        if first:
            _policy_log.warning("%s", line)
    if not check.accepted:
        raise _policy_refused()(write.code, check.message())


def refuse_malformed_policies() -> None:
    """Check each policy document a call writes before moto stores it; refuse it as AWS would.

    The check sits in moto's handler methods rather than in the WSGI wrapper: moto has parsed the
    request by then in every protocol (a queue's attributes as JSON or as ``Attribute.N.Name``
    form fields, SNS's ``Attributes.entry.N``, S3's body), so the document checked is the one moto
    would store, and moto serialises the error as each protocol needs; the backend has not been
    called, so a refused call changes nothing. Warnings (accepted by AWS) go to the log.
    """

    def make_checked(write: _PolicyWrite) -> Any:
        def make(original: Any) -> Any:
            def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
                for document in write.documents(self, args):
                    if document is not None:
                        _check_written(write, document)
                return original(self, *args, **kwargs)

            return checked

        return make

    for write in _POLICY_WRITES:
        _patch(_moto_class(write.module, write.handler), write.method, make_checked(write))


# Form fields a POST policy need not list (AWS: the signature fields, the policy and the file).
_UNLISTED_POST_FIELDS = {"policy", "x-amz-signature", "file", "signature", "awsaccesskeyid"}


def post_policy_problem(fields: dict[str, str], bucket: str, size: int, now: datetime) -> str | None:
    """Why S3 would refuse a browser-based (presigned POST) upload, or None when it would accept it.

    ``fields``: the form fields, names lower-cased. The policy must not have expired, every
    condition must hold (exact values, ``eq``, ``starts-with``, ``content-length-range`` on the
    file's ``size``) and every form field must be named by a condition.
    """
    try:
        policy = json.loads(base64.b64decode(fields.get("policy", ""), validate=True))
        expires = datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
        conditions = list(policy["conditions"])
    except (ValueError, KeyError, TypeError):
        return "Invalid Policy: the policy is missing or not valid"
    if expires <= now:
        return "Invalid according to Policy: Policy expired."
    values = {**fields, "bucket": bucket}
    covered: set[str] = set()
    for condition in conditions:
        if isinstance(condition, dict):
            for field, want in condition.items():
                name = str(field).lower()
                covered.add(name)
                if values.get(name) != str(want):
                    return f'Invalid according to Policy: Policy Condition failed: ["eq", "${name}"]'
        elif isinstance(condition, list) and len(condition) == 3:
            operator, name, want = condition
            if operator == "content-length-range":
                if not int(name) <= size <= int(want):
                    return (
                        "Your proposed upload exceeds the maximum allowed size"
                        if size > int(want)
                        else ("Your proposed upload is smaller than the minimum allowed size")
                    )
                continue
            name = str(name).lstrip("$").lower()
            covered.add(name)
            got = values.get(name, "")
            if (operator == "eq" and got != want) or (operator == "starts-with" and not got.startswith(want)):
                return f'Invalid according to Policy: Policy Condition failed: ["{operator}", "${name}"]'
        else:
            return "Invalid Policy: a condition is not valid"
    extra = [
        name
        for name in fields
        if name not in covered and name not in _UNLISTED_POST_FIELDS and not name.startswith("x-ignore-")
    ]
    if extra:
        return f"Invalid according to Policy: Extra input fields: {sorted(extra)[0]}"
    return None


def s3_post_policies() -> None:
    """S3 browser-based uploads: enforce the POST policy and the form's SSE fields (idempotent).

    moto stores whatever a POST sends; S3 checks the signed policy (size, key, encryption fields)
    and encrypts with the key the form names. Presigned uploads of tenant files rely on both.
    """

    def make_post(original: Any) -> Any:
        def bucket_response_post(self: Any, request: Any, bucket_name: str) -> Any:
            self.path = self._get_path(request)  # what is_delete_keys() reads (moto sets it later)
            if self.is_delete_keys():
                return original(self, request, bucket_name)
            fields = {str(k).lower(): str(v) for k, v in self.form_data.items()}
            body = self.raw_body if isinstance(self.raw_body, bytes) else str(self.raw_body or "").encode()
            problem = post_policy_problem(fields, bucket_name, len(body), datetime.now(UTC))
            if problem is not None:
                error = (
                    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                    f"<Message>{html.escape(problem)}</Message></Error>"
                )
                return 403, {"Content-Type": "application/xml"}, error
            reply = original(self, request, bucket_name)
            encryption = fields.get("x-amz-server-side-encryption")
            if encryption:
                stored = self.backend.get_object(bucket_name, fields["key"])
                stored.encryption = encryption
                stored.kms_key_id = fields.get("x-amz-server-side-encryption-aws-kms-key-id")
            return reply

        return bucket_response_post

    _patch(_moto_class("moto.s3.responses", "S3Response"), "_bucket_response_post", make_post)


def install(runtime: LambdaRuntime, delivery: EventDelivery) -> None:
    """Patch moto's Lambda invoke, EventBridge rule delivery and unnamed executions."""

    def make_invoke(_original: Any) -> Any:
        def invoke(self: Any, body: str, request_headers: Any, response_headers: dict[str, str]) -> bytes:
            event = json.loads(body) if body else {}
            headers = {k.lower(): v for k, v in dict(request_headers).items()}
            invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
            if invocation_type == "Event":
                runtime.invoke_async(self.function_arn, event)
                return b""
            if invocation_type == "DryRun":
                return b""
            result = runtime.invoke(self.function_arn, event)
            if result.failed:
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(result.error).encode()
            return json.dumps(result.payload).encode()

        return invoke

    def make_send(original: Any) -> Any:
        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
            if getattr(self, "state", "ENABLED") != "ENABLED":
                return
            if not self.event_pattern.matches_event(original_event):
                return
            theirs = []
            for target in self.targets:
                if target["Arn"].split(":")[2] in _OURS:
                    delivery.submit(self.arn, target, original_event)
                else:
                    theirs.append(target)
            if theirs:
                clone = copy.copy(self)
                clone.targets = theirs
                original(clone, original_event, transform_input)

        return send_to_targets

    def make_start(original: Any) -> Any:
        def start_execution(
            self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any
        ) -> Any:
            return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

        return start_execution

    serialize_dynamodb_writes()
    cheap_transaction_snapshots()
    kms_key_states()
    kms_multi_region_ciphertexts()
    s3_policy_conditions()
    s3_post_policies()
    atomic_s3_conditional_puts()
    refuse_malformed_policies()
    _patch(_moto_class("moto.awslambda.models", "LambdaFunction"), "invoke", make_invoke)
    _patch(_moto_class("moto.events.models", "Rule"), "send_to_targets", make_send)
    _patch(
        _moto_class("moto.stepfunctions.parser.models", "StepFunctionsParserBackend"),
        "start_execution",
        make_start,
    )


def enable_step_functions_execution(aws_endpoint: str) -> None:
    """Turn on moto's ASL interpreter (before any state machine is created)."""
    requests.post(
        f"{aws_endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()
