"""The trail as an RFC 9162 Merkle tree on moto: every proof and checkpoint is checked with the
verifier written from the RFC in tests/support/rfc9162.py, against leaves recomputed from the
stored bytes the API serves -- never with the writer's own tree code."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key

from tenant_security.audit.chain import checkpoint_key, json_object
from tenant_security.errors import NotFound, ValidationFailed
from tests.support import rfc9162
from tests.support.audit import AuditStack, activity_event, mocked_audit_stack

EVERY = 8


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditStack]:
    with mocked_audit_stack(monkeypatch, EVERY, "acme", "beta") as built:
        yield built


def _fill(stack: AuditStack, n: int, tenant: str = "acme", start: int = 0) -> None:
    writer = stack.writer()
    for i in range(start, start + n):
        writer.append(activity_event(tenant, i, user=f"user{i % 3}", source_ip=f"10.0.0.{i % 250}"))


def _checkpoints(stack: AuditStack, tenant: str = "acme") -> list[dict[str, Any]]:
    bucket = stack.settings.audit_bucket(tenant)
    listed = stack.s3.list_objects_v2(Bucket=bucket, Prefix="checkpoints/").get("Contents", [])
    found = []
    for entry in sorted(listed, key=lambda o: o["Key"]):
        body = stack.s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        found.append(json_object(body))
    return [c for c in found if c is not None]


def _signature_holds(stack: AuditStack, checkpoint: dict[str, Any]) -> bool:
    """With the KMS key's public half."""
    der = stack.kms.get_public_key(KeyId=checkpoint["key_id"])["PublicKey"]
    return rfc9162.signature_holds(load_der_public_key(der), checkpoint)


_b = rfc9162.decoded


def test_each_checkpoint_signs_the_rfc_9162_root_of_the_stored_bytes(stack: AuditStack) -> None:
    _fill(stack, 3 * EVERY + 3)
    stored = stack.stored("acme", 3 * EVERY + 3)
    # a record's stored bytes are the JSON the API serves: the record itself, PII protected
    assert all(json_object(b) is not None for b in stored)
    checkpoints = _checkpoints(stack)
    assert [c["tree_size"] for c in checkpoints] == [EVERY, 2 * EVERY, 3 * EVERY]
    for checkpoint in checkpoints:
        size = checkpoint["tree_size"]
        assert _signature_holds(stack, checkpoint)
        lines = checkpoint["signed"].split("\n")
        assert lines[:3] == ["dcisionai-tenant-security/audit/acme", str(size), checkpoint["root_hash"]]
        assert base64.b64decode(checkpoint["root_hash"]) == rfc9162.mth(stored[:size])
        assert stack.checkpoints.signature_valid(checkpoint)
    latest = stack.proofs().checkpoint("acme")
    assert latest["tree_size"] == 3 * EVERY
    assert set(latest) == {
        "tenant_id",
        "tree_size",
        "root_hash",
        "timestamp",
        "key_id",
        "signature",
        "signed",
    }
    # each was put as an `Audit Checkpoint` event too, exactly as served
    assert stack.announced[-1] == latest
    assert [c["tree_size"] for c in stack.announced] == [EVERY, 2 * EVERY, 3 * EVERY]


def test_a_checkpoint_whose_text_or_fields_were_changed_does_not_verify(stack: AuditStack) -> None:
    _fill(stack, EVERY)
    checkpoint = _checkpoints(stack)[0]
    assert stack.checkpoints.signature_valid(checkpoint)
    bigger = checkpoint["signed"].replace(f"\n{EVERY}\n", f"\n{EVERY + 1}\n")
    for forged in (
        {**checkpoint, "tree_size": EVERY + 1},  # a field the text does not say
        {**checkpoint, "signed": bigger, "tree_size": EVERY + 1, "sequence": EVERY + 1},  # text resigned?
        {**checkpoint, "root_hash": base64.b64encode(b"x" * 32).decode()},
        {**checkpoint, "key_id": "another-key"},
        {**checkpoint, "signed": checkpoint["signed"].replace("acme", "beta"), "tenant_id": "beta"},
    ):
        assert not stack.checkpoints.signature_valid(forged)


