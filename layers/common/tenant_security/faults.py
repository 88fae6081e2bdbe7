"""Fault injection for resilience tests: a failure in a named step for one tenant.

Off unless the stack is deployed with ``FaultInjection=enabled`` (never in production). A test
writes ``{pk: "faults", sk: "<flow>#<tenant_id>", step: "<step>"}`` to the counters table; that
step then fails for that tenant only, until the item is removed.

The flow ``aws`` fails AWS itself during that tenant's requests: step ``kms`` makes every KMS call
answer ``KMSInternalException``, step ``dynamodb:<table>`` every call on that table
``ServiceUnavailable`` -- raised before the call by a botocore event hook on every client, so the
code under test meets exactly the errors AWS would give it (the Encryption SDK's KMS calls too).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from tenant_security.errors import DomainError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class InjectedFault(DomainError):
    status, code = 503, "injected_fault"


_INJECTED_CODES = {"kms": "KMSInternalException", "dynamodb": "ServiceUnavailable"}
# The AWS fault of the request in progress (set by FaultInjector.aws_faults), if any.
_aws_fault: ContextVar[tuple[str, str] | None] = ContextVar("aws_fault", default=None)


def _tables_of(params: dict[str, Any]) -> set[str]:
    tables = {str(params["TableName"])} if "TableName" in params else set()
    for item in params.get("TransactItems", []):
        tables |= {str(op["TableName"]) for op in item.values() if isinstance(op, dict) and "TableName" in op}
    return tables | set(params.get("RequestItems", {}))


def _raise_injected(model: Any, params: dict[str, Any], **_: Any) -> None:
    fault = _aws_fault.get()
    if fault is None:
        return
    service, table = fault
    if model.service_model.endpoint_prefix != service or (table and table not in _tables_of(params)):
        return
    from botocore.exceptions import ClientError

    reply: Any = {
        "Error": {"Code": _INJECTED_CODES.get(service, "ServiceUnavailable"), "Message": "injected"},
        "ResponseMetadata": {"HTTPStatusCode": 503},
    }
    raise ClientError(reply, model.name)


def install_aws_faults(before_every_call: Any) -> None:
    """Let :meth:`FaultInjector.aws_faults` fail AWS calls (``tenant_security.aws.before_every_call``)."""
    before_every_call("tenant-security-faults", _raise_injected)


class FaultInjector:
    def __init__(self, client: DynamoDBClient, table: str, enabled: bool) -> None:
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

    @contextmanager
    def aws_faults(self, tenant_id: str) -> Iterator[None]:
        """For the block: fail the AWS service named by the tenant's ``aws`` fault item, if any."""
        if not self.enabled:
            yield
            return
        reply = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": "faults"}, "sk": {"S": f"aws#{tenant_id}"}},
            ConsistentRead=True,
        )
        step = reply.get("Item", {}).get("step", {}).get("S")
        service, _, table = (step or "").partition(":")
        token = _aws_fault.set((service, table) if step else None)
        try:
            yield
        finally:
            _aws_fault.reset(token)
