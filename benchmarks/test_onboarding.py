"""Onboarding end to end on the local cloud: time from the EventBridge event to ACTIVE, and the
AWS calls it makes (counted by the local cloud's moto, Step Functions' own calls included).
Bounded: a handful of rounds, each a new tenant."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import requests

from tests.support.cloud import RunningCloud
from tests.support.tenants import finished_execution, now, put_onboarding_event, request_body

_ids = itertools.count()


def aws_calls(cloud: RunningCloud) -> Counter[str]:
    """The platform's calls (functions and state machines), not the benchmark's own ("test" key)."""
    counts = requests.get(cloud.api_url + "/__localcloud/stats", timeout=10).json()["aws_calls"]
    return Counter({key.split("|", 1)[1]: n for key, n in counts.items() if not key.startswith("test|")})


def test_onboarding_end_to_end(benchmark: Any, platform_cloud: RunningCloud) -> None:
    costs: list[Counter[str]] = []

    def onboard_one() -> dict[str, Any]:
        tenant = f"bench-onb-{next(_ids)}"
        before, started = aws_calls(platform_cloud), now()
        put_onboarding_event(platform_cloud, request_body(tenant, "schema"))
        done = finished_execution(platform_cloud, "onboarding", tenant, after=started, timeout=120)
        assert done["status"] == "SUCCEEDED", done
        costs.append(aws_calls(platform_cloud) - before)
        return done

    benchmark.pedantic(onboard_one, rounds=3, iterations=1)
    per_onboarding = sum(sum(c.values()) for c in costs) / len(costs)
    by_service: Counter[str] = Counter()
    for cost in costs:
        for name, count in cost.items():
            by_service[name.split(":")[0]] += count
    benchmark.extra_info["aws_calls_per_onboarding"] = per_onboarding
    benchmark.extra_info["by_service"] = {k: v / len(costs) for k, v in by_service.items()}
    print(
        f"\nAWS calls per onboarding: {per_onboarding:.0f}  by service: "
        f"{ {k: round(v / len(costs), 1) for k, v in sorted(by_service.items())} }"
    )
