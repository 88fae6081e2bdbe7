"""Shared fixtures: local clouds started from the fixture template and from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cloud import (
    FIXTURE_TEMPLATE,
    REAL_TEMPLATE,
    SIGN_IN_PER_ACCOUNT,
    SIGN_IN_PER_ADDRESS,
    RunningCloud,
    start_cloud,
)
from tests.support.identity import Identity, RenewingIdentity, first_sign_in


@pytest.fixture(scope="session")
def fixture_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    """The fixture template (tests/integration/fixtures/localcloud) running locally."""
    cloud = start_cloud(FIXTURE_TEMPLATE, tmp_path_factory.mktemp("fixture-cloud"))
    yield cloud
    cloud.stop()


@pytest.fixture(scope="session")
def platform_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    """template.yaml running locally with the embedded PostgreSQL."""
    cloud = start_cloud(
        REAL_TEMPLATE,
        Path(tmp_path_factory.mktemp("platform-cloud")),
        database=True,
        extra=(
            *("--parameter", "FaultInjection=enabled"),  # faults are set per tenant id by the tests
            *("--parameter", f"SignInAttemptsPerAddress={SIGN_IN_PER_ADDRESS}"),
            *("--parameter", f"SignInAttemptsPerAccount={SIGN_IN_PER_ACCOUNT}"),
            # a failed audit event is tried again after 31 s, not 3 minutes (the least SQS and
            # Lambda allow with the writer's 30 s timeout)
            *("--parameter", "AuditRetrySeconds=31"),
        ),
    )
    yield cloud
    try:
        _every_call_was_allowed(cloud)
    finally:
        cloud.stop()


def _every_call_was_allowed(cloud: RunningCloud) -> None:
    """After all the tests that used it: each function's AWS calls are allowed by its role."""
    from localcloud.template import transform_template
    from tests.support.iam import ungranted_calls

    stats = cloud.http("GET", "/__localcloud/stats").json()
    cfn = transform_template(REAL_TEMPLATE, {}, "us-east-1")[0]
    missing = ungranted_calls(cfn, stats["aws_calls"])
    assert not missing, (
        f"calls the functions made that their IAM roles in template.yaml do not allow: {missing}"
    )
    # a denied call a function caught and went on from would pass its test: none may be denied
    assert stats["iam"]["denied"] == 0, (
        f"{stats['iam']['denied']} calls of the functions were denied "
        f"(localcloud.iam 'denied:' lines in {cloud.log_path})"
    )


@pytest.fixture(scope="session")
def platform_admin(platform_cloud: RunningCloud) -> Identity:
    """The bootstrap admin of the platform cloud, after its first sign-in. It lives as long as the
    session, longer than an access token: its token renews itself (RenewingIdentity)."""
    info = platform_cloud.info
    signed_in = first_sign_in(platform_cloud, info["platform_tenant"], info["username"], info["password"])
    return RenewingIdentity.of(platform_cloud, signed_in)
