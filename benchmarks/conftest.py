"""Benchmarks run against a local cloud started once for the session."""

from tests.conftest import fixture_cloud, platform_admin, platform_cloud

__all__ = ["fixture_cloud", "platform_admin", "platform_cloud"]
