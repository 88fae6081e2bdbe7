"""Fault injection for resilience tests: a failure in a named step for one tenant.

Off unless the stack is deployed with ``FaultInjection=enabled`` (never in production). A test
writes ``{pk: "faults", sk: "<flow>#<tenant_id>", step: "<step>"}`` to the counters table; that
step then fails for that tenant only, until the item is removed.
"""

from __future__ import annotations

from typing import Any

from tenant_security.errors import DomainError


class InjectedFault(DomainError):
    status, code = 503, "injected_fault"


class FaultInjector:
    def __init__(self, client: Any, table: str, enabled: bool) -> None:
        self.client = client
        self.table = table
        self.enabled = enabled

    def check(self, flow: str, tenant_id: str, step: str) -> None:
        """Raise :class:`InjectedFault` if a fault is set for this step of this tenant."""
        if not self.enabled:
            return
        reply = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": "faults"}, "sk": {"S": f"{flow}#{tenant_id}"}},
            ConsistentRead=True,
        )
        if reply.get("Item", {}).get("step", {}).get("S") == step:
            raise InjectedFault(f"injected failure in {flow} step {step!r}")
