"""How long importing a module takes in a fresh interpreter (a cold start's init, for the
benchmarks)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from tests.support.cloud import ROOT


def import_seconds(code: str, env: dict[str, str], runs: int = 5) -> float:
    """The median wall time of ``runs`` fresh interpreters running ``code`` (an import) in ``env``."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
