"""Subject keys for revealing PII to the audit reader, a page at a time, cached in the warm function.

:meth:`SubjectKeys.key_by_id` costs a GetItem and a KMS Decrypt per subject key per request (its
own cache is the writer's, by subject name, for ``key_for``). A page of records names a handful
of subject keys; this asks DynamoDB once per page which of them still exist (one consistent
BatchGetItem: an erasure anywhere shows as ``[erased]`` on the very next page, in every warm
function) and unwraps (KMS) only the keys it has not unwrapped in the last few minutes. A key is
cached with a digest of its wrapped form: a key replaced under the same id is unwrapped again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenant_security.audit.pii import SubjectKeys

BATCH_GET_KEYS = 100  # BatchGetItem's limit
MAX_CACHED = 10_000  # subject keys kept unwrapped at most (32 bytes each, and their ids)


class WarmSubjectKeys:
    """Which subject keys of a page exist (one read), unwrapped at most once per ``cache_seconds``."""

    def __init__(
        self,
        keys: SubjectKeys,
        cache_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.cache_seconds = cache_seconds
        self.clock = clock
        # (tenant, key id) -> (digest of the wrapped key, the key, until when)
        self._cache: dict[tuple[str, str], tuple[bytes, bytes, float]] = {}

    def forget(self, tenant_id: str, key_id: str) -> None:
        """Drop one cached key (its erasure in this function)."""
        self._cache.pop((tenant_id, key_id), None)

    def for_page(self, tenant_id: str, key_ids: Iterable[str]) -> dict[str, bytes | None]:
        """Each key id → its key, or None once erased (the cache :meth:`PiiProtector.reveal` takes)."""
        wanted = sorted(set(key_ids))
        found: dict[str, bytes | None] = dict.fromkeys(wanted)
        for key_id, wrapped in self._stored(tenant_id, wanted).items():
            found[key_id] = self._unwrapped(tenant_id, key_id, wrapped)
        for key_id, key in found.items():
            if key is None:
                self.forget(tenant_id, key_id)
        return found

    def _stored(self, tenant_id: str, key_ids: list[str]) -> dict[str, bytes]:
        """The wrapped keys that still exist, by id (BatchGetItem, consistent)."""
        client, table = self.keys.client, self.keys.table
        stored: dict[str, bytes] = {}
        for start in range(0, len(key_ids), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                table: {
                    "Keys": [
                        {"tenant_id": {"S": tenant_id}, "sk": {"S": f"key#{key_id}"}}
                        for key_id in key_ids[start : start + BATCH_GET_KEYS]
                    ],
                    "ConsistentRead": True,
                    "ProjectionExpression": "sk, #w",
                    "ExpressionAttributeNames": {"#w": "wrapped"},
                }
            }
            while request:
                reply = client.batch_get_item(RequestItems=request)
                for item in reply.get("Responses", {}).get(table, []):
                    stored[item["sk"]["S"].removeprefix("key#")] = bytes(item["wrapped"]["B"])
                request = dict(reply.get("UnprocessedKeys") or {})
        return stored

    def _unwrapped(self, tenant_id: str, key_id: str, wrapped: bytes) -> bytes:
        digest = hashlib.sha256(wrapped).digest()
        now = self.clock()
        cached = self._cache.get((tenant_id, key_id))
        if cached is not None and cached[0] == digest and cached[2] > now:
            return cached[1]
        key = self.keys.unwrap(tenant_id, key_id, wrapped)
        if len(self._cache) >= MAX_CACHED:
            self._evict(now)
        self._cache[(tenant_id, key_id)] = (digest, key, now + self.cache_seconds)
        return key

    def _evict(self, now: float) -> None:
        """Expired keys out; if still full, the oldest half (insertion order)."""
        for entry in [k for k, v in self._cache.items() if v[2] <= now]:
            del self._cache[entry]
        if len(self._cache) >= MAX_CACHED:
            for entry in list(self._cache)[: MAX_CACHED // 2]:
                del self._cache[entry]