def test_every_inclusion_proof_verifies_against_a_checkpoint(stack: AuditStack) -> None:
    size = 2 * EVERY + 5
    _fill(stack, size)
    stored = stack.stored("acme", size)
    for checkpoint in _checkpoints(stack):
        tree_size, root = checkpoint["tree_size"], base64.b64decode(checkpoint["root_hash"])
        for sequence in range(1, tree_size + 1):
            proof = stack.proofs().inclusion("acme", sequence, tree_size)
            assert proof["leaf_index"] == sequence - 1
            leaf = hashlib.sha256(b"\x00" + stored[sequence - 1]).digest()
            assert rfc9162.verify_inclusion(sequence - 1, tree_size, leaf, _b(proof["audit_path"]), root)
            # another record's bytes are not included at this position
            other = hashlib.sha256(b"\x00" + stored[sequence % size]).digest()
            assert not rfc9162.verify_inclusion(sequence - 1, tree_size, other, _b(proof["audit_path"]), root)
    # and against the current tree, beyond the last checkpoint
    root_now = rfc9162.mth(stored)
    proof = stack.proofs().inclusion("acme", size, size)
    leaf = hashlib.sha256(b"\x00" + stored[-1]).digest()
    assert rfc9162.verify_inclusion(size - 1, size, leaf, _b(proof["audit_path"]), root_now)


def test_consistency_between_every_pair_of_checkpoints(stack: AuditStack) -> None:
    _fill(stack, 4 * EVERY)
    checkpoints = _checkpoints(stack)
    assert len(checkpoints) == 4
    for i, older in enumerate(checkpoints):
        for newer in checkpoints[i:]:
            first, second = older["tree_size"], newer["tree_size"]
            proof = stack.proofs().consistency("acme", first, second)
            assert (proof["first"], proof["second"]) == (first, second)
            assert rfc9162.verify_consistency(
                first,
                second,
                _b(proof["proof"]),
                base64.b64decode(older["root_hash"]),
                base64.b64decode(newer["root_hash"]),
            )


def test_an_erasure_changes_no_leaf_and_every_proof_still_verifies(stack: AuditStack) -> None:
    _fill(stack, EVERY)
    before = stack.stored("acme", EVERY)
    assert stack.keys.erase("acme", "user1")
    after = stack.stored("acme", EVERY)
    assert after == before  # the subject's names were ciphertext: nothing stored changed
    assert b"user1" not in b"".join(after)
    checkpoint = _checkpoints(stack)[0]
    root = base64.b64decode(checkpoint["root_hash"])
    assert rfc9162.mth(after) == root
    for sequence in range(1, EVERY + 1):
        path = _b(stack.proofs().inclusion("acme", sequence, EVERY)["audit_path"])
        leaf = hashlib.sha256(b"\x00" + after[sequence - 1]).digest()
        assert rfc9162.verify_inclusion(sequence - 1, EVERY, leaf, path, root)
    assert stack.verifier().verify("acme")["status"] == "VALID"


