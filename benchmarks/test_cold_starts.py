"""Each function's cold start, as what Lambda's init pays for it: importing the function's ``app``
module in a fresh interpreter (its environment as template.yaml sets it), against importing boto3
alone in the same run -- a ratio, not an absolute. The authorizer's goal (at most 1.25x) is
benchmarks/test_authorizer.py's; here every function is reported, its ratio as extra info."""

from __future__ import annotations

import os
from typing import Any

from tests.support.cloud import ROOT
from tests.support.imports import import_seconds
from tests.support.settings import local_environment

FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


def test_every_function_s_cold_import_against_boto3(benchmark: Any) -> None:
    # the region Lambda sets (AWS_DEFAULT_REGION too: boto3 reads that one)
    environment = local_environment()
    base = {**os.environ, **environment, "AWS_DEFAULT_REGION": environment["AWS_REGION"]}
    boto3_only = import_seconds("import boto3", base, runs=3)
    ratios: dict[str, float] = {}

    def measure() -> None:
        for function in FUNCTIONS:
            env = {
                **base,
                "PYTHONPATH": os.pathsep.join(
                    [str(ROOT / "functions" / function), str(ROOT / "layers" / "common")]
                ),
            }
            ratios[function] = import_seconds("import app", env, runs=3) / boto3_only

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(boto3_seconds=boto3_only, import_over_boto3=ratios)
    print(f"\nimport boto3: {boto3_only:.3f}s; each function's app module, as a multiple of it:")
    for function, ratio in ratios.items():
        print(f"  {function:16} {ratio:.2f}x")
    assert set(ratios) == set(FUNCTIONS)
    assert all(r > 0 for r in ratios.values())
