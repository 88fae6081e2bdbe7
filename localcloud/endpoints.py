"""How a client outside the local cloud reaches its AWS endpoint: the tests, the demo, the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def client_environment(info: Mapping[str, Any], access_key: str = "client") -> dict[str, str]:
    """Environment that points a process's AWS clients (the Encryption SDK's too) at the local
    cloud described by ``info`` (.localcloud/bootstrap.json). moto accepts any credentials; the
    access key names the caller in the local cloud's call counts (functions use their own)."""
    return {
        "AWS_ENDPOINT_URL": str(info["aws_endpoint_url"]),
        "AWS_DEFAULT_REGION": str(info["region"]),
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": access_key,
    }
