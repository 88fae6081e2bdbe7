"""Red team 19b: a DynamoDB write whose reply was lost and that botocore sent again.

botocore retries a call whose reply did not come back (a read timeout, a 500 after the write
landed): the write is made twice. policy/revisions.py guards its transaction with a
ClientRequestToken for this; the API clients' writes do not, so

- a rotation whose first delivery landed meets its own write (secret_version moved on) and says
  409 ``rotation_conflict`` "nothing changed" -- while the new secret, which the caller never
  got, is now the client's only one (grace 0): the caller keeps the old secret, which no longer
  works, and the client is locked out until rotated again;
- a creation (even one without an Idempotency-Key) meets its own client item and says 409
  ``client_exists`` about an Idempotency-Key that was never sent; the client exists, counted, its
  secret lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tenant_security.errors import DomainError
from tests.support.client_world import ClientWorld, client_world


class SentTwice:
    """The store's DynamoDB client where each call of ``twice``'s operations is delivered twice
    (what botocore's retry of a lost reply does); the second reply is the one returned."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.twice: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            if name in self.twice:
                real(**kwargs)  # landed; its reply lost
            return real(**kwargs)

        return call


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientWorld]:
    with client_world(monkeypatch) as w:
        yield w


def test_a_rotation_whose_reply_was_lost_is_not_a_conflict(world: ClientWorld) -> None:
    made = world.make()
    sent = SentTwice(world.store.client)
    world.store.client = sent  # type: ignore[assignment]
    sent.twice.add("update_item")
    try:
        secret = world.rotate(made, grace=0)
    except DomainError as exc:  # today: RotationConflict, "nothing changed"
        sent.twice.clear()
        # ...yet it did change: the secret the caller still holds no longer works
        old_still_works = True
        try:
            world.basic(made["client_id"], made["client_secret"])
        except DomainError:
            old_still_works = False
        pytest.fail(f"{exc.code}: {exc.message}; the old secret still works: {old_still_works}")
    sent.twice.clear()
    assert world.basic(made["client_id"], secret)["token_type"] == "Bearer"


def test_a_creation_whose_reply_was_lost_is_not_client_exists(world: ClientWorld) -> None:
    sent = SentTwice(world.store.client)
    world.store.client = sent  # type: ignore[assignment]
    sent.twice.add("transact_write_items")
    made = world.make()  # no Idempotency-Key; today: 409 client_exists
    sent.twice.clear()
    assert world.basic(made["client_id"], made["client_secret"])["token_type"] == "Bearer"
