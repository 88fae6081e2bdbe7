"""The audit writer against the local cloud's AWS endpoint: events appended per second (one
tenant; several tenants at once) and AWS calls per event, each next to a bare S3 put loop
against the same endpoint in the same run. Bounded rounds."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from tenant_security import aws, crypto
from tenant_security.audit.batches import MAX_BATCH_EVENTS
from tenant_security.audit.checkpoints import Checkpoints
from tenant_security.audit.cipher import RecordCipher
from tenant_security.audit.objects import LockedObjects
from tenant_security.audit.pii import PiiProtector, SubjectKeys
from tenant_security.audit.store import ChainHeads
from tenant_security.audit.tree import AuditIndex
from tenant_security.audit.writer import AuditWriter
from tenant_security.identity.tokens import PublicKeys
from tenant_security.tenant_directory import TenantDirectory
from tenant_security.tenants import TenantStore
from tests.support.audit import activity_event
from tests.support.cloud import RunningCloud, wait_for
from tests.support.identity import Identity, seed_tenant
from tests.support.settings import local_settings

ROUNDS = 200
TENANTS = 4
BARE_PUTS_PER_SECOND: list[float] = []  # this run's baseline (test_bare_s3_put_loop)
_ids = itertools.count()


class CallCounter:
    """Counts the AWS calls every boto3 client of this process makes (the bill)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1


@pytest.fixture(scope="module")
def writer_env(platform_cloud: RunningCloud) -> Iterator[tuple[AuditWriter, CallCounter]]:
    mp = pytest.MonkeyPatch()
    for name, value in platform_cloud.aws_environment().items():
        mp.setenv(name, value)
    aws.reset_clients()
    crypto.reset_caches()
    counter = CallCounter()
    boto3.DEFAULT_SESSION = None
    aws.dynamodb().meta.events.register("before-call", counter)
    aws.s3().meta.events.register("before-call", counter)
    aws.kms().meta.events.register("before-call", counter)
    kms = aws.kms()
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    settings = local_settings(
        audit_log_key_id=aliases["alias/dcisionai-audit-log"],
        audit_checkpoint_key_id=aliases["alias/dcisionai-audit-checkpoints"],
        platform_master_key_id=aliases["alias/dcisionai-platform-master"],
    )
    objects = LockedObjects(aws.s3(), settings.audit_key_arn)

    def context(tenant_id: str, key_id: str) -> dict[str, str]:
        return crypto.encryption_context(tenant_id, "audit-subject-key", key_id=key_id)

    keys = SubjectKeys(
        aws.dynamodb(),
        settings.audit_subject_keys_table,
        lambda t, k, key: crypto.encrypt(key, settings.data_key_arn(t), context(t, k)),
        lambda t, k, wrapped: crypto.decrypt(wrapped, context(t, k), settings.account_id),
    )
    writer = AuditWriter(
        settings,
        ChainHeads(aws.dynamodb(), settings.audit_heads_table),
        objects,
        RecordCipher(settings.audit_key_arn, settings.account_id, settings.partition),
        TenantDirectory(TenantStore(aws.dynamodb(), settings.tenants_table)),
        PiiProtector(keys),
        Checkpoints(aws.kms(), PublicKeys(aws.kms(), settings.audit_checkpoint_key_ids), objects),
        AuditIndex(aws.dynamodb(), settings.audit_index_table),
    )
    yield writer, counter
    aws.reset_clients()
    crypto.reset_caches()
    mp.undo()


def _event(tenant_id: str) -> dict[str, Any]:
    return activity_event(tenant_id, next(_ids))


def test_bare_s3_put_loop(benchmark: Any, platform_cloud: RunningCloud) -> None:
    s3 = platform_cloud.client("s3")
    s3.create_bucket(Bucket="bench-bare-puts")
    n = itertools.count()
    benchmark.pedantic(
        lambda: s3.put_object(Bucket="bench-bare-puts", Key=f"k/{next(n)}", Body=b"x" * 1500),
        rounds=ROUNDS,
        iterations=1,
    )
    benchmark.extra_info["aws_calls_per_event"] = {"s3:PutObject": 1.0}
    BARE_PUTS_PER_SECOND.append(1 / benchmark.stats.stats.mean)
    print(f"\nbare S3 puts: {1 / benchmark.stats.stats.mean:.0f}/s, 1 AWS call each")


def test_append_one_tenant_in_full_batches(
    benchmark: Any, platform_cloud: RunningCloud, writer_env: tuple[AuditWriter, CallCounter]
) -> None:
    """Issue 20's goal, in one run on one endpoint: one tenant's appends at >= 3x the bare put
    rate above, and <= 0.5 AWS calls per event at full batches."""
    writer, counter = writer_env
    tenant = "bench-audit-batches"
    seed_tenant(platform_cloud, tenant)
    writer.append_all([_event(tenant) for _ in range(4)])  # warm: tenant, subject keys, data key
    counter.calls.clear()
    rounds = ROUNDS // 10
    benchmark.pedantic(
        lambda: writer.append_all([_event(tenant) for _ in range(MAX_BATCH_EVENTS)]),
        rounds=rounds,
        iterations=1,
    )
    events = rounds * MAX_BATCH_EVENTS
    rate = MAX_BATCH_EVENTS / benchmark.stats.stats.mean
    per_event = {k: round(v / events, 3) for k, v in sorted(counter.calls.items())}
    calls = sum(counter.calls.values()) / events
    benchmark.extra_info.update(events_per_second=rate, aws_calls_per_event=per_event)
    ratio = rate / BARE_PUTS_PER_SECOND[-1] if BARE_PUTS_PER_SECOND else float("nan")
    print(
        f"\nappend, one tenant, batches of {MAX_BATCH_EVENTS}: {rate:.0f} events/s "
        f"({ratio:.2f}x bare puts), {calls:.3f} AWS calls/event {per_event}"
    )
    assert calls <= 0.5, per_event
    if BARE_PUTS_PER_SECOND:
        assert ratio >= 3, f"{rate:.0f} events/s is {ratio:.2f}x the bare put rate, not 3x"


