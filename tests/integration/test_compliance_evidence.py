"""The evidence of a compliance report on moto: the chain is verified from the period's first
record through the chain head, so records hidden by a delete marker -- at the end of the period,
at its start, or all of them -- fail the integrity check instead of passing unseen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tenant_security.compliance.checks import FAIL, INSUFFICIENT, PASS, Checks
from tenant_security.compliance.evidence import Evidence, gather_evidence
from tenant_security.identity.users import UserStore
from tests.support.audit import AuditStack, activity_event, audit_stack
from tests.support.moto import create_table, mocked_aws

TENANT = "acme"
PERIOD = "2026-11"
BEFORE, DURING, AFTER = (
    datetime(2026, 10, 20, 12, tzinfo=UTC),
    datetime(2026, 11, 10, 12, tzinfo=UTC),
    datetime(2026, 12, 1, 8, tzinfo=UTC),
)
USERS_TABLE = "users"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_aws(monkeypatch):
        built = audit_stack()
        built.add_tenant(TENANT)
        create_table(built.ddb, USERS_TABLE, "tenant_id", "username")
        yield built


def _append(stack: AuditStack, at: datetime, n: int, first: int) -> None:
    """``n`` records appended at ``at`` (events numbered from ``first``)."""
    writer = stack.writer()
    writer.clock = lambda: at
    for i in range(first, first + n):
        writer.append(activity_event(TENANT, i))


def _chain(stack: AuditStack, before: int = 2, during: int = 3, after: int = 2) -> list[str]:
    """Records before, during and after the period (sequences in that order); their keys."""
    _append(stack, BEFORE, before, 0)
    _append(stack, DURING, during, before)
    _append(stack, AFTER, after, before + during)
    bucket = stack.settings.audit_bucket(TENANT)
    reply = stack.s3.list_objects_v2(Bucket=bucket, Prefix="audit/")
    return sorted(o["Key"] for o in reply.get("Contents", []))


def _hide(stack: AuditStack, key: str) -> None:
    """A delete marker over ``key``: allowed on a locked bucket, and the record no longer lists."""
    stack.s3.delete_object(Bucket=stack.settings.audit_bucket(TENANT), Key=key)


def _evidence(stack: AuditStack) -> Evidence:
    return gather_evidence(
        stack.tenants[TENANT],
        PERIOD,
        UserStore(stack.ddb, USERS_TABLE),
        stack.reader(),
        stack.settings.audit_bucket(TENANT),
        stack.verifier(),
    )


def _integrity(e: Evidence) -> dict[str, Any]:
    return Checks([]).audit_chain_integrity(e)


def _hidden(key: str, sequence: int) -> dict[str, Any]:
    return {"sequence": sequence, "kind": "missing_record", "detail": f"{key} is hidden by a delete marker"}


def test_an_untouched_period_is_verified_through_the_head(stack: AuditStack) -> None:
    _chain(stack)
    e = _evidence(stack)
    assert [r["sequence"] for r in e.records] == [3, 4, 5]
    check = _integrity(e)
    assert check["status"] == PASS
    assert check["findings"] == []
    assert check["evidence"] == {
        "status": "VALID",
        "checked": 5,
        "from": 3,
        "to": 7,
        "head_sequence": 7,
        "checkpoints_checked": 0,
    }


@pytest.mark.parametrize("after", [2, 0], ids=["records-after-the-period", "the-head-itself"])
def test_a_record_hidden_at_the_end_of_the_period_fails_the_integrity_check(
    stack: AuditStack, after: int
) -> None:
    keys = _chain(stack, after=after)
    _hide(stack, keys[4])  # sequence 5, the period's newest record
    e = _evidence(stack)
    # the records come from the audit index (its copy of each body), the check from the bucket
    assert [r["sequence"] for r in e.records] == [3, 4, 5]
    check = _integrity(e)
    assert check["status"] == FAIL
    assert check["findings"] == [_hidden(keys[4], 5)]
    assert (check["evidence"]["from"], check["evidence"]["to"]) == (3, 5 + after)


def test_a_record_hidden_at_the_start_of_the_period_fails_the_integrity_check(stack: AuditStack) -> None:
    keys = _chain(stack)
    _hide(stack, keys[2])  # sequence 3, the period's first record
    e = _evidence(stack)
    assert [r["sequence"] for r in e.records] == [3, 4, 5]  # the index's copies
    check = _integrity(e)
    assert check["status"] == FAIL
    assert check["findings"] == [_hidden(keys[2], 3)]


def test_a_period_whose_every_record_is_hidden_fails_rather_than_lacking_evidence(stack: AuditStack) -> None:
    keys = _chain(stack, after=0)
    for key in keys[2:]:
        _hide(stack, key)
    e = _evidence(stack)
    assert [r["sequence"] for r in e.records] == [3, 4, 5]  # the index's copies
    check = _integrity(e)
    assert check["status"] == FAIL
    assert check["findings"] == [_hidden(keys[s - 1], s) for s in (3, 4, 5)]


def test_a_period_without_records_is_verified_from_the_next_record(stack: AuditStack) -> None:
    keys = _chain(stack, during=0)
    e = _evidence(stack)
    assert e.records == []
    assert (_integrity(e)["status"], e.integrity["from"], e.integrity["to"]) == (PASS, 3, 4)
    _hide(stack, keys[3])
    check = _integrity(_evidence(stack))
    assert check["status"] == FAIL
    assert check["findings"] == [_hidden(keys[3], 4)]


@pytest.mark.parametrize("before", [0, 2], ids=["no-records-at-all", "records-before-the-period-only"])
def test_without_records_from_the_period_on_the_check_lacks_evidence(stack: AuditStack, before: int) -> None:
    _chain(stack, before=before, during=0, after=0)
    e = _evidence(stack)
    assert e.integrity == {"checked": 0}
    assert (_integrity(e)["status"], _integrity(e)["findings"]) == (INSUFFICIENT, [])
