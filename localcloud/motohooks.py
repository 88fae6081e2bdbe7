"""Where the local cloud plugs into moto (running in this process).

- Lambda ``Invoke`` (from boto3 clients, Step Functions tasks and anything else) runs the
  function in :class:`~localcloud.lambdas.LambdaRuntime` instead of moto's Docker path.
- EventBridge rules hand their ``lambda``, ``states``, ``sns`` and ``sqs`` targets to
  :class:`~localcloud.eventbridge.EventDelivery`; other targets (logs, buses) stay moto's, and a
  DISABLED rule delivers nothing (moto ignores the state). PutTargets refuses a FIFO queue as a
  target's dead-letter queue, as EventBridge does; SQS FIFO deduplication remembers an id for
  5 minutes, as SQS does (:func:`localcloud.sqs_targets.remember_deduplication_ids`).
- Step Functions executions started without a name get a UUID, as in AWS (moto's interpreter
  names them "None", so a second unnamed execution would clash).
- S3 bucket policies see the request's condition values (moto evaluates conditions with none, so
  any conditional Deny would match everything): the SSE-KMS headers, and ``aws:SecureTransport``
  as true — the local endpoint stands in for AWS's HTTPS one.
- A bucket created with Object Lock may change its default retention while it holds objects,
  as on S3 (moto refuses any Object Lock configuration on a bucket that is not empty).
- TransactWriteItems honours its ClientRequestToken for 10 minutes (moto ignores it), so a
  botocore retry after a lost reply is the no-op it is on AWS.
- DynamoDB writes are serialised, each whole request: moto's TransactWriteItems deep-copies a
  table for rollback and fails when another thread writes to it meanwhile, and an UpdateItem's
  returned values are read after the write (real DynamoDB has neither limit).
- Lambda ``Invoke`` is refused as Lambda refuses it: 429 over reserved concurrency, 413 over
  6 MB (1 MB asynchronous); PutEvents over 256 KB is a ValidationException.
- ``States.ALL`` catches neither ``States.Runtime`` nor ``States.DataLimitExceeded``, as on AWS.
- Every call that writes a policy document (key, bucket, queue, topic, bus, secret and IAM
  policies) has it checked by :mod:`localcloud.policies` first and is refused with the error AWS
  gives for a malformed one (moto stores anything).
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import hashlib
import html
import importlib
import json
import logging
import re
import struct
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import requests

from localcloud.eventbridge import EventDelivery
from localcloud.lambdas import InvocationType, InvokeRefusal, LambdaRuntime, too_large
from localcloud.policies import PolicyKind, check_policy
from localcloud.sqs_targets import remember_deduplication_ids

# moto's EventBridge delivers to none of the first three, and to SQS without retries, dead-letter
# queue or queue policy
_OURS = ("lambda", "states", "sns", "sqs")


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

    moto deep-copies every table a transaction touches, once per item it names (to roll back on
    failure), so one transaction costs time in proportion to the tables -- the audit index made
    each append slower than the last, as no DynamoDB is. Writes are serialised (above), so during
    a transaction a "copy" of a table is the table itself, and :func:`cheap_transaction_snapshots`
    keeps the items the transaction names, to put them back if it fails.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        table_class = _moto_class("moto.dynamodb.models.table", "Table")
        if getattr(_transaction, "active", False) and isinstance(value, table_class):
            return value  # rolled back item by item (cheap_transaction_snapshots)
        return copy.deepcopy(value, memo)


def _item_slot(backend: Any, table_name: str, key: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """Where a transaction item lives in moto's table: (table, hash value, range value or None)."""
    table = backend.tables.get(table_name)
    if table is None or table.hash_key_attr not in key:
        return None
    dynamo_type = _moto_class("moto.dynamodb.models.dynamo_type", "DynamoType")
    hash_value = dynamo_type(key[table.hash_key_attr])
    if not table.range_key_attr:
        return table, hash_value, None
    if table.range_key_attr not in key:
        return None
    return table, hash_value, dynamo_type(key[table.range_key_attr])


def _stored(slot: tuple[Any, Any, Any]) -> Any:
    table, hash_value, range_value = slot
    if range_value is None:
        return table.items.get(hash_value)
    partition = table.items.get(hash_value)
    return None if partition is None else partition.get(range_value)


