"""The authorizer's cost: warm decision time, AWS calls per warm decision, cold import.

Goals (issue 3): at most 1 AWS call per warm decision and none to KMS; importing the authorizer
module in a fresh interpreter takes at most 1.25 times importing boto3 alone.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cloud import ROOT, RunningCloud
from tests.support.identity import mint_token, seed_tenant, signing_key_id
from tests.support.imports import import_seconds

API = "arn:aws:execute-api:us-east-1:123456789012:bench/dev"


@pytest.fixture(scope="module")
def authorizer(platform_cloud: RunningCloud) -> Iterator[tuple[Any, Counter[str], dict[str, Any]]]:
    """The authorizer's services in this process, pointed at the local cloud, with a call counter."""
    env = {
        "AWS_ENDPOINT_URL": platform_cloud.info["aws_endpoint_url"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "TOKEN_SIGNING_KEY_ID": signing_key_id(platform_cloud),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from tenant_security import aws, services

    aws.reset_clients()
    for factory in (
        services.settings,
        services.request_authorizer,
        services.verifier,
        services.public_keys,
        services.tenants,
        services.tenant_store,
        services.sessions,
        services.publisher,
    ):
        factory.cache_clear()
    calls: Counter[str] = Counter()
    for service in ("dynamodb", "kms", "events"):
        aws.client(service).meta.events.register(
            "before-call.*.*",
            lambda model, **_: calls.update([f"{model.service_model.service_name}:{model.name}"]),
        )
    seed_tenant(platform_cloud, "bench-tenant")
    token = mint_token(platform_cloud, "bench-tenant", "bob", ["tenant-admin"], ttl=900)
    event = {
        "type": "REQUEST",
        "methodArn": f"{API}/GET/tenants/bench-tenant/users",
        "resource": "/tenants/{tenant_id}/users",
        "path": "/tenants/bench-tenant/users",
        "httpMethod": "GET",
        "headers": {"Authorization": f"Bearer {token}"},
        "pathParameters": {"tenant_id": "bench-tenant"},
        "requestContext": {"identity": {"sourceIp": "203.0.113.7"}},
    }
    yield services.request_authorizer(), calls, event
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    aws.reset_clients()


def test_warm_decision(benchmark: Any, authorizer: tuple[Any, Counter[str], dict[str, Any]]) -> None:
    decider, calls, event = authorizer
    first = decider.authorize(event)  # cold: public key, tenant record
    assert "deny_reason" not in first.get("context", {})
    calls.clear()
    rounds = 0

    def decide() -> dict[str, Any]:
        nonlocal rounds
        rounds += 1
        return decider.authorize(event)

    benchmark(decide)
    per_call = sum(calls.values()) / rounds
    benchmark.extra_info["aws_calls_per_decision"] = per_call
    benchmark.extra_info["calls"] = dict(calls)
    print(f"\nAWS calls per warm decision: {per_call:.2f} {dict(calls)}")
    assert per_call <= 1.0
    assert not any(name.startswith("kms:") for name in calls)


def test_cold_import_against_boto3(benchmark: Any) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "functions" / "authorizer"), str(ROOT / "layers" / "common")]
        ),
    }
    boto3_only = import_seconds("import boto3", env)
    authorizer = benchmark.pedantic(lambda: import_seconds("import app", env, runs=1), rounds=5, iterations=1)
    authorizer = import_seconds("import app", env)
    first_decision = import_seconds(
        "import app; import tenant_security.authz.decision, tenant_security.models, tenant_security.config",
        env,
    )
    ratio = authorizer / boto3_only
    benchmark.extra_info.update(
        boto3_seconds=boto3_only,
        authorizer_import_seconds=authorizer,
        ratio=ratio,
        with_first_decision_modules_seconds=first_decision,
    )
    print(
        f"\nimport boto3: {boto3_only:.3f}s  import authorizer: {authorizer:.3f}s"
        f"  ratio {ratio:.2f} (goal <= 1.25)"
        f"\nwith the modules its first decision loads: {first_decision:.3f}s"
    )
    assert ratio <= 1.25
