"""`tenant-security audit rebuild-tree` on moto: the Merkle tree of a chain begun before the tree
(a head without a frontier, no index items) is rebuilt from the stored records -- and only for a
trail that verifies. Every root and proof is checked with tests/support/rfc9162.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tenant_security.audit.chain import canonical, record_key, seal
from tenant_security.audit.rebuild import RebuildReport, RebuildStatus, TrailDoesNotVerify, TreeRebuilder
from tenant_security.audit.store import ChainHeads
from tenant_security.audit.tree import AuditIndex, b64
from tests.support import rfc9162
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack
from tests.support.legacy_trail import (
    FailingCalls,
    index_positions,
    legacy_records,
    stored_in_objects,
    strip_tree,
)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 1000, "acme") as built:  # no checkpoint before the rebuild
        yield built


def _rebuilder(
    stack: AuditStack, heads: ChainHeads | None = None, index: AuditIndex | None = None, chunk: int = 500
) -> TreeRebuilder:
    return TreeRebuilder(
        heads or stack.heads,
        stack.objects,
        stack.cipher,
        index or stack.index,
        stack.settings.audit_bucket,
        chunk_records=chunk,
        sleep=lambda _seconds: None,
    )


def _legacy_chain(stack: AuditStack, tenant: str = "acme") -> int:
    """Records 1-5 (one batch object), 6 and 7 (single objects) from the writer, then the tree
    taken away and records 8-11 appended as the previous version did: 11 records, no tree."""
    writer = stack.writer()
    assert all(
        not isinstance(o, Exception) for o in writer.append_all([activity_event(tenant, i) for i in range(5)])
    )
    writer.append(activity_event(tenant, 5))
    writer.append(activity_event(tenant, 6))
    strip_tree(stack, tenant)
    legacy_records(stack, tenant, 4)
    return 11


def _refuses_to_append(stack: AuditStack, tenant: str = "acme") -> None:
    with pytest.raises(ValueError, match="frontier"):
        stack.writer().append(activity_event(tenant, 900))


def _untouched(stack: AuditStack, tenant: str = "acme") -> None:
    """Nothing of a tree: no index item, no frontier."""
    assert index_positions(stack, tenant) == []
    assert stack.heads.get(tenant).frontier == b""


def _proofs_hold(stack: AuditStack, tenant: str, size: int, root: bytes, stored: list[bytes]) -> None:
    proofs = stack.proofs()
    for sequence in range(1, size + 1):
        proof = proofs.inclusion(tenant, sequence, size)
        leaf = rfc9162._h(b"\x00" + stored[sequence - 1])
        assert rfc9162.verify_inclusion(
            sequence - 1, size, leaf, rfc9162.decoded(proof["audit_path"]), root
        ), sequence
    for first in range(1, size + 1):
        proof = proofs.consistency(tenant, first, size)
        first_root = rfc9162.mth(stored[:first])
        assert rfc9162.verify_consistency(first, size, rfc9162.decoded(proof["proof"]), first_root, root), (
            first
        )


# ---------------------------------------------------------------------- the rebuild


def test_a_legacy_chain_gets_its_tree_and_the_writer_appends_again(stack: AuditStack) -> None:
    size = _legacy_chain(stack)
    keys = stack.object_keys("acme")
    assert len(keys) == 7
    assert keys[0].endswith("-0000000000000005.json")
    _refuses_to_append(stack)  # the problem: every event of the tenant would be dead-lettered
    told: list[tuple[str, int, int]] = []
    report = _rebuilder(stack, chunk=4).rebuild("acme", lambda *p: told.append(p))
    stored = stored_in_objects(stack, "acme")
    assert report.status is RebuildStatus.REBUILT
    assert report.records == size
    assert report.nodes_written == 5 + 2 + 1  # the complete subtrees of 2, 4 and 8 leaves
    assert report.root_hash == b64(rfc9162.mth(stored))
    assert report.seconds >= 0
    assert ("read", size, size) in told
    assert ("written", size, size) in told
    assert len(index_positions(stack, "acme")) == size + 8
    stack.valid("acme")  # every node and record copy in the index matches the records

    writer = stack.writer()
    for i in range(3):
        assert writer.append(activity_event("acme", 100 + i)).sequence == size + 1 + i
    assert writer.checkpoint_all() == [{"tenant_id": "acme", "sequence": size + 3}]
    stored = stored_in_objects(stack, "acme")
    assert stack.stored("acme", size + 3) == stored  # what the API serves, byte for byte
    checkpoint = stack.proofs().checkpoint("acme")
    root = rfc9162.mth(stored)
    assert checkpoint["tree_size"] == size + 3
    assert checkpoint["root_hash"] == b64(root)
    _proofs_hold(stack, "acme", size + 3, root, stored)
    # the tree of the 11 legacy records is a prefix of today's: a kept copy of its root verifies
    proof = stack.proofs().consistency("acme", size, size + 3)
    assert rfc9162.verify_consistency(
        size, size + 3, rfc9162.decoded(proof["proof"]), rfc9162.mth(stored[:size]), root
    )
    listed = stack.reader().query("acme", limit=200)["items"]
    assert [r["sequence"] for r in listed] == list(range(1, size + 4))
    assert listed[9]["actor"]["user"] == "alice"  # a legacy record's PII revealed as before
    assert stack.valid("acme")["checkpoints_checked"] == 1


def test_a_chain_of_single_record_objects_only(stack: AuditStack) -> None:
    legacy_records(stack, "acme", 6)
    report = _rebuilder(stack).rebuild("acme")
    assert (report.status, report.records) == (RebuildStatus.REBUILT, 6)
    assert report.root_hash == b64(rfc9162.mth(stored_in_objects(stack, "acme")))
    stack.valid("acme")
    assert stack.writer().append(activity_event("acme", 1)).sequence == 7
    stack.valid("acme")


def test_a_legacy_head_whose_last_object_was_never_written_gets_it_first(stack: AuditStack) -> None:
    records = legacy_records(stack, "acme", 3, pending_last=True)
    assert len(stack.object_keys("acme")) == 2
    report = _rebuilder(stack).rebuild("acme")
    assert (report.status, report.records) == (RebuildStatus.REBUILT, 3)
    assert stack.object_keys("acme")[-1] == stack.heads.get("acme").pending.key  # type: ignore[union-attr]
    assert stored_in_objects(stack, "acme")[-1] == canonical(records[-1])
    stack.valid("acme")


def test_a_second_rebuild_has_nothing_to_do(stack: AuditStack) -> None:
    _legacy_chain(stack)
    first = _rebuilder(stack).rebuild("acme")
    positions = index_positions(stack, "acme")
    second = _rebuilder(stack).rebuild("acme")
    assert second.status is RebuildStatus.NOTHING_TO_DO
    assert second.root_hash == first.root_hash  # the head's own frontier's root
    assert index_positions(stack, "acme") == positions
    assert _rebuilder(stack).rebuild("nobody").status is RebuildStatus.NOTHING_TO_DO  # no records
    stack.valid("acme")


def test_a_rebuild_that_died_half_way_is_run_again(stack: AuditStack) -> None:
    _legacy_chain(stack)
    crashing = AuditIndex(
        FailingCalls(stack.ddb, "batch_write_item", after=2), stack.settings.audit_index_table
    )
    crashing.entry_attributes = stack.index.entry_attributes
    with pytest.raises(Exception, match="injected"):
        _rebuilder(stack, index=crashing, chunk=2).rebuild("acme")
    assert index_positions(stack, "acme")  # some index items were written ...
    assert stack.heads.get("acme").frontier == b""  # ... but no frontier: still no appending
    _refuses_to_append(stack)
    assert _rebuilder(stack).rebuild("acme").status is RebuildStatus.REBUILT
    stack.valid("acme")
    assert stack.writer().append(activity_event("acme", 100)).sequence == 12


def test_two_rebuilds_at_once_set_one_frontier(stack: AuditStack) -> None:
    size = _legacy_chain(stack)
    reports: list[RebuildReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(_rebuilder(stack, chunk=3).rebuild("acme"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    statuses = sorted(str(r.status) for r in reports)
    assert statuses.count("rebuilt") == 1, statuses
    assert set(statuses) <= {"rebuilt", "rebuilt_by_another", "nothing_to_do"}
    assert len({r.root_hash for r in reports}) == 1
    stack.valid("acme")
    assert stack.writer().append(activity_event("acme", 100)).sequence == size + 1
    stack.valid("acme")


def test_a_failing_head_update_leaves_the_chain_as_it_was_and_a_rerun_fixes_it(stack: AuditStack) -> None:
    _legacy_chain(stack)
    failing = ChainHeads(FailingCalls(stack.ddb, "update_item"), stack.settings.audit_heads_table)
    with pytest.raises(Exception, match="injected"):
        _rebuilder(stack, heads=failing).rebuild("acme")
    assert stack.heads.get("acme").frontier == b""
    _refuses_to_append(stack)
    assert _rebuilder(stack).rebuild("acme").status is RebuildStatus.REBUILT
    stack.valid("acme")
    assert stack.writer().append(activity_event("acme", 100)).sequence == 12


def test_a_head_that_moved_during_the_rebuild_is_not_overwritten(stack: AuditStack) -> None:
    legacy_records(stack, "acme", 3)
    rebuilder = _rebuilder(stack)
    real = rebuilder._put_all

    def and_meanwhile(items: list[dict[str, Any]]) -> None:
        real(items)
        legacy_records(stack, "acme", 1)  # the head moves on (as a writer of the old version would)

    rebuilder._put_all = and_meanwhile  # type: ignore[method-assign]
    report = rebuilder.rebuild("acme")
    assert report.status is RebuildStatus.HEAD_MOVED
    assert "run the rebuild again" in report.detail
    assert stack.heads.get("acme").frontier == b""
    assert _rebuilder(stack).rebuild("acme").status is RebuildStatus.REBUILT
    stack.valid("acme")


# ---------------------------------------------------------------------- refused


def _changed(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "action": "files:Delete"}  # its hash no longer matches


def _relinked(record: dict[str, Any]) -> dict[str, Any]:
    return seal({**record, "prev_hash": "1" * 64})  # intact, but it follows no record of the chain


def _moved_to_beta(record: dict[str, Any]) -> dict[str, Any]:
    return seal({**record, "tenant_id": "beta"})  # sealed again: only its tenant is wrong


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"tamper": {3: _changed}}, "record 3 .*its content does not match its hash"),
        ({"tamper": {5: _relinked}}, "record 5 .*does not link to the record before it"),
        ({"skip": (4,)}, "record 4: no object"),
        ({"beyond_head": 1}, r"0000000000000007\.json is beyond the chain head \(6\)"),
        ({"tamper": {6: _changed}}, "record 6 .*does not match its hash"),
        ({"tamper": {2: _moved_to_beta}}, "record 2 .*a record of another tenant"),
    ],
    ids=["modified", "broken-link", "missing", "planted-beyond-head", "last-modified", "other-tenant"],
)
def test_a_trail_that_does_not_verify_gets_no_tree(
    stack: AuditStack, given: dict[str, Any], problem: str
) -> None:
    legacy_records(stack, "acme", 6, **given)
    with pytest.raises(TrailDoesNotVerify, match=problem) as refused:
        _rebuilder(stack).rebuild("acme")
    assert "tenant-security audit verify --tenant acme" in refused.value.message
    _untouched(stack)
    _refuses_to_append(stack)
    assert stack.verifier().verify("acme")["status"] == "INVALID"


def test_a_record_overwritten_by_a_new_version_is_refused(stack: AuditStack) -> None:
    records = legacy_records(stack, "acme", 3)
    key = record_key(2, datetime.fromisoformat(records[1]["recorded_at"]))
    body = stack.cipher.encrypt_bytes("acme", canonical(records[1]))  # even the same record
    stack.s3.put_object(Bucket=stack.settings.audit_bucket("acme"), Key=key, Body=body)
    with pytest.raises(TrailDoesNotVerify, match="was overwritten"):
        _rebuilder(stack).rebuild("acme")
    _untouched(stack)


# ---------------------------------------------------------------------- the command


def test_the_command_rebuilds_one_or_every_chain_and_refuses_a_bad_one(
    stack: AuditStack, capsys: pytest.CaptureFixture[str]
) -> None:
    from tenant_security_tools.cli import EXIT_INVALID, EXIT_OK, main

    for tenant in ("beta", "gamma"):
        stack.add_tenant(tenant)
    legacy_records(stack, "acme", 3)
    legacy_records(stack, "beta", 2)
    legacy_records(stack, "gamma", 3, skip=(2,))
    assert main(["audit", "rebuild-tree", "--tenant", "acme", "--prefix", "tst", "--json"]) == EXIT_OK
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert (report["tenant_id"], report["status"], report["records"]) == ("acme", "rebuilt", 3)
    assert "rebuilding the tree of the audit chain of acme" in captured.err
    assert main(["audit", "rebuild-tree", "--tenant", "acme", "--prefix", "tst"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("acme: nothing_to_do")
    assert main(["audit", "rebuild-tree", "--tenant", "gamma", "--prefix", "tst"]) == EXIT_INVALID
    assert "record 2: no object" in capsys.readouterr().out

    assert main(["audit", "rebuild-tree", "--all", "--prefix", "tst", "--json"]) == EXIT_INVALID
    reports = {r["tenant_id"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert reports == {"beta": "rebuilt", "gamma": "refused"}  # acme has its tree already
    stack.valid("acme")
    stack.valid("beta")
    _untouched(stack, "gamma")
