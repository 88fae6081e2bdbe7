"""Lambda's pollers for SQS event source mappings (:mod:`localcloud.sqs_mapping`).

As Lambda's pollers do: receive a batch from the queue with the function's execution role, invoke
the function synchronously with the SQS event, delete the batch when the invocation succeeds
(with ReportBatchItemFailures: all but the messages it names; an invalid answer keeps them all),
and leave it to reappear after the queue's visibility timeout when it fails -- Lambda changes no
visibility. A throttled batch is tried again until its visibility timeout would run out. The
queue's ``RedrivePolicy`` moves a message received ``maxReceiveCount`` times to its dead-letter
queue: moto's SQS does this on receive, as SQS does.

FIFO queues: SQS hides the messages of a group while one of it is in flight (moto does, with the
local cloud's fix in :mod:`localcloud.sqsfifo`), so each group has at most one batch in flight and
keeps its order; groups run in parallel up to
the mapping's concurrency. Delivery is at least once: a batch whose visibility timeout runs out
while the function still runs is received again, by another poller.

Before any poller starts, the execution role must allow ``sqs:GetQueueAttributes``,
``sqs:ReceiveMessage`` and ``sqs:DeleteMessage`` on the queue (Lambda checks at creation): probed
through the local cloud's own IAM enforcement with calls that change nothing. The pollers sign with
the function's key suffixed with :data:`~localcloud.sqs_mapping.POLLER_KEY_SUFFIX`, as the role's
session: on AWS their calls are Lambda's, so the AWS-call counts keep them apart from the function's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from localcloud.lambdas import FunctionSpec, LambdaRuntime
from localcloud.provision import ProvisioningError
from localcloud.sqs_mapping import (
    RECEIVE_MAX,
    MappingRefused,
    Queue,
    SqsMapping,
    failed_items,
    mapping_of,
    sqs_record,
)

log = logging.getLogger("localcloud.sqs")

# Short polls, so that closing the cloud never waits out a long poll: an idle poller waits,
# doubling, up to a second (interrupted by the close); the extra pollers sleep until there is work.
_IDLE_FIRST, _IDLE_LAST, _EXTRA_IDLE = 0.05, 1.0, 5.0
_THROTTLE_FIRST, _THROTTLE_LAST = 0.1, 2.0
# What the pollers need and Lambda checks at creation, each with a probe that changes nothing.
_PROBES: tuple[tuple[str, Callable[[Any, str], Any]], ...] = (
    # 11 is over SQS's limit: an allowed call is refused by SQS itself, receiving nothing
    ("ReceiveMessage", lambda sqs, url: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)),
    ("DeleteMessage", lambda sqs, url: sqs.delete_message(QueueUrl=url, ReceiptHandle="localcloud-probe")),
    ("GetQueueAttributes", lambda sqs, url: sqs.get_queue_attributes(QueueUrl=url)),
)
_DENIED = {"AccessDenied", "AccessDeniedException"}


class SqsEventSources:
    """The template's SQS event source mappings and their pollers.

    ``admin``: the local cloud's own clients (provisioning); ``as_poller``: a client signed with a
    function's poller key (:func:`poller_key`), authorized as its execution role."""

    def __init__(
        self,
        runtime: LambdaRuntime,
        admin: Callable[[str], Any],
        as_poller: Callable[[str, FunctionSpec], Any],
        region: str,
        account: str,
    ) -> None:
        self.runtime = runtime
        self._admin = admin
        self._as_poller = as_poller
        self.region = region
        self.account = account
        self.mappings: list[SqsMapping] = []
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ provisioning
    def create(self, logical_id: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Provision one ``AWS::Lambda::EventSourceMapping``: its UUID and attributes."""
        source = str(props.get("EventSourceArn", ""))
        if source.split(":")[2:3] != ["sqs"]:
            raise MappingRefused(f"the local cloud emulates SQS event sources only, not {source!r}")
        function = self.runtime.spec(str(props["FunctionName"]))
        name = source.rsplit(":", 1)[1]
        sqs = self._admin("sqs")
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=source.split(":")[4])["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        queue = Queue(
            source,
            url,
            attributes.get("FifoQueue") == "true",
            int(attributes.get("VisibilityTimeout", 30)),
        )
        mapping = mapping_of(logical_id, props, function, queue)
        self.mappings.append(mapping)
        arn = f"arn:aws:lambda:{self.region}:{self.account}:event-source-mapping:{mapping.uuid}"
        return mapping.uuid, {"Id": mapping.uuid, "EventSourceMappingArn": arn}

    def check_permissions(self) -> None:
        """Refuse a mapping whose execution role may not poll its queue, as Lambda refuses it.
        Call once the IAM enforcement knows the poller keys."""
        for mapping in self.mappings:
            sqs = self._as_poller("sqs", mapping.function)
            for action, probe in _PROBES:
                try:
                    probe(sqs, mapping.queue.url)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") in _DENIED:
                        raise ProvisioningError(
                            f"{mapping.logical_id} (AWS::Lambda::EventSourceMapping): "
                            "InvalidParameterValueException: The provided execution role does not have "
                            f"permissions to call {action} on SQS"
                        ) from exc

    def start(self) -> None:
        """Check the roles, then start every enabled mapping's pollers."""
        self.check_permissions()
        for mapping in self.mappings:
            if not mapping.enabled:
                continue
            sqs = self._as_poller(
                "sqs", mapping.function
            )  # one client, made here: creation is not thread-safe
            for index in range(mapping.concurrency):
                thread = threading.Thread(
                    target=self._poll,
                    args=(mapping, sqs, index == 0),
                    daemon=True,
                    name=f"sqs-poller-{mapping.logical_id}-{index}",
                )
                thread.start()
                self._threads.append(thread)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the pollers; a batch in flight finishes (or its worker is killed by the runtime)."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    # ------------------------------------------------------------------ polling
    def _poll(self, mapping: SqsMapping, sqs: Any, lead: bool) -> None:
        idle = _IDLE_FIRST
        while not self._stop.is_set():
            try:
                messages = self._gather(mapping, sqs)
                if messages:
                    idle = _IDLE_FIRST
                    with self._wake:  # there is work: the other pollers poll too
                        self._wake.notify_all()
                    self._process(mapping, sqs, messages)
                    continue
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("SQS poller of %s: %s", mapping.logical_id, exc)
            if lead:
                self._stop.wait(idle)
                idle = min(_IDLE_LAST, idle * 2)
            else:
                with self._wake:
                    self._wake.wait(_EXTRA_IDLE)

    def _receive(self, mapping: SqsMapping, sqs: Any, count: int) -> list[dict[str, Any]]:
        reply = sqs.receive_message(
            QueueUrl=mapping.queue.url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(reply.get("Messages", []))

    def _gather(self, mapping: SqsMapping, sqs: Any) -> list[dict[str, Any]]:
        """One batch: up to BatchSize messages, gathered for up to the batching window."""
        batch = self._receive(mapping, sqs, min(RECEIVE_MAX, mapping.batch_size))
        if not batch:
            return []
        deadline = time.monotonic() + mapping.window
        while len(batch) < mapping.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            got = self._receive(mapping, sqs, min(RECEIVE_MAX, mapping.batch_size - len(batch)))
            batch += got
            if not got:
                self._stop.wait(min(remaining, _IDLE_LAST))
        return batch

    def _process(self, mapping: SqsMapping, sqs: Any, messages: list[dict[str, Any]]) -> None:
        received = time.monotonic()
        event = {"Records": [sqs_record(m, mapping.queue.arn, self.region) for m in messages]}
        delay = _THROTTLE_FIRST
        result = self.runtime.invoke(mapping.function.arn, event)
        while result.throttled:
            # Lambda tries a throttled batch again until the messages' visibility timeout runs out
            if time.monotonic() + delay - received >= mapping.queue.visibility_timeout:
                return
            if self._stop.wait(delay):
                return
            delay = min(_THROTTLE_LAST, delay * 2)
            result = self.runtime.invoke(mapping.function.arn, event)
        ids = [str(m["MessageId"]) for m in messages]
        if result.failed:
            # the batch reappears after the visibility timeout (Lambda changes no visibility)
            log.warning(
                "SQS batch of %d for %s failed: %s",
                len(ids),
                mapping.logical_id,
                (result.error or {}).get("errorType"),
            )
            return
        failed = failed_items(result.payload, ids) if mapping.report_failures else set()
        if failed is None:
            log.warning(
                "SQS batch of %s: invalid batchItemFailures response, the whole batch failed",
                mapping.logical_id,
            )
            return
        self._delete(mapping, sqs, [m for m in messages if m["MessageId"] not in failed])

    def _delete(self, mapping: SqsMapping, sqs: Any, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), RECEIVE_MAX):
            chunk = messages[start : start + RECEIVE_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            reply = sqs.delete_message_batch(QueueUrl=mapping.queue.url, Entries=entries)
            for failure in reply.get("Failed", []):
                # received again meanwhile (at least once): it will be delivered again
                log.warning(
                    "SQS poller of %s could not delete a message: %s", mapping.logical_id, failure.get("Code")
                )
