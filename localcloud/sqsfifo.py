"""SQS FIFO message groups as SQS keeps them (a moto fix, installed by the local cloud).

SQS returns a group's messages in order, and none of a group while one of it is in flight. moto
keeps received messages in a "pending" set and blocks every group with a pending message -- but a
message whose visibility timeout ran out stays pending until a receive reaches it in the queue's
order. When a failed batch of a group came back, its first message was skipped (the later ones
still pending) and a later one delivered first: the group's order broken. Here a receive first
forgets every pending message that is visible again, so the group opens with its first message.

moto's receive, delete and visibility changes are not thread-safe either (two concurrent receives
could both take one group; a delete beside a receive changed the pending set under its feet):
on a FIFO queue they are serialised per queue. A long poll is short polls under that lock with
sleeps outside it (moto's own long poll spins while every visible message is in a busy group).
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any

_POLL_PAUSE = 0.05
_locks: dict[int, threading.RLock] = {}
_guard = threading.Lock()


def _lock(queue: Any) -> threading.RLock:
    with _guard:
        return _locks.setdefault(id(queue), threading.RLock())


def release_expired(queue: Any) -> None:
    """Forget the pending messages whose visibility timeout ran out: they are in the queue again."""
    for message in list(queue.pending_messages):
        if message.visible:
            queue.pending_messages.discard(message)


def install() -> None:
    """Patch moto's SQS backend (idempotent)."""
    backend: Any = importlib.import_module("moto.sqs.models").SQSBackend
    if getattr(backend, "_localcloud_fifo_groups", False):
        return
    receive, delete, change = (
        backend.receive_message,
        backend.delete_message,
        backend.change_message_visibility,
    )

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = self.get_queue(queue_name)
        if not queue.fifo_queue:
            return list(
                receive(
                    self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names
                )
            )
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with _lock(queue):
                release_expired(queue)
                found = list(receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names))
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(_POLL_PAUSE)

    def delete_message(self: Any, queue_name: str, receipt_handle: str) -> None:
        with _lock(self.get_queue(queue_name)):
            delete(self, queue_name, receipt_handle)

    def change_message_visibility(
        self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        with _lock(self.get_queue(queue_name)):
            change(self, queue_name, receipt_handle, visibility_timeout)

    backend.receive_message = receive_message
    backend.delete_message = delete_message
    backend.change_message_visibility = change_message_visibility
    backend._localcloud_fifo_groups = True