def _restore(slot: tuple[Any, Any, Any], before: Any) -> None:
    table, hash_value, range_value = slot
    if range_value is None:
        if before is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = before
        return
    partition = table.items.get(hash_value)
    if before is not None:
        table.items[hash_value][range_value] = before
    elif partition is not None:
        partition.pop(range_value, None)
        if not partition:
            table.items.pop(hash_value, None)


_DEAD_LETTER_SOURCE = "DeadLetterQueueSourceArn"


def dead_letter_source_arns() -> None:
    """A message SQS moves to a dead-letter queue carries the queue it came from, as the system
    attribute ``DeadLetterQueueSourceArn`` (moto moves it and forgets where from; idempotent)."""
    backend = _moto_class("moto.sqs.models", "SQSBackend")
    original = backend.receive_message
    if getattr(original, "_localcloud", False):
        return

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        dead_letters = queue.dead_letter_queue
        before = {m.id for m in dead_letters._messages} if dead_letters is not None else set()
        received = original(self, queue_name, *args, **kwargs)
        if dead_letters is not None:
            for message in dead_letters._messages:
                if message.id not in before:
                    source = {"StringValue": queue.queue_arn}
                    message.system_attributes.setdefault(_DEAD_LETTER_SOURCE, source)
        return received

    receive_message._localcloud = True  # type: ignore[attr-defined]
    backend.receive_message = receive_message

    handler = _moto_class("moto.sqs.responses", "SQSResponse")

    def make_receive(original_response: Any) -> Any:
        def answer(self: Any) -> Any:
            result = original_response(self)
            wanted = self._get_param("MessageSystemAttributeNames") or self._get_param("AttributeNames") or []
            if not ({_DEAD_LETTER_SOURCE, "All"} & set(wanted)):
                return result
            messages = (getattr(result, "result", None) or {}).get("Messages", [])
            queue = self.sqs_backend.get_queue(self._get_queue_name())
            for listed in messages:
                found = next((m for m in queue._messages if m.id == listed["MessageId"]), None)
                source = (found.system_attributes if found is not None else {}).get(_DEAD_LETTER_SOURCE)
                if source:
                    listed.setdefault("Attributes", {})[_DEAD_LETTER_SOURCE] = source["StringValue"]
            return result

        return answer

    _patch(handler, "receive_message", make_receive)


def cheap_transaction_snapshots() -> None:
    """Let moto's transactions keep only the items they name to roll back, not copies of whole
    tables (idempotent). All or nothing, as before: a failed transaction leaves every item it
    named as it was."""
    models = importlib.import_module("moto.dynamodb.models")
    backend = models.DynamoDBBackend
    original = backend.transact_write_items
    if getattr(original, "_localcloud", False):
        return

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        before: list[tuple[tuple[Any, Any, Any], Any]] = []
        for item in transact_items:
            _, op = next(iter(item.items()))
            slot = _item_slot(self, op.get("TableName", ""), op.get("Key") or op.get("Item") or {})
            if slot is not None:
                before.append((slot, copy.deepcopy(_stored(slot))))
        _transaction.active = True
        try:
            return original(self, transact_items)
        except Exception:
            for slot, item in reversed(before):
                _restore(slot, item)
            raise
        finally:
            _transaction.active = False

    transact_write_items._localcloud = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items
    models.copy = _TransactionSnapshots()  # type: ignore[attr-defined]


_PARSED_CONDITIONS_KEPT = 256


def cached_condition_parses() -> None:
    """moto parses a condition expression anew for every item it checks, twice for a
    transaction's (a batch append's claims are 18 ``attribute_not_exists(tenant_id)``): the
    parse of an expression that names no value is kept (idempotent). What it evaluates to is
    unchanged -- an expression without values parses to the same tree every time."""
    comparisons = importlib.import_module("moto.dynamodb.comparisons")
    original = comparisons.get_filter_expression
    if getattr(original, "_localcloud", False):
        return
    parsed: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    lock = threading.Lock()

    def get_filter_expression(expr: Any, names: Any, values: Any) -> Any:
        if not isinstance(expr, str) or values:
            return original(expr, names, values)
        key = (expr, tuple(sorted((names or {}).items())))
        with lock:
            found = parsed.get(key)
        if found is None:
            found = original(expr, names, values)
            with lock:
                if len(parsed) >= _PARSED_CONDITIONS_KEPT:
                    parsed.clear()
                parsed[key] = found
        return found

    get_filter_expression._localcloud = True  # type: ignore[attr-defined]
    for module in ("moto.dynamodb.comparisons", "moto.dynamodb.models", "moto.dynamodb.models.table"):
        setattr(importlib.import_module(module), "get_filter_expression", get_filter_expression)  # noqa: B010


