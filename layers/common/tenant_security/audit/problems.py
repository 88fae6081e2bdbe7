"""What the chain verifier names: the kinds of problem (see :mod:`.verify`), each at a sequence."""

from __future__ import annotations

from typing import Any

MODIFIED, MISSING, INSERTED, REORDERED = "modified_record", "missing_record", "inserted_record", "reordering"
BAD_SIGNATURE, MISSING_CHECKPOINT = "bad_checkpoint_signature", "missing_checkpoint"
TREE_MISMATCH, INDEX_MISMATCH = "tree_mismatch", "index_mismatch"


class Problems:
    """Problems keyed by (sequence, kind): one report per problem, however it was found."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, str], dict[str, Any]] = {}

    def add(self, sequence: int | None, kind: str, detail: str) -> None:
        self._items.setdefault((sequence or 0, kind), {"sequence": sequence, "kind": kind, "detail": detail})

    def has(self, sequence: int, kind: str) -> bool:
        return (sequence, kind) in self._items

    def any_up_to(self, sequence: int, since: int = 0) -> bool:
        """True when a problem concerns a sequence at or before ``sequence`` (after ``since``)."""
        return any(max(0, since) < at <= sequence for at, _ in self._items)

    def listed(self) -> list[dict[str, Any]]:
        return [self._items[k] for k in sorted(self._items)]
