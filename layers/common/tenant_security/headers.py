"""Request headers, looked up as HTTP does: case-insensitively."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """The value of header ``name`` (any case), or None."""
    wanted = name.lower()
    return next((str(v) for k, v in (headers or {}).items() if k.lower() == wanted and v is not None), None)
