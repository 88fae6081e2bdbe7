"""The local cloud's Lambda and EventBridge limits, as AWS states them (no cloud needed)."""

from __future__ import annotations

import json

from localcloud.lambdas import (
    ASYNC_PAYLOAD_LIMIT,
    SYNC_PAYLOAD_LIMIT,
    AsyncTiming,
    InvocationType,
    RefusalCode,
    too_large,
)
from localcloud.motohooks import PUT_EVENTS_LIMIT, put_events_size


def test_lambdas_request_limits_are_the_byte_counts_its_errors_name() -> None:
    assert (SYNC_PAYLOAD_LIMIT, ASYNC_PAYLOAD_LIMIT) == (6_291_556, 1_048_576)
    assert too_large(SYNC_PAYLOAD_LIMIT, InvocationType.REQUEST_RESPONSE) is None
    refused = too_large(SYNC_PAYLOAD_LIMIT + 1, InvocationType.REQUEST_RESPONSE)
    assert refused is not None
    assert (refused.status, refused.code) == (413, RefusalCode.TOO_LARGE)
    assert refused.message == "Request must be smaller than 6291556 bytes for the Invoke operation"
    assert too_large(ASYNC_PAYLOAD_LIMIT, InvocationType.EVENT) is None
    assert too_large(ASYNC_PAYLOAD_LIMIT + 1, InvocationType.EVENT) is not None


def test_async_retries_wait_as_configured_and_the_last_delay_repeats() -> None:
    timing = AsyncTiming(retry_delays=(60.0, 120.0))
    assert [timing.retry_delay(n) for n in (1, 2, 3)] == [60.0, 120.0, 120.0]
    assert AsyncTiming().retry_delays == (60.0, 120.0)  # AWS: about 1 minute, then 2


def test_put_events_size_is_eventbridges_formula() -> None:
    entry = {"Source": "a.b", "DetailType": "Thing Happened", "Detail": json.dumps({"k": "é"})}
    detail_bytes = len(json.dumps({"k": "é"}).encode())
    assert put_events_size([entry]) == 3 + 14 + detail_bytes
    timed = {**entry, "Time": 1_700_000_000, "Resources": ["arn:x", "arn:yy"]}
    assert put_events_size([timed]) == 3 + 14 + detail_bytes + 14 + 5 + 6
    assert put_events_size([entry, timed]) == put_events_size([entry]) + put_events_size([timed])
    assert PUT_EVENTS_LIMIT == 256 * 1024
