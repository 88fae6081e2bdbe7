"""The audit writer, verifier and reader on moto: exactly-once appends, crash recovery, tampering
done directly in S3 as someone with write access to the bucket could, PII erasure.

moto proves what the S3 API refuses (deleting a locked version is AccessDenied); it does not
prove COMPLIANCE semantics beyond that (it lets a retention be shortened, for one). The
template's bucket settings carry the real control.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenant_security import crypto
from tenant_security.audit.chain import canonical, checkpoint_key, record_key, seal
from tenant_security.audit.cipher import record_context
from tenant_security.audit.pii import ERASED, REDACTED, PiiProtector
from tenant_security.audit.writer import AuditWriter
from tenant_security.models.policies import parse_security_policies
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, 5, "acme") as built:
        yield built


def _record(stack: AuditStack, key: str, tenant: str = "acme") -> dict[str, Any]:
    body = stack.s3.get_object(Bucket=stack.settings.audit_bucket(tenant), Key=key)["Body"].read()
    record = stack.cipher.decode(tenant, body)
    assert record is not None
    return record


def _fill(stack: AuditStack, n: int, tenant: str = "acme") -> list[str]:
    writer = stack.writer()
    for i in range(n):
        writer.append(activity_event(tenant, i))
    return stack.object_keys(tenant)


def _overwrite(stack: AuditStack, key: str, record: dict[str, Any], tenant: str = "acme") -> None:
    """A new version over ``key``, validly encrypted (the attacker may even hold the audit key)."""
    body = crypto.encrypt(canonical(record), stack.settings.audit_key_arn, record_context(tenant))
    stack.s3.put_object(Bucket=stack.settings.audit_bucket(tenant), Key=key, Body=body)


# ---------------------------------------------------------------------- appending


def test_each_event_is_one_record_in_a_contiguous_chain(stack: AuditStack) -> None:
    keys = _fill(stack, 12)
    records = [_record(stack, k) for k in keys]
    assert [r["sequence"] for r in records] == list(range(1, 13))
    assert records[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(records))
    report = stack.verifier().verify("acme")
    assert report["status"] == "VALID", report
    assert report["checked"] == 12
    assert report["checkpoints_checked"] == 2  # every 5 records


def test_records_are_locked_in_compliance_mode_for_the_policy_retention(stack: AuditStack) -> None:
    stack.tenants["acme"] = stack.tenants["acme"].__class__(
        tenant_id="acme",
        name="acme",
        status="ACTIVE",
        policies=parse_security_policies({"audit_logging": {"retention_days": 30}}),
    )
    key = _fill(stack, 1)[0]
    head = stack.s3.head_object(Bucket=stack.settings.audit_bucket("acme"), Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert timedelta(days=29) < until - datetime.now(UTC) <= timedelta(days=30)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key.startswith(f"audit/{datetime.now(UTC):%Y/%m/%d}/")


def test_a_locked_record_cannot_be_deleted(stack: AuditStack) -> None:
    key = _fill(stack, 1)[0]
    bucket = stack.settings.audit_bucket("acme")
    version = stack.s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    with pytest.raises(ClientError) as refused:
        stack.s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert stack.s3.head_object(Bucket=bucket, Key=key, VersionId=version)["VersionId"] == version


def test_duplicate_deliveries_append_one_record(stack: AuditStack) -> None:
    writer = stack.writer()
    first = writer.append(activity_event("acme", 1))
    again = [writer.append(activity_event("acme", 1)) for _ in range(3)]
    assert (first.sequence, first.duplicate) == (1, False)
    assert all(a.duplicate and a.sequence == 1 for a in again)
    assert len(stack.object_keys("acme")) == 1


def test_a_crash_between_head_and_object_is_completed_by_the_retry(stack: AuditStack) -> None:
    writer = stack.writer()
    writer.append(activity_event("acme", 0))
    stack.faults["acme"] = "after_head"
    with pytest.raises(RuntimeError, match="injected crash"):
        writer.append(activity_event("acme", 1))
    head = stack.heads.get("acme")
    assert head.sequence == 2  # sequence 2 is claimed ...
    assert len(stack.object_keys("acme")) == 1  # ... and not yet in S3
    stack.faults.clear()
    retried = writer.append(activity_event("acme", 1))  # EventBridge's retry of the same event
    assert (retried.sequence, retried.duplicate) == (2, True)
    assert [_record(stack, k)["event_id"] for k in stack.object_keys("acme")] == ["acme-0", "acme-1"]
    assert stack.verifier().verify("acme")["status"] == "VALID"


def test_the_next_event_completes_a_crashed_writers_record_first(stack: AuditStack) -> None:
    writer = stack.writer()
    stack.faults["acme"] = "after_head"
    with pytest.raises(RuntimeError):
        writer.append(activity_event("acme", 0))
    stack.faults.clear()
    assert writer.append(activity_event("acme", 1)).sequence == 2
    assert [_record(stack, k)["event_id"] for k in stack.object_keys("acme")] == ["acme-0", "acme-1"]
    assert stack.verifier().verify("acme")["status"] == "VALID"


def test_concurrent_writers_never_fork_or_skip(stack: AuditStack) -> None:
    stack.add_tenant("beta")
    errors: list[BaseException] = []

    def put(tenant: str, start: int) -> None:
        writer = stack.writer()
        try:
            for i in range(start, start + 15):
                writer.append(activity_event(tenant, i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(t, s)) for t in ("acme", "beta") for s in (0, 100, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for tenant in ("acme", "beta"):
        records = [_record(stack, k, tenant) for k in stack.object_keys(tenant)]
        assert [r["sequence"] for r in records] == list(range(1, 46))
        assert len({r["event_id"] for r in records}) == 45
        verdict = stack.verifier().verify(tenant)
        assert verdict["status"] == "VALID", verdict["problems"]


def test_events_of_a_tenant_without_a_trail_go_to_the_platform_chain(stack: AuditStack) -> None:
    stack.add_tenant("newco", status="PROVISIONING")
    appended = stack.writer().append(activity_event("newco", 1))
    assert appended.tenant_id == "platform"
    record = _record(stack, stack.object_keys("platform")[0], "platform")
    assert record["details"]["about_tenant"] == "newco"
    assert stack.writer().append(activity_event("no-such-tenant", 2)).tenant_id == "platform"


def test_scheduled_checkpoints_cover_chains_that_grew(stack: AuditStack) -> None:
    _fill(stack, 3)
    written = stack.writer().checkpoint_all()
    assert written == [{"tenant_id": "acme", "sequence": 3}]
    assert stack.writer().checkpoint_all() == []  # nothing new since
    report = stack.verifier().verify("acme")
    assert (report["status"], report["checkpoints_checked"]) == ("VALID", 1)


# ---------------------------------------------------------------------- tampering


def test_an_untouched_chain_is_valid(stack: AuditStack) -> None:
    _fill(stack, 7)
    assert stack.problems("acme") == []


def test_a_new_version_with_a_changed_body_is_a_modified_record(stack: AuditStack) -> None:
    keys = _fill(stack, 7)
    record = _record(stack, keys[2])
    _overwrite(stack, keys[2], {**record, "outcome": "denied"})  # hash left as it was
    assert (3, "modified_record") in stack.problems("acme")


def test_a_rewritten_record_with_a_recomputed_hash_is_still_found(stack: AuditStack) -> None:
    keys = _fill(stack, 7)
    record = _record(stack, keys[3])
    _overwrite(stack, keys[3], seal({**record, "action": "users:Delete"}))
    problems = stack.problems("acme")
    assert (4, "modified_record") in problems
    assert {s for s, _ in problems} == {4}


def test_a_delete_marker_hiding_a_record_is_a_missing_record(stack: AuditStack) -> None:
    keys = _fill(stack, 7)
    stack.s3.delete_object(Bucket=stack.settings.audit_bucket("acme"), Key=keys[4])  # allowed: a marker
    assert stack.problems("acme") == [(5, "missing_record")]


def test_a_forged_record_beyond_the_head_is_an_inserted_record(stack: AuditStack) -> None:
    keys = _fill(stack, 7)
    last = _record(stack, keys[-1])
    forged = seal({**last, "sequence": 8, "prev_hash": last["hash"], "event_id": "forged"})
    _overwrite(stack, record_key(8, datetime.now(UTC)), forged)
    assert stack.problems("acme") == [(8, "inserted_record")]


def test_a_forged_second_record_for_a_sequence_is_an_inserted_record(stack: AuditStack) -> None:
    keys = _fill(stack, 7)
    genuine = _record(stack, keys[2])
    forged = seal({**genuine, "action": "files:Delete", "event_id": "forged"})
    _overwrite(stack, record_key(3, datetime.now(UTC) - timedelta(days=1)), forged)
    assert stack.problems("acme") == [(3, "inserted_record")]


def test_swapped_records_are_a_reordering(stack: AuditStack) -> None:
    keys = _fill(stack, 7)
    fifth, sixth = _record(stack, keys[4]), _record(stack, keys[5])
    _overwrite(stack, keys[4], sixth)
    _overwrite(stack, keys[5], fifth)
    problems = stack.problems("acme")
    assert {(5, "reordering"), (6, "reordering")} <= set(problems)


def test_garbage_in_place_of_a_record_is_a_modified_record(stack: AuditStack) -> None:
    keys = _fill(stack, 3)
    stack.s3.put_object(Bucket=stack.settings.audit_bucket("acme"), Key=keys[1], Body=b"not a record")
    assert (2, "modified_record") in stack.problems("acme")


def test_a_checkpoint_with_a_bad_signature_is_reported(stack: AuditStack) -> None:
    _fill(stack, 5)  # checkpoint at 5
    bucket = stack.settings.audit_bucket("acme")
    signed = canonical(
        {
            "tenant_id": "acme",
            "sequence": 5,
            "hash": "f" * 64,
            "time": datetime.now(UTC).isoformat(),
            "key_id": stack.settings.audit_checkpoint_key_id,
            "algorithm": "ECDSA_SHA_256",
            "signature": base64.b64encode(b"forged").decode(),
        }
    )
    stack.s3.put_object(Bucket=bucket, Key=checkpoint_key(5), Body=signed)
    assert (5, "bad_checkpoint_signature") in stack.problems("acme")


def test_a_recomputed_chain_does_not_match_its_signed_checkpoint(stack: AuditStack) -> None:
    keys = _fill(stack, 6)  # a checkpoint signs record 5
    previous = "0" * 64
    for key in keys[:5]:  # rewrite 1..5 consistently, every hash recomputed
        record = seal({**_record(stack, key), "prev_hash": previous, "outcome": "failure"})
        _overwrite(stack, key, record)
        previous = record["hash"]
    problems = stack.problems("acme")
    assert (5, "modified_record") in problems  # the signed checkpoint (and record 6's link) disagree


# ---------------------------------------------------------------------- PII


def test_pii_is_redacted_in_the_record_and_revealed_to_the_reader(stack: AuditStack) -> None:
    stack.writer().append(activity_event("acme", 1, target_user="bob", target_email="bob@example.com"))
    stored = _record(stack, stack.object_keys("acme")[0])
    assert (stored["actor"]["user"], stored["source_ip"]) == (REDACTED, REDACTED)
    # each subject keeps a pseudonym: its key id, the same in all its records, nameless once erased
    assert stored["target"] == {"user": REDACTED, "email": REDACTED, "pseudonym": stored["pii"][1]["key_id"]}
    assert stored["actor"]["pseudonym"] == stored["pii"][0]["key_id"] != stored["target"]["pseudonym"]
    clear_text = canonical(stored).decode()
    assert "alice" not in clear_text
    assert "bob@example.com" not in clear_text
    item = stack.reader().query("acme")["items"][0]
    assert (item["actor"]["user"], item["source_ip"]) == ("alice", "10.1.2.3")
    assert item["target"] == {
        "user": "bob",
        "email": "bob@example.com",
        "pseudonym": stored["target"]["pseudonym"],
    }


def test_an_erased_subject_no_longer_decrypts_and_the_chain_still_verifies(stack: AuditStack) -> None:
    writer = stack.writer()
    writer.append(activity_event("acme", 1))
    writer.append(activity_event("acme", 2, user="carol", source_ip="10.9.9.9"))
    writer.append(activity_event("acme", 3))
    assert stack.keys.erase("acme", "alice")
    items = stack.reader().query("acme")["items"]
    assert (items[0]["actor"]["user"], items[0]["source_ip"]) == (ERASED, ERASED)
    # the erased subject's actions stay attributable to one person, by pseudonym
    assert items[0]["actor"]["pseudonym"] == items[2]["actor"]["pseudonym"] != items[1]["actor"]["pseudonym"]
    assert items[1]["actor"]["user"] == "carol"  # another subject is untouched
    assert stack.verifier().verify("acme")["status"] == "VALID"
    assert stack.reader().query("acme", actor="alice")["items"] == []


@pytest.mark.parametrize("mode", ["redact", "none"])
def test_pii_handling_redact_keeps_no_copy_and_none_keeps_the_clear_value(
    stack: AuditStack, mode: str
) -> None:
    policies = parse_security_policies({"compliance": {"pii_handling": mode}})
    stack.tenants["acme"] = stack.tenants["acme"].__class__(
        tenant_id="acme", name="acme", status="ACTIVE", policies=policies
    )
    stack.writer().append(activity_event("acme", 1))
    stored = _record(stack, stack.object_keys("acme")[0])
    assert "pii" not in stored
    assert stored["actor"]["user"] == (REDACTED if mode == "redact" else "alice")


# ---------------------------------------------------------------------- reading


def test_the_reader_filters_and_pages(stack: AuditStack) -> None:
    writer = stack.writer()
    for i in range(6):
        writer.append(activity_event("acme", i, action="files:Write" if i % 2 else "files:Read"))
    reader = stack.reader()
    page = reader.query("acme", action="files:Write", limit=2)
    assert [r["event_id"] for r in page["items"]] == ["acme-1", "acme-3"]
    rest = reader.query("acme", action="files:Write", limit=2, after=page["next"])
    assert [r["event_id"] for r in rest["items"]] == ["acme-5"]
    assert len(reader.query("acme", actor="alice", limit=100)["items"]) == 6
    future = datetime.now(UTC) + timedelta(days=1)
    assert reader.query("acme", start=future)["items"] == []


# ---------------------------------------------------------------------- the console script


def test_the_cli_verifies_and_exits_by_the_result(
    stack: AuditStack, capsys: pytest.CaptureFixture[str]
) -> None:
    from tenant_security_tools.cli import EXIT_INVALID, EXIT_OK, main

    stack.kms.create_alias(
        AliasName="alias/tst-audit-checkpoints", TargetKeyId=stack.settings.audit_checkpoint_key_id
    )
    keys = _fill(stack, 6)
    assert main(["audit", "verify", "--tenant", "acme", "--prefix", "tst", "--json"]) == EXIT_OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "VALID"
    assert "record 6 of 6" in captured.err  # progress on stderr, the report alone on stdout
    stack.s3.delete_object(Bucket=stack.settings.audit_bucket("acme"), Key=keys[2])
    assert main(["audit", "verify", "--tenant", "acme", "--prefix", "tst"]) == EXIT_INVALID
    out = capsys.readouterr().out
    assert out.startswith("INVALID")
    assert "sequence 3: missing_record" in out
    assert (
        main(["audit", "verify", "--tenant", "acme", "--prefix", "tst", "--from", "4", "--json"]) == EXIT_OK
    )


def test_an_erased_subjects_earlier_event_arriving_late_brings_no_pii_back(stack: AuditStack) -> None:
    writer = stack.writer()
    writer.append(activity_event("acme", 1))
    assert stack.keys.erase("acme", "alice")
    # a redrive of the dead-letter queue: an event of alice's from before her erasure
    late = activity_event("acme", 2)
    late["detail"]["time"] = "2020-01-01T00:00:00+00:00"
    writer.append(late)
    assert stack.keys.key_id_of("acme", "alice") is None  # no new key: her PII stays gone
    items = stack.reader().query("acme")["items"]
    assert (items[1]["actor"]["user"], items[1]["source_ip"]) == (REDACTED, REDACTED)
    # a new event of a new "alice" (after the erasure) is recorded as usual
    writer.append(activity_event("acme", 3, time="2999-01-01T00:00:00+00:00"))
    assert stack.keys.key_id_of("acme", "alice") is not None


class _RunsAlongside:
    """A DynamoDB client that runs ``alongside`` just before (or after) its first transaction."""

    def __init__(self, client: Any, alongside: Any, after: bool) -> None:
        self.client, self.alongside, self.after, self.done = client, alongside, after, False

    def transact_write_items(self, **kw: Any) -> Any:
        if self.done:
            return self.client.transact_write_items(**kw)
        self.done = True
        if not self.after:
            self.alongside()
        out = self.client.transact_write_items(**kw)
        if self.after:
            self.alongside()
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.mark.parametrize("late_event_lands", ["just before the erasure", "just after the erasure"])
def test_a_late_event_racing_the_erasure_brings_no_pii_back(stack: AuditStack, late_event_lands: str) -> None:
    """Red team A: the mark came after the key's deletion, and a late event between them got a new key."""
    writer = stack.writer()
    writer.append(activity_event("acme", 1, user="bob", time="2026-11-26T12:00:00Z"))
    late = activity_event("acme", 2, user="bob", source_ip="198.51.100.23", time="2026-11-26T12:00:05Z")
    eraser = stack.keys
    eraser.client = _RunsAlongside(eraser.client, lambda: writer.append(late), "after" in late_event_lands)
    assert eraser.erase("acme", "bob") is True
    items = stack.reader().query("acme")["items"]
    assert (items[0]["actor"]["user"], items[0]["source_ip"]) == (ERASED, ERASED)
    # before: encrypted under the key the erasure destroys; after: no key made for it at all
    late_shows = ERASED if "before" in late_event_lands else REDACTED
    assert (items[1]["actor"]["user"], items[1]["source_ip"]) == (late_shows, late_shows)
    assert stack.keys.key_id_of("acme", "bob") is None  # no live key for the erased subject
    assert "bob" not in json.dumps(items)
    assert "198.51.100.23" not in json.dumps(items)


