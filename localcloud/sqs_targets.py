"""EventBridge rule targets that are SQS queues, sent as EventBridge sends them (used by
:class:`localcloud.eventbridge.EventDelivery`).

EventBridge sends with its service principal, ``events.amazonaws.com``: the queue's policy must
allow it ``sqs:SendMessage`` (with ``aws:SourceArn`` the rule's ARN and ``aws:SourceAccount`` the
account in the request's context), and a queue encrypted under a customer managed key needs that
key's policy to allow the principal ``kms:GenerateDataKey`` and ``kms:Decrypt`` (an AWS managed
key, ``alias/aws/sqs``, never can; ``SqsManagedSseEnabled`` needs nothing). Both policies are
evaluated by the local IAM evaluator (:mod:`localcloud.iam.evaluator`), conditions included.
A refused send raises :class:`QueueRefusal` with the ``ERROR_CODE`` EventBridge writes on the
dead letter (``NO_PERMISSIONS``, ``NO_RESOURCE``...) and whether EventBridge retries it: per
EventBridge's guide, missing permissions and a missing target go to the dead-letter queue
without retries (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).

FIFO queues: ``SqsParameters.MessageGroupId`` is the group; EventBridge sends no deduplication id,
so the queue must have ContentBasedDeduplication (EventBridge's API reference: "If you specify a
fair or FIFO queue as a target, the queue must have content-based deduplication enabled"). The
body is the whole event by default, whose id makes it unique: a duplicate delivery of one event
is deduplicated by SQS, two events never are. :func:`remember_deduplication_ids` makes moto's
deduplication SQS's: 5 minutes from the send, even after the first copy was deleted, and atomic
(moto forgot a deleted message's id, and two concurrent sends of one id could both be queued).
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from localcloud.iam.enforce import unsupported_condition_keys
from localcloud.iam.evaluator import PolicyEvaluator, Simulation

EVENTS_PRINCIPAL = "events.amazonaws.com"
# What SQS asks KMS for on a sender's behalf (an encrypted queue).
SEND_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
AWS_MANAGED_ALIAS_PREFIX = "alias/aws/"
DEDUPLICATION_SECONDS = 300

# EventBridge's dead-letter ERROR_CODE values (its guide's list) for what SQS answers.
NO_PERMISSIONS = "NO_PERMISSIONS"
NO_RESOURCE = "NO_RESOURCE"
INVALID_PARAMETER = "INVALID_PARAMETER"
THROTTLING = "THROTTLING"
SDK_CLIENT_ERROR = "SDK_CLIENT_ERROR"
INTERNAL_ERROR = "INTERNAL_ERROR"
_SQS_ERRORS = {
    "AWS.SimpleQueueService.NonExistentQueue": NO_RESOURCE,
    "QueueDoesNotExist": NO_RESOURCE,
    "InvalidParameterValue": INVALID_PARAMETER,
    "MissingParameter": INVALID_PARAMETER,
    "InvalidMessageContents": INVALID_PARAMETER,
    "RequestThrottled": THROTTLING,
    "ThrottlingException": THROTTLING,
}
_NOT_RETRIED = {NO_PERMISSIONS, NO_RESOURCE}


class QueueRefusal(Exception):
    """A send EventBridge could not make: its dead-letter ERROR_CODE, message, and whether it retries."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retriable = code not in _NOT_RETRIED


def service_context(rule_arn: str, account: str, region: str) -> dict[str, str | list[str]]:
    """The global condition keys of a request EventBridge makes for ``rule_arn``."""
    return {
        "aws:SourceArn": rule_arn,
        "aws:SourceAccount": account,
        "aws:PrincipalServiceName": EVENTS_PRINCIPAL,
        "aws:PrincipalServiceNamesList": [EVENTS_PRINCIPAL],
        "aws:PrincipalIsAWSService": "true",
        "aws:SecureTransport": "true",
        "aws:RequestedRegion": region,
    }


