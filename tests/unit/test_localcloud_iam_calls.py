"""How the local cloud reads a call for IAM: S3's DeleteObjects key by key, and S3 Object Lock's
COMPLIANCE rule (a retention may be lengthened, never shortened or weakened, until it expires)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from localcloud.iam.calls import UnmappedCall, deleted_objects
from localcloud.iam.objectlock import refused

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _at(days: float) -> str:
    return (NOW + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_delete_objects_names_each_key_and_whether_it_is_a_version() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Object><Key>a/one.txt</Key></Object>"
        b"<Object><Key>b &amp; c</Key><VersionId>v1</VersionId></Object><Quiet>true</Quiet></Delete>"
    )
    assert deleted_objects(body) == [("a/one.txt", False), ("b & c", True)]
    with pytest.raises(UnmappedCall):
        deleted_objects(b"not xml")


@pytest.mark.parametrize(
    ("mode", "until", "is_refused"),
    [
        ("COMPLIANCE", _at(31), False),  # lengthened
        ("COMPLIANCE", _at(30), False),  # the same
        ("COMPLIANCE", _at(29), True),  # shortened
        ("GOVERNANCE", _at(31), True),  # weakened
        (None, None, True),  # removed
    ],
)
def test_a_running_compliance_retention_only_grows(
    mode: str | None, until: str | None, is_refused: bool
) -> None:
    assert refused("COMPLIANCE", _at(30), mode, until, NOW) is is_refused


def test_governance_and_expired_retentions_may_change() -> None:
    assert not refused("GOVERNANCE", _at(30), "GOVERNANCE", _at(1), NOW)
    assert not refused("COMPLIANCE", _at(-1), "GOVERNANCE", _at(1), NOW)
    assert not refused(None, None, "COMPLIANCE", _at(1), NOW)