def test_an_erasure_landing_between_the_writers_look_and_its_new_key_wins(stack: AuditStack) -> None:
    """The writer found neither key nor mark; the erasure lands before it creates the key."""
    keys = stack.keys
    writer = AuditWriter(
        stack.settings,
        stack.heads,
        stack.objects,
        stack.cipher,
        stack,
        PiiProtector(keys),
        stack.checkpoints,
        stack.index,
        stack.fault,
    )
    # carol has no key yet: her first event is the late one
    keys.client = _RunsAlongside(keys.client, lambda: stack.keys.erase("acme", "carol"), after=False)
    writer.append(
        activity_event("acme", 1, user="carol", source_ip="203.0.113.9", time="2026-11-26T12:00:00Z")
    )
    assert stack.keys.key_id_of("acme", "carol") is None
    item = stack.reader().query("acme")["items"][0]
    assert (item["actor"]["user"], item["source_ip"]) == (REDACTED, REDACTED)
    assert stack.verifier().verify("acme")["status"] == "VALID"


def test_erasing_a_subject_twice_or_one_without_a_key_leaves_the_mark(stack: AuditStack) -> None:
    writer = stack.writer()
    writer.append(activity_event("acme", 1))
    assert stack.keys.erase("acme", "alice") is True
    assert stack.keys.erase("acme", "alice") is False  # nothing left to destroy
    assert stack.keys.erase("acme", "dave") is False  # no key yet, but the mark is there
    assert stack.keys.erased_at("acme", "dave") is not None


