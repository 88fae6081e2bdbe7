"""API client token requests on the local cloud: AWS calls per warm token request (goal: no KMS
call but the token's kms:Sign: the verifier key is cached), and its rate against a sign-in-free
baseline measured in the same run (GET /.well-known/jwks.json through the same function: the API
Gateway hop and a Lambda invocation, no AWS call). Bounded rounds."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.cloud import RunningCloud, aws_calls_of, from_address
from tests.support.identity import Identity, new_signed_in_user, seen

TENANT = "bench-mach"
ROUNDS = 40
ADDRESS = "127.0.0.92"  # its own throttle window


@pytest.fixture(scope="module")
def client(platform_cloud: RunningCloud, platform_admin: Identity) -> dict[str, Any]:
    admin = new_signed_in_user(platform_cloud, platform_admin, TENANT, "bea", ["tenant-admin"])
    reply = platform_cloud.http(
        "POST",
        f"/tenants/{TENANT}/clients",
        json={"name": "bench", "roles": ["viewer"]},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert reply.status_code == 201, reply.text
    created = dict(reply.json())
    seen(created["client_secret"])
    return created


def test_warm_token_request_makes_no_kms_call_but_its_signature(
    benchmark: Any, platform_cloud: RunningCloud, client: dict[str, Any]
) -> None:
    session = from_address(ADDRESS)
    url = platform_cloud.api_url + "/oauth2/token"
    form = {"grant_type": "client_credentials"}
    auth = (client["client_id"], client["client_secret"])

    def token() -> None:
        reply = session.post(url, data=form, auth=auth, timeout=30)
        assert reply.status_code == 200, reply.text
        seen(reply.json()["access_token"])

    def baseline() -> None:
        reply = session.get(platform_cloud.api_url + "/.well-known/jwks.json", timeout=30)
        assert reply.status_code == 200
        assert reply.headers["x-localcloud-aws-calls"] == "0"  # the keys are cached: no AWS call

    token()  # warm: the verifier key unwrapped once
    bare_started = time.perf_counter()
    for _ in range(ROUNDS):
        baseline()
    bare = (time.perf_counter() - bare_started) / ROUNDS
    before = aws_calls_of(platform_cloud, "AuthApiFunction")
    benchmark.pedantic(token, rounds=ROUNDS, iterations=1)
    spent = aws_calls_of(platform_cloud, "AuthApiFunction") - before
    per_request = {k: round(v / ROUNDS, 3) for k, v in sorted(spent.items())}
    ratio = benchmark.stats.stats.mean / bare
    benchmark.extra_info["aws_calls_per_request"] = per_request
    benchmark.extra_info["time_vs_jwks_baseline"] = round(ratio, 2)
    print(f"\nper warm token request: {per_request}; {ratio:.2f}x the JWKS request's time")
    kms = {op: n for op, n in spent.items() if op.startswith("kms:")}
    assert kms.get("kms:Sign") == ROUNDS, kms  # the token's signature, one each
    # the verifier key stays cached (a second warm worker may unwrap it once)
    assert kms.get("kms:Decrypt", 0) <= 1, kms
    assert set(kms) <= {"kms:Sign", "kms:Decrypt"}, kms