def size_of_a_missing_attribute() -> None:
    """``size(path)`` of an attribute the item lacks makes its comparison false in DynamoDB's
    conditions (``size(lz) < :cap`` fails the condition: ConditionalCheckFailed); moto raises a
    Python ValueError, which the local cloud would answer as a 500."""
    func_size = _moto_class("moto.dynamodb.comparisons", "FuncSize")
    original = func_size.expr
    if getattr(original, "_localcloud", False):
        return

    def expr(self: Any, item: Any) -> Any:
        if self.attr.get_type(item) is None:
            return None  # moto's comparisons of None are false (<, <=, >, >=, =)
        return original(self, item)

    expr._localcloud = True  # type: ignore[attr-defined]
    func_size.expr = expr


def _plain_json(value: Any) -> str:
    """Binary attribute values (moto holds them decoded) as text, for a request's digest."""
    return base64.b64encode(value).decode() if isinstance(value, bytes) else repr(value)


# DynamoDB honours a TransactWriteItems ClientRequestToken for 10 minutes.
_TRANSACTION_TOKEN_SECONDS = 600


def idempotent_transactions() -> None:
    """TransactWriteItems with a ClientRequestToken is idempotent, as on AWS (moto ignores the
    token; botocore sends one with every call and retries with the same one after a lost reply):
    a replay of a succeeded transaction within 10 minutes succeeds without writing again, the
    same token with other items is ``IdempotentParameterMismatchException``, and one still running
    is ``TransactionInProgressException``."""
    handler = _moto_class("moto.dynamodb.responses", "DynamoHandler")
    original = handler.transact_write_items
    if getattr(original, "_localcloud", False):
        return
    exceptions = importlib.import_module("moto.dynamodb.exceptions")
    action_result = importlib.import_module("moto.core.responses").ActionResult
    done: dict[tuple[str, str, str], tuple[str, float]] = {}
    running: set[tuple[str, str, str]] = set()
    lock = threading.Lock()

    def refusal(code: str, message: str) -> Exception:
        refused: Exception = exceptions.DynamodbException(exceptions.ERROR_TYPE_PREFIX + code, message)
        return refused

    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return original(self)
        digest = hashlib.sha256(
            # every parameter but the token itself: any other change is a mismatch, as on AWS
            json.dumps(
                {k: v for k, v in self.body.items() if k != "ClientRequestToken"},
                sort_keys=True,
                default=_plain_json,
            ).encode()
        ).hexdigest()
        key = (self.current_account, self.region, str(token))
        now = time.monotonic()
        with lock:
            for stale in [k for k, (_, at) in done.items() if now - at > _TRANSACTION_TOKEN_SECONDS]:
                del done[stale]
            if key in running:
                raise refusal("TransactionInProgressException", "Transaction is in progress")
            prior = done.get(key)
            if prior is not None and prior[0] != digest:
                raise refusal(
                    "IdempotentParameterMismatchException",
                    "The request uses the same client token as a previous, but non-identical request.",
                )
            if prior is None:
                running.add(key)
        if prior is not None:  # what the first call answered; nothing is written again
            return action_result({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
        try:
            result = original(self)
        finally:
            with lock:
                running.discard(key)
        with lock:
            done[key] = (digest, time.monotonic())
        return result

    transact_write_items._localcloud = True  # type: ignore[attr-defined]
    handler.transact_write_items = transact_write_items


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


def object_lock_default_retention_changes() -> None:
    """S3 lets a bucket created with Object Lock change its default retention at any time (it
    governs object versions written afterwards); moto refuses any PutObjectLockConfiguration on a
    bucket that holds objects, as S3 refuses only enabling Object Lock on one (idempotent)."""

    def make_put(original: Any) -> Any:
        def put_object_lock_configuration(
            self: Any,
            bucket_name: str,
            lock_enabled: bool,
            mode: Any = None,
            days: Any = None,
            years: Any = None,
        ) -> Any:
            bucket = self.get_bucket(bucket_name)
            if not bucket.object_lock_enabled:
                return original(self, bucket_name, lock_enabled, mode, days, years)
            bucket.default_lock_mode, bucket.default_lock_days, bucket.default_lock_years = mode, days, years
            return None

        return put_object_lock_configuration

    _patch(_moto_class("moto.s3.models", "S3Backend"), "put_object_lock_configuration", make_put)


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


_INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
_IAM_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):(role|user)/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)")