def test_append_one_tenant(
    benchmark: Any, platform_cloud: RunningCloud, writer_env: tuple[AuditWriter, CallCounter]
) -> None:
    writer, counter = writer_env
    seed_tenant(platform_cloud, "bench-audit-one")
    writer.append(_event("bench-audit-one"))  # warm: tenant record, subject key, data key cached
    counter.calls.clear()
    benchmark.pedantic(lambda: writer.append(_event("bench-audit-one")), rounds=ROUNDS, iterations=1)
    per_event = {k: round(v / ROUNDS, 2) for k, v in sorted(counter.calls.items())}
    benchmark.extra_info["aws_calls_per_event"] = per_event
    total = sum(counter.calls.values()) / ROUNDS
    print(
        f"\nappend, one tenant: {1 / benchmark.stats.stats.mean:.0f} events/s, "
        f"{total:.2f} AWS calls/event {per_event}"
    )


def test_append_across_tenants(
    benchmark: Any, platform_cloud: RunningCloud, writer_env: tuple[AuditWriter, CallCounter]
) -> None:
    writer, counter = writer_env
    tenants = [f"bench-audit-{i}" for i in range(TENANTS)]
    for tenant in tenants:
        seed_tenant(platform_cloud, tenant)
        writer.append(_event(tenant))
    counter.calls.clear()
    per_round = 25

    def burst() -> None:
        with ThreadPoolExecutor(max_workers=TENANTS) as pool:
            list(pool.map(lambda t: [writer.append(_event(t)) for _ in range(per_round)], tenants))

    benchmark.pedantic(burst, rounds=4, iterations=1)
    events = 4 * per_round * TENANTS
    rate = per_round * TENANTS / benchmark.stats.stats.mean
    benchmark.extra_info["events_per_second"] = rate
    print(
        f"\nappend, {TENANTS} tenants at once: {rate:.0f} events/s, "
        f"{sum(counter.calls.values()) / events:.2f} AWS calls/event"
    )


def test_through_eventbridge_and_the_writer_lambda(benchmark: Any, platform_cloud: RunningCloud) -> None:
    """The deployed path: PutEvents → rules → the audit queue → AuditWriterFunction in batches;
    its AWS calls per event."""
    import json

    import requests

    tenant = "bench-audit-bus"
    seed_tenant(platform_cloud, tenant)
    events, ddb = platform_cloud.client("events"), platform_cloud.client("dynamodb")

    def head() -> int:
        item = ddb.get_item(TableName="dcisionai-audit-heads", Key={"tenant_id": {"S": tenant}}).get("Item")
        return int(item["sequence"]["N"]) if item else 0

    def writer_calls() -> Counter[str]:
        counts = requests.get(platform_cloud.api_url + "/__localcloud/stats", timeout=10).json()["aws_calls"]
        return Counter(
            {
                k.split("|", 1)[1]: n
                for k, n in counts.items()
                # the function's own calls; its queue's pollers' are Lambda's (unbilled to it)
                if k.startswith("localcloud-AuditWriter") and "sqs-poller" not in k.split("|", 1)[0]
            }
        )

    before, start_head, batch = writer_calls(), head(), 50

    def put_and_wait() -> None:
        target = head() + batch
        for _ in range(batch // 10):
            events.put_events(
                Entries=[
                    {
                        "Source": "dcisionai.tenant-security",
                        "DetailType": "User Activity",
                        "Detail": json.dumps(_event(tenant)["detail"]),
                        "EventBusName": "dcisionai-platform",
                    }
                    for _ in range(10)
                ]
            )
        wait_for(lambda: head() >= target, timeout=120, interval=0.05)

    started = time.monotonic()
    benchmark.pedantic(put_and_wait, rounds=2, iterations=1)
    appended = head() - start_head
    spent = writer_calls() - before
    per_event = {k: round(v / appended, 2) for k, v in sorted(spent.items())}
    benchmark.extra_info["aws_calls_per_event"] = per_event
    print(
        f"\nthrough the bus: {appended / (time.monotonic() - started):.0f} events/s, "
        f"{sum(spent.values()) / appended:.2f} writer AWS calls/event {per_event}"
    )


@pytest.mark.timeout(900)
def test_soak_ten_tenants_times_200_concurrent_events_through_the_bus(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    """The load run (2,000 events through EventBridge, the audit queue and the writer at reserved
    concurrency 1): each appears once and every chain verifies."""
    from tests.e2e.test_audit_trail_http import assert_concurrent_events_appear_once

    started = time.monotonic()
    assert_concurrent_events_appear_once(platform_cloud, platform_admin, "soak-audit", 10, 200)
    print(f"2000 events through the bus: {2000 / (time.monotonic() - started):.1f} events/s")
