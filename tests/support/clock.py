"""A clock a test moves by hand (``clock.now += 61``), for code that takes a ``clock`` callable."""

from __future__ import annotations

import time


class ManualClock:
    """Starts at the real time; moves only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now