def test_parallel_writers_build_one_tree_in_sequence_order(stack: AuditStack) -> None:
    errors: list[BaseException] = []

    def put(offset: int) -> None:
        try:
            _fill(stack, 6, start=offset)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(100 * t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stored = stack.stored("acme", 36)
    assert sorted(json_object(b)["sequence"] for b in stored) == list(range(1, 37))  # type: ignore[index]
    proof = stack.proofs().consistency("acme", EVERY, 36)
    first_root = base64.b64decode(_checkpoints(stack)[0]["root_hash"])
    assert rfc9162.verify_consistency(EVERY, 36, _b(proof["proof"]), first_root, rfc9162.mth(stored))


def test_a_crash_after_the_head_leaves_the_tree_whole(stack: AuditStack) -> None:
    writer = stack.writer()
    writer.append(activity_event("acme", 1))
    stack.faults["acme"] = "after_head"
    with pytest.raises(RuntimeError, match="injected"):
        writer.append(activity_event("acme", 2))
    stack.faults.clear()
    stack.writer().append(activity_event("acme", 2))  # the retry: a duplicate, completed
    stack.writer().append(activity_event("acme", 3))
    stored = stack.stored("acme", 3)
    proof = stack.proofs().inclusion("acme", 2, 3)
    leaf = hashlib.sha256(b"\x00" + stored[1]).digest()
    assert rfc9162.verify_inclusion(1, 3, leaf, _b(proof["audit_path"]), rfc9162.mth(stored))


def test_another_tenants_records_and_positions_are_not_served(stack: AuditStack) -> None:
    _fill(stack, 3, tenant="acme")
    _fill(stack, 2, tenant="beta")
    proofs = stack.proofs()
    with pytest.raises(NotFound):
        proofs.stored_bytes("beta", 3)  # acme has a third record; beta does not
    with pytest.raises(ValidationFailed):
        proofs.inclusion("beta", 3, 3)  # beyond beta's tree
    with pytest.raises(ValidationFailed):
        proofs.consistency("beta", 1, 3)
    # acme's stored body under beta's partition does not decrypt as beta's record
    acme_entry = stack.index.record("acme", 1)
    assert acme_entry is not None
    assert stack.cipher.plaintext("beta", acme_entry.body) is None


@pytest.mark.parametrize(
    ("sequence", "tree_size"),
    [(0, 3), (4, 3), (1, 0), (2, 1), (1, 4)],
    ids=["zero", "past", "empty", "beyond", "beyond_the_head"],
)
def test_positions_outside_the_tree_are_a_400(stack: AuditStack, sequence: int, tree_size: int) -> None:
    _fill(stack, 3)
    with pytest.raises(ValidationFailed):
        stack.proofs().inclusion("acme", sequence, tree_size)


def test_no_checkpoint_yet_is_a_404(stack: AuditStack) -> None:
    _fill(stack, EVERY - 1)
    with pytest.raises(NotFound):
        stack.proofs().checkpoint("acme")
    assert not stack.objects.exists(stack.settings.audit_bucket("acme"), checkpoint_key(EVERY))


# ---------------------------------------------------------------------- the verifier's new kinds


def test_a_changed_tree_node_in_the_index_is_named(stack: AuditStack) -> None:
    _fill(stack, EVERY)
    assert stack.problems("acme") == []
    # someone with write access to the index table replaces the node over records 5..8
    stack.ddb.put_item(
        TableName=stack.settings.audit_index_table,
        Item={
            "tenant_id": {"S": "acme"},
            "position": {"S": "n#02#0000000000000001"},
            "hash": {"B": b"\0" * 32},
        },
    )
    assert stack.problems("acme") == [(8, "index_mismatch")]


def test_a_swapped_record_copy_in_the_index_is_named(stack: AuditStack) -> None:
    _fill(stack, 4)
    other = stack.index.record("acme", 2)
    assert other is not None
    stack.ddb.update_item(
        TableName=stack.settings.audit_index_table,
        Key={"tenant_id": {"S": "acme"}, "position": {"S": "r#0000000000000003"}},
        UpdateExpression="SET body = :b",
        ExpressionAttributeValues={":b": {"B": other.body}},
    )
    assert stack.problems("acme") == [(3, "index_mismatch")]
    with pytest.raises(NotFound):  # record 2's bytes are not served as record 3's
        stack.proofs().stored_bytes("acme", 3)


def test_a_checkpoint_signing_another_root_is_named(stack: AuditStack) -> None:
    _fill(stack, EVERY + 2)
    # a checkpoint the platform key signed over the right chain hash but a wrong root (a writer bug)
    record = json_object(stack.proofs().stored_bytes("acme", EVERY + 1))
    assert record is not None
    now = datetime.now(UTC)
    bucket = stack.settings.audit_bucket("acme")
    stack.checkpoints.write(
        bucket, "acme", EVERY + 1, record["hash"], b"\1" * 32, now, now + timedelta(days=1)
    )
    assert stack.problems("acme") == [(EVERY + 1, "tree_mismatch")]