class QueueSender:
    """Sends one EventBridge delivery to a queue; ``clients``: the local cloud's own (unchecked)."""

    def __init__(self, clients: Callable[[str], Any], evaluator: PolicyEvaluator | None = None) -> None:
        self._client = clients
        self._evaluator = evaluator
        self._owns_evaluator = evaluator is None
        self._lock = threading.Lock()

    def evaluator(self) -> PolicyEvaluator:
        """The IAM evaluator (a node process of its own, started on first use, unless given one)."""
        with self._lock:
            if self._evaluator is None:
                self._evaluator = PolicyEvaluator()
            return self._evaluator

    def send(self, rule_arn: str, target: dict[str, Any], body: str) -> None:
        """Send ``body`` to the target's queue as EventBridge would for ``rule_arn``, or raise."""
        _, _, _, region, account, name = str(target["Arn"]).split(":", 5)
        sqs = self._client("sqs")
        try:
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        except ClientError as exc:
            raise _refusal(exc) from exc
        context = service_context(rule_arn, account, region)
        self._check_queue_policy(target["Arn"], url, account, attributes.get("Policy"), context)
        key = attributes.get("KmsMasterKeyId")
        if key:
            self._check_key(target["Arn"], key, account, region, context)
        group = (target.get("SqsParameters") or {}).get("MessageGroupId")
        fifo = attributes.get("FifoQueue") == "true"
        if fifo and not group:  # PutTargets refuses such a target; a changed queue could get here
            raise QueueRefusal(INVALID_PARAMETER, "The request must contain the parameter MessageGroupId.")
        try:
            sqs.send_message(QueueUrl=url, MessageBody=body, **({"MessageGroupId": group} if group else {}))
        except ClientError as exc:
            raise _refusal(exc) from exc

    def _decide(self, action: str, resource: str, account: str, policy: dict[str, Any], context: Any) -> bool:
        unknown = unsupported_condition_keys([policy], action)
        if unknown:  # never a silent allow: the delivery fails, loudly
            why = f"{action}: condition keys the local cloud does not supply: {unknown}"
            raise QueueRefusal(INTERNAL_ERROR, f"localcloud IAM: {why}")
        simulation = Simulation(EVENTS_PRINCIPAL, action, resource, account, context, [], policy)
        return self.evaluator().decide(simulation).allowed

    def _check_queue_policy(
        self, queue_arn: str, url: str, account: str, policy_text: str | None, context: Any
    ) -> None:
        # A service principal has no identity policies: only the queue's policy can allow it.
        allowed = bool(policy_text) and self._decide(
            "sqs:SendMessage", queue_arn, account, json.loads(str(policy_text)), context
        )
        if not allowed:
            raise QueueRefusal(NO_PERMISSIONS, f"Access to the resource {url} is denied.")

    def _check_key(self, queue_arn: str, key: str, account: str, region: str, context: Any) -> None:
        def denied(action: str, resource: str, why: str) -> QueueRefusal:
            return QueueRefusal(
                NO_PERMISSIONS,
                f"KMS.AccessDeniedException: {EVENTS_PRINCIPAL} is not authorized to perform: {action} "
                f"on resource: {resource} ({why})",
            )

        managed = "an AWS managed key's policy cannot allow a service"
        if key.startswith(AWS_MANAGED_ALIAS_PREFIX):
            raise denied(SEND_KEY_ACTIONS[0], key, managed)
        kms = self._client("kms")
        try:
            metadata = kms.describe_key(KeyId=key)["KeyMetadata"]
        except ClientError as exc:
            raise QueueRefusal(NO_RESOURCE, f"KMS.NotFoundException: {exc}") from exc
        if metadata.get("KeyManager") == "AWS":
            raise denied(SEND_KEY_ACTIONS[0], metadata["Arn"], managed)
        policy = json.loads(kms.get_key_policy(KeyId=metadata["KeyId"], PolicyName="default")["Policy"])
        key_context = {
            **context,
            "kms:ViaService": f"sqs.{region}.amazonaws.com",
            "kms:EncryptionContextKeys": ["aws:sqs:arn"],
        }
        for action in SEND_KEY_ACTIONS:
            if not self._decide(action, metadata["Arn"], account, policy, key_context):
                raise denied(action, metadata["Arn"], "no statement of the key policy allows it")

    def close(self) -> None:
        """Stop the evaluator this sender started (one it was given is its owner's)."""
        with self._lock:
            if self._owns_evaluator and self._evaluator is not None:
                self._evaluator.close()
                self._evaluator = None


def _refusal(exc: ClientError) -> QueueRefusal:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    return QueueRefusal(_SQS_ERRORS.get(code, SDK_CLIENT_ERROR), f"{code}: {error.get('Message', '')}")


_dedup_guard = threading.Lock()
_dedup_locks: dict[int, threading.Lock] = {}


def remember_deduplication_ids() -> None:
    """FIFO deduplication as SQS's (idempotent): a deduplication id is remembered for 5 minutes
    from its send, whether or not its message is still queued, and checked and recorded as one
    step. moto compared only with the messages still in the queue, outside any lock."""
    queue_class: Any = importlib.import_module("moto.sqs.models").Queue
    original = queue_class.add_message
    if getattr(original, "_localcloud", False):
        return

    def add_message(self: Any, message: Any) -> None:
        deduplicating = self.fifo_queue and (
            self.attributes.get("ContentBasedDeduplication") == "true" or message.deduplication_id
        )
        if not deduplicating or message.deduplication_id is None:
            original(self, message)
            return
        with _dedup_guard:
            lock = _dedup_locks.setdefault(id(self), threading.Lock())
        with lock:
            seen: dict[str, float] = self.__dict__.setdefault("_localcloud_dedup", {})
            now = time.time()
            for stale in [k for k, at in seen.items() if now - at >= DEDUPLICATION_SECONDS]:
                del seen[stale]
            if message.deduplication_id in seen:
                return  # accepted, never delivered: a duplicate within the interval
            seen[message.deduplication_id] = now
            original(self, message)

    add_message._localcloud = True  # type: ignore[attr-defined]
    queue_class.add_message = add_message
