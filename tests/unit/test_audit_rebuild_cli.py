"""`tenant-security audit rebuild-tree`'s wiring, without a cloud: which chains it rebuilds, with
which stores, and its exit codes (0 rebuilt or nothing to do, 4 refused, 1 failed, 2 usage)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from tenant_security import services
from tenant_security.audit import rebuild
from tenant_security.audit.rebuild import RebuildReport, RebuildStatus, TrailDoesNotVerify
from tenant_security_tools import cli


class FakeRebuilder:
    """Stands in for TreeRebuilder: remembers how it was built and answers as told."""

    built: ClassVar[list[tuple[Any, ...]]] = []
    answers: ClassVar[dict[str, RebuildReport | Exception]] = {}

    def __init__(self, *stores: Any) -> None:
        FakeRebuilder.built.append(stores)

    def rebuild(self, tenant_id: str, progress: Any = None) -> RebuildReport:
        progress("read", 1, 1)
        answer = self.answers[tenant_id]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def rebuild_all(self, progress: Any = None) -> list[RebuildReport]:
        reports = []
        for tenant_id in self.answers:
            try:
                reports.append(self.rebuild(tenant_id, progress))
            except TrailDoesNotVerify as exc:
                reports.append(RebuildReport(tenant_id, RebuildStatus.REFUSED, detail=exc.message))
        return reports


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeRebuilder]:
    settings = SimpleNamespace(audit_bucket=lambda tenant: f"bucket-{tenant}")
    monkeypatch.setattr(cli, "_settings", lambda _args: settings)
    for name in ("chain_heads", "audit_objects", "record_cipher", "audit_index"):
        monkeypatch.setattr(services, name, lambda name=name: name)
    monkeypatch.setattr(rebuild, "TreeRebuilder", FakeRebuilder)
    FakeRebuilder.built, FakeRebuilder.answers = [], {}
    return FakeRebuilder


def _rebuilt(tenant: str) -> RebuildReport:
    return RebuildReport(tenant, RebuildStatus.REBUILT, 3, 2, "cm9vdA==", 0.5)


def test_one_chain_is_rebuilt_with_the_stacks_stores(
    fake: type[FakeRebuilder], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.answers = {"acme": _rebuilt("acme")}
    assert cli.main(["audit", "rebuild-tree", "--tenant", "acme", "--json"]) == cli.EXIT_OK
    heads, objects, cipher, index, bucket_of = fake.built[0]
    assert (heads, objects, cipher, index) == ("chain_heads", "audit_objects", "record_cipher", "audit_index")
    assert bucket_of("acme") == "bucket-acme"
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "tenant_id": "acme",
        "status": "rebuilt",
        "records": 3,
        "nodes_written": 2,
        "root_hash": "cm9vdA==",
        "seconds": 0.5,
        "detail": "",
    }
    assert "read 1 of 1 records" in captured.err  # progress on stderr


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (RebuildReport("acme", RebuildStatus.NOTHING_TO_DO, 3, detail="the chain has its tree"), cli.EXIT_OK),
        (RebuildReport("acme", RebuildStatus.REBUILT_BY_ANOTHER, 3), cli.EXIT_OK),
        (RebuildReport("acme", RebuildStatus.HEAD_MOVED, 3, detail="run it again"), cli.EXIT_FAILED),
        (TrailDoesNotVerify("record 2: no object. Run `tenant-security audit verify`"), cli.EXIT_INVALID),
        (RuntimeError("DynamoDB left 3 index items unwritten"), cli.EXIT_FAILED),
    ],
    ids=["nothing-to-do", "by-another", "head-moved", "refused", "failed"],
)
def test_exit_codes(
    fake: type[FakeRebuilder], capsys: pytest.CaptureFixture[str], answer: Any, code: int
) -> None:
    fake.answers = {"acme": answer}
    assert cli.main(["audit", "rebuild-tree", "--tenant", "acme"]) == code
    captured = capsys.readouterr()
    if isinstance(answer, TrailDoesNotVerify):
        assert "acme: refused" in captured.out
        assert "tenant-security audit verify" in captured.out
    elif isinstance(answer, RebuildReport):
        assert captured.out.startswith(f"acme: {answer.status}")


def test_all_rebuilds_every_chain_without_a_tree_and_says_which_were_refused(
    fake: type[FakeRebuilder], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.answers = {"acme": _rebuilt("acme"), "beta": TrailDoesNotVerify("record 1: no object")}
    assert cli.main(["audit", "rebuild-tree", "--all", "--json"]) == cli.EXIT_INVALID
    listed = json.loads(capsys.readouterr().out)
    assert [(r["tenant_id"], r["status"]) for r in listed] == [("acme", "rebuilt"), ("beta", "refused")]
    fake.answers = {}
    assert cli.main(["audit", "rebuild-tree", "--all"]) == cli.EXIT_OK
    assert "every audit chain has its tree" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [[], ["--tenant", "acme", "--all"], ["--tenant", "Not A Tenant"]],
    ids=["neither", "both", "bad-tenant-id"],
)
def test_usage(fake: type[FakeRebuilder], argv: list[str]) -> None:
    assert cli.main(["audit", "rebuild-tree", *argv]) == cli.EXIT_USAGE
    assert fake.built == []  # nothing built, nothing asked of AWS
