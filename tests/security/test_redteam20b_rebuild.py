"""Red team (issue 20, round 2): `tenant-security audit rebuild-tree` (audit/rebuild.py).

Attack: the time order after a rebuild. The writer keeps a batch's time at or after the last
record's only through the head's ``pending.recorded_at``; a legacy head carries no such time
(the previous version's ``pending`` had none, or the head has no ``pending`` at all), and the
rebuild sets only the frontier. The first writer after the rebuild whose clock is behind then
records times before the legacy records'.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tenant_security.audit.rebuild import RebuildStatus, TreeRebuilder
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack
from tests.support.legacy_trail import legacy_records, strip_tree


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 1000, "acme") as built:
        yield built


def _recorded_at(stack: AuditStack, sequence: int) -> str:
    entry = stack.index.record("acme", sequence)
    assert entry is not None
    record = stack.cipher.decode("acme", entry.body)
    assert record is not None
    return str(record["recorded_at"])


@pytest.mark.parametrize("pending_last", [False, True])
def test_the_first_batch_after_a_rebuild_keeps_the_trail_s_time_order(
    stack: AuditStack, pending_last: bool
) -> None:
    writer = stack.writer()
    writer.append_all([activity_event("acme", i) for i in range(3)])
    strip_tree(stack, "acme")
    legacy_records(stack, "acme", 3, pending_last=pending_last)  # records 4..6, as before the tree
    rebuilder = TreeRebuilder(
        stack.heads,
        stack.objects,
        stack.cipher,
        stack.index,
        stack.settings.audit_bucket,
        sleep=lambda _s: None,
    )
    assert rebuilder.rebuild("acme").status is RebuildStatus.REBUILT
    slow = stack.writer()
    now = slow.clock()
    slow.clock = lambda: now - timedelta(hours=1)  # a writer an hour behind
    assert slow.append(activity_event("acme", 50)).sequence == 7
    times = [_recorded_at(stack, s) for s in (6, 7)]
    assert times == sorted(times), times
