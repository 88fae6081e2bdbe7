"""Shared pieces of the document models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from tenant_security.errors import ValidationFailed, from_validation_error


class StrictModel(BaseModel):
    """Unknown fields are errors (a typo in a policy must not silently fall back to a default).

    No infinity or NaN in any number (``1e999`` in JSON, ``.inf`` in YAML): stored as JSON they
    would come back as null, and the document would no longer read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


_SIZE_RE = re.compile(r"^(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}


def size_in_bytes(size: str) -> int:
    """``"2GB"`` → 2_000_000_000; ``"1GiB"`` → 1_073_741_824 (SI units are decimal)."""
    match = _SIZE_RE.fullmatch(size.strip())
    if not match:
        raise ValueError("a size like '100GB', '512MB' or '1GiB' (units B, KB, MB, GB, TB, KiB ... TiB)")
    return int(float(match["num"]) * _UNITS[match["unit"]])


def _check_size(value: str) -> str:
    if size_in_bytes(value) <= 0:
        raise ValueError("must be larger than zero")
    return value.strip()


ByteSize = Annotated[str, AfterValidator(_check_size)]
"""A size as the policy and quota documents write it (``"100GB"``); the text is kept,
:func:`size_in_bytes` reads it."""

MAX_MONEY = 1_000_000_000_000  # the largest budget or cost threshold a document may state

M = TypeVar("M", bound=BaseModel)


def parse_document(model: type[M], data: Any, root_key: str) -> M:
    """Validate a document given as a mapping or YAML/JSON text, with or without its root key.

    Raises :class:`ValidationFailed` (400) listing each failing field.
    """
    if isinstance(data, str | bytes):
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise ValidationFailed(f"{root_key}: not valid YAML or JSON") from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValidationFailed(f"{root_key} must be an object")
    if set(data) == {root_key}:
        data = data[root_key] or {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, f"{root_key} is not valid") from exc