@pytest.mark.parametrize("mode", ["none", "encrypt_and_redact"])
def test_a_subjects_export_shows_no_one_else_whatever_the_pii_handling(stack: AuditStack, mode: str) -> None:
    """Red team B: with pii_handling none, the export showed the admin's name and address in clear."""
    policies = parse_security_policies({"compliance": {"pii_handling": mode}})
    stack.tenants["acme"] = stack.tenants["acme"].__class__(
        tenant_id="acme", name="acme", status="ACTIVE", policies=policies
    )
    stack.writer().append(
        activity_event(
            "acme",
            1,
            user="ada",
            source_ip="10.0.0.7",
            action="users:Create",
            target_user="eve",
            target_email="eve@example.com",
        )
    )
    stack.writer().append(activity_event("acme", 2, user="eve", source_ip="10.0.0.8"))
    exported = stack.reader().query("acme", subject="eve", reveal_subject_only=True)["items"]
    assert [(r["actor"]["user"], r["source_ip"]) for r in exported] == [
        (REDACTED, REDACTED),  # ada, who created eve: someone else
        ("eve", "10.0.0.8"),
    ]
    assert (exported[0]["target"]["user"], exported[0]["target"]["email"]) == ("eve", "eve@example.com")
    everyone = stack.reader().query("acme")["items"]  # the auditor's view is unchanged
    assert everyone[0]["actor"]["user"] == "ada"
