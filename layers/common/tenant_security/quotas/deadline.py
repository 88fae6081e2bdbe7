"""max_request_duration: a request that runs longer is stopped with a 503."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from tenant_security.errors import ServiceUnavailable


class RequestTimedOut(ServiceUnavailable):
    code = "request_timeout"


# Kept before Lambda's timeout: time to answer the 503, release the lease and record the request.
DEADLINE_MARGIN = 1.0
MIN_REQUEST_SECONDS = 0.1


def request_seconds(max_request_duration_ms: int, time_left: float | None) -> float:
    """How long a request may run: the tenant's max_request_duration, capped below the time the
    invocation has left (``time_left`` seconds, None when unknown) by :data:`DEADLINE_MARGIN`."""
    seconds = max_request_duration_ms / 1000
    if time_left is not None:
        seconds = min(seconds, max(MIN_REQUEST_SECONDS, time_left - DEADLINE_MARGIN))
    return seconds


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Stop the enclosed work after ``seconds`` with a 503 (SIGALRM: the main thread only)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise RequestTimedOut(f"the request took longer than max_request_duration ({seconds * 1000:.0f} ms)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
