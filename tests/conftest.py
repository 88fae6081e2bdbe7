"""Shared fixtures: local clouds started from the fixture template and from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cloud import FIXTURE_TEMPLATE, REAL_TEMPLATE, RunningCloud, start_cloud
from tests.support.identity import Identity, first_sign_in


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
        extra=("--parameter", "FaultInjection=enabled"),  # faults are set per tenant id by the tests
    )
    yield cloud
    cloud.stop()


@pytest.fixture(scope="session")
def platform_admin(platform_cloud: RunningCloud) -> Identity:
    """The bootstrap admin of the platform cloud, after its first sign-in."""
    info = platform_cloud.info
    return first_sign_in(platform_cloud, info["platform_tenant"], info["username"], info["password"])