def missing_principals(account: str, document: str | bytes) -> list[str]:
    """The roles and users of ``account`` a key policy names that do not exist: KMS refuses such a
    policy ("one or more invalid principals"), so a key policy naming a role created later (or a
    mistyped one) fails on AWS, at CreateKey as at PutKeyPolicy and ReplicateKey."""
    from moto.iam.models import iam_backends

    try:
        policy = json.loads(document)
    except ValueError:
        return []  # malformed: the document check refuses it
    found = policy.get("Statement", []) if isinstance(policy, dict) else []
    backend = iam_backends[account]["global"]
    missing = []
    for statement in [found] if isinstance(found, dict) else found:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        names = principal.get("AWS", []) if isinstance(principal, dict) else []
        for name in [names] if isinstance(names, str) else names:
            match = _IAM_PRINCIPAL.fullmatch(str(name))
            if match is None or match[1] != account:
                continue  # an account, a session, or another account's principal (not known here)
            if match[2] == "role":
                exists = any(role.arn == name for role in backend.roles.values())
            else:
                exists = match[3] in backend.users
            if not exists:
                missing.append(str(name))
    return missing


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
                        if write.kind is PolicyKind.KEY and missing_principals(
                            str(self.current_account), document
                        ):
                            raise _policy_refused()(write.code, _INVALID_PRINCIPALS)
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


# EventBridge's PutEvents quota: the entries of one request together (its size formula).
PUT_EVENTS_LIMIT = 262_144
_ENTRY_TIME_BYTES = 14


def put_events_size(entries: list[dict[str, Any]]) -> int:
    """The size EventBridge counts for PutEvents ``entries``: Time 14 bytes, and the UTF-8 bytes
    of Source, DetailType, Detail and each of Resources."""
    size = 0
    for entry in entries:
        size += _ENTRY_TIME_BYTES if entry.get("Time") is not None else 0
        for key in ("Source", "DetailType", "Detail"):
            size += len(str(entry.get(key) or "").encode())
        size += sum(len(str(r).encode()) for r in entry.get("Resources") or [])
    return size


def put_events_limit() -> None:
    """PutEvents refuses a request whose entries exceed 256 KB, as EventBridge does (moto takes
    any size): a ValidationException for the whole request, and nothing is put (idempotent)."""
    validation = _moto_class("moto.events.exceptions", "ValidationException")

    def make_put(original: Any) -> Any:
        def put_events(self: Any, events: list[dict[str, Any]]) -> Any:
            if put_events_size(events) > PUT_EVENTS_LIMIT:
                raise validation("Total size of the entries in the request is over the limit.")
            return original(self, events)

        return put_events

    _patch(_moto_class("moto.events.models", "EventsBackend"), "put_events", make_put)


def eventbridge_limits() -> None:
    """PutEvents' size limit (:func:`put_events_limit`); PutTargets refuses a FIFO queue as a
    target's dead-letter queue, as EventBridge does (its DLQs are standard queues; moto accepts
    any); FIFO queues deduplicate as SQS does, which a duplicate delivery to a FIFO target relies
    on (idempotent)."""
    put_events_limit()
    remember_deduplication_ids()
    validation = _moto_class("moto.events.exceptions", "ValidationException")

    def make_put(original: Any) -> Any:
        def put_targets(self: Any, name: str, event_bus_arn: Any, targets: list[dict[str, Any]]) -> Any:
            for target in targets:
                if str((target.get("DeadLetterConfig") or {}).get("Arn", "")).endswith(".fifo"):
                    raise validation("SQS FIFO is not supported by Dead Letter Queues.")
            return original(self, name, event_bus_arn, targets)

        return put_targets

    _patch(_moto_class("moto.events.models", "EventsBackend"), "put_targets", make_put)


