"""The `User Activity` record of every sign-in step, and the refusals nobody signed for.

A step that nobody proved an identity for (throttled, or no such account) is counted into one
record per source address and minute (:class:`~tenant_security.refusals.RefusalCounter`) rather
than one record each, so that a flood of them does not become a flood of events.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tenant_security.activity import Activity, actor_of
from tenant_security.errors import DomainError
from tenant_security.identity.throttle import TooManyAttempts
from tenant_security.refusals import RefusalCounter, RefusalKind

if TYPE_CHECKING:
    from tenant_security.activity import EventPublisher


class SignInAudit:
    """Where each step's outcome goes: the event publisher (``None``: nowhere), and the refusal
    counter (``None``: every refusal is a record of its own); ``platform_tenant``: the trail of a
    step whose tenant is unknown."""

    def __init__(
        self,
        publisher: EventPublisher | None = None,
        refusals: RefusalCounter | None = None,
        platform_tenant: str = "platform",
    ) -> None:
        self.publisher = publisher
        self.refusals = refusals
        self.platform_tenant = platform_tenant

    @contextmanager
    def step(self, action: str, source_ip: str | None, who: dict[str, str | None]) -> Iterator[None]:
        """Record the step's outcome as `User Activity` for the user in ``who`` once it is known.

        ``who`` is filled as the step learns who is signing in; an unknown tenant or user is
        recorded in the platform's trail without a user name. The reason recorded is the error's
        ``audit_reason`` where it has one (an answer that must not tell the caller why it was
        refused still tells the trail), its code otherwise.
        """
        reason: str | None = None
        outcome = "failure"
        counted = False
        try:
            yield
            outcome = "success"
        except DomainError as exc:
            reason = str(getattr(exc, "audit_reason", None) or exc.code)
            outcome = "denied" if exc.status in (403, 423, 429) else "failure"
            # Nobody proved who they are (throttled, or no such account): counted per source
            # address and minute into one record, not one record each.
            if self.refusals is not None and (isinstance(exc, TooManyAttempts) or not who.get("user")):
                kind = (
                    RefusalKind.THROTTLED if isinstance(exc, TooManyAttempts) else RefusalKind.UNKNOWN_ACCOUNT
                )
                self.refusals.count(kind, source_ip, who.get("tenant_id"), sample=f"{action}: {reason}")
                counted = True
            raise
        finally:
            if self.publisher is not None and not counted:
                self.publisher.activity(
                    Activity(
                        tenant_id=who.get("tenant_id") or self.platform_tenant,
                        action=action,
                        outcome=outcome,  # type: ignore[arg-type]
                        category="authentication",
                        user=who.get("user"),
                        source_ip=source_ip,
                        reason=reason,
                        actor=actor_of(who.get("user"), who.get("client_id")),
                    )
                )