def states_all_spares_terminal_errors() -> None:
    """``States.ALL`` matches neither ``States.Runtime`` nor ``States.DataLimitExceeded`` (AWS:
    "cannot catch the States.DataLimitExceeded terminal error or Runtime error types"); moto's
    interpreter matches every error. Such an error ends the execution, whatever its Catch says;
    a retrier or catcher naming the error itself still matches it (idempotent)."""
    decl = _moto_class(
        "moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl", "ErrorEqualsDecl"
    )
    states_error = _moto_class(
        "moto.stepfunctions.parser.asl.component.common.error_name.states_error_name", "StatesErrorName"
    )
    names = _moto_class(
        "moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type",
        "StatesErrorNameType",
    )
    terminal = {names.StatesRuntime, names.StatesStatesDataLimitExceeded}

    def make_eval(original: Any) -> Any:
        def _eval_body(self: Any, env: Any) -> None:
            error_name = env.stack[-1]
            if (
                isinstance(error_name, states_error)
                and error_name.typ in terminal
                and error_name not in self.error_names
            ):
                env.stack.pop()
                env.stack.append(False)
                return
            original(self, env)

        return _eval_body

    _patch(decl, "_eval_body", make_eval)


def _invoke_refused(refusal: InvokeRefusal) -> Exception:
    """The error Lambda's Invoke API answers a refused call with (429, 413), in moto's terms."""
    json_error = _moto_class("moto.core.exceptions", "JsonRESTError")

    class InvokeRefused(json_error):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(str(refusal.code), refusal.message)
            self.code = refusal.status
            self.description = json.dumps({"__type": str(refusal.code), **refusal.body()})

    return InvokeRefused()


def install(runtime: LambdaRuntime, delivery: EventDelivery) -> None:
    """Patch moto's Lambda invoke, EventBridge rule delivery and unnamed executions."""

    def make_invoke(_original: Any) -> Any:
        def invoke(self: Any, body: str, request_headers: Any, response_headers: dict[str, str]) -> bytes:
            headers = {k.lower(): v for k, v in dict(request_headers).items()}
            invocation_type = InvocationType(headers.get("x-amz-invocation-type", "RequestResponse"))
            raw = body.encode() if isinstance(body, str) else bytes(body or b"")
            refusal = too_large(len(raw), invocation_type)
            if refusal is not None:
                raise _invoke_refused(refusal)
            event = json.loads(body) if body else {}
            if invocation_type is InvocationType.EVENT:
                refusal = runtime.invoke_async(self.function_arn, event)
                if refusal is not None:
                    raise _invoke_refused(refusal)
                return b""
            if invocation_type is InvocationType.DRY_RUN:
                return b""
            result = runtime.invoke(self.function_arn, event)
            if result.refusal is not None:
                raise _invoke_refused(result.refusal)
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

    dynamodb_as_aws()
    dead_letter_source_arns()
    kms_key_states()
    kms_multi_region_ciphertexts()
    object_lock_default_retention_changes()
    s3_policy_conditions()
    s3_post_policies()
    atomic_s3_conditional_puts()
    refuse_malformed_policies()
    eventbridge_limits()
    states_all_spares_terminal_errors()
    _patch(_moto_class("moto.awslambda.models", "LambdaFunction"), "invoke", make_invoke)
    _patch(_moto_class("moto.events.models", "Rule"), "send_to_targets", make_send)
    _patch(
        _moto_class("moto.stepfunctions.parser.models", "StepFunctionsParserBackend"),
        "start_execution",
        make_start,
    )


def dynamodb_as_aws() -> None:
    """DynamoDB's atomic item writes, cheap transaction snapshots, idempotent transactions."""
    serialize_dynamodb_writes()
    cheap_transaction_snapshots()
    cached_condition_parses()
    size_of_a_missing_attribute()
    idempotent_transactions()


def enable_step_functions_execution(aws_endpoint: str) -> None:
    """Turn on moto's ASL interpreter (before any state machine is created)."""
    requests.post(
        f"{aws_endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()
