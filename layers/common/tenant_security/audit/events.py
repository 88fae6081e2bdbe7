"""Any platform event, as the content of one audit record.

`User Activity` events carry the fields of :class:`tenant_security.activity.Activity`;
`Security Alert` and lifecycle events (`Tenant Onboarded`, ...) are mapped onto the same shape.
Every string is bounded and unknown fields are kept only as short scalars, so a record stays
small whatever an event carries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from tenant_security.activity import SECURITY_ALERT, USER_ACTIVITY
from tenant_security.alerts import AlertKind, action_of
from tenant_security.tenancy import TENANT_ID_PATTERN

_MAX_TEXT = 256
_MAX_EXTRA_FIELDS = 20
_TENANT_RE = re.compile(TENANT_ID_PATTERN)
_CORE = {
    "event_id",
    "tenant_id",
    "action",
    "outcome",
    "category",
    "actor_tenant",
    "user",
    "resource",
    "source_ip",
    "request_id",
    "status",
    "reason",
    "target_user",
    "target_email",
    "time",
    "alert",
    "changes",
}
# A policy change's field-level changes in its record: at most this many, each value at most
# this long as JSON (a longer one is kept as its truncated JSON text).
_MAX_CHANGES = 100
_MAX_CHANGE_VALUE = 2048


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)[:_MAX_TEXT]


def _scalar(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    return _text(value)


def event_id_of(event: Mapping[str, Any]) -> str:
    """The id that makes a delivery idempotent: the producer's ``detail.event_id``, else EventBridge's."""
    detail = event.get("detail") or {}
    return str(detail.get("event_id") or event.get("id") or "")[:128]


def tenant_of(event: Mapping[str, Any], platform_tenant: str) -> str:
    """The tenant an event is about (the platform when it names no valid tenant)."""
    tenant = (event.get("detail") or {}).get("tenant_id")
    return tenant if isinstance(tenant, str) and _TENANT_RE.fullmatch(tenant) else platform_tenant


def record_content(event: Mapping[str, Any], chain_tenant: str) -> dict[str, Any]:
    """The audit record's fields for ``event`` (before PII protection and chaining)."""
    detail = event.get("detail") or {}
    if not isinstance(detail, Mapping):
        detail = {"value": str(detail)}
    detail_type = str(event.get("detail-type") or "")[:_MAX_TEXT]
    about = detail.get("tenant_id")
    if detail_type == USER_ACTIVITY:
        action, category = (
            _text(detail.get("action")) or "unknown",
            _text(detail.get("category")) or "operation",
        )
    elif detail_type == SECURITY_ALERT:
        action, category = action_of(_text(detail.get("alert")) or "alert"), "security"
    else:
        action, category = f"lifecycle:{detail_type}", "lifecycle"
    outcome = _text(detail.get("outcome")) or ("failure" if "Failed" in detail_type else "success")
    extra = {
        str(k)[:64]: _scalar(v)
        for k, v in list(detail.items())[: _MAX_EXTRA_FIELDS * 2]
        if k not in _CORE and not isinstance(v, Mapping | list)
    }
    content: dict[str, Any] = {
        "tenant_id": chain_tenant,
        "event_id": event_id_of(event),
        "detail_type": detail_type,
        "source": _text(event.get("source")),
        "time": _text(detail.get("time") or event.get("time")),
        "category": category,
        "action": action,
        "outcome": outcome,
        "resource": _text(detail.get("resource")),
        "status": detail.get("status") if isinstance(detail.get("status"), int) else None,
        "reason": _text(detail.get("reason")),
        "request_id": _text(detail.get("request_id")),
        "actor": _actor(detail, about),
        "source_ip": _text(detail.get("source_ip")),
        "target": {"user": _text(detail.get("target_user")), "email": _text(detail.get("target_email"))},
        "details": dict(list(extra.items())[:_MAX_EXTRA_FIELDS]),
    }
    if isinstance(about, str) and about != chain_tenant:
        content["details"]["about_tenant"] = about[:64]
    changes = _changes(detail.get("changes"))
    if changes:
        content["changes"] = changes
    return content


def _actor(detail: Mapping[str, Any], about: Any) -> dict[str, Any]:
    """Who acted: tenant and user, and (activity.actor_of) whether a person or an API client
    acted -- ``{type: "client", client_id}`` for a client's token."""
    actor: dict[str, Any] = {
        "tenant_id": _text(detail.get("actor_tenant") or about),
        "user": _text(detail.get("user")),
    }
    kind = detail.get("actor")
    if isinstance(kind, Mapping) and kind.get("type") in ("user", "client"):
        actor["type"] = str(kind["type"])
        if kind["type"] == "client":
            actor["client_id"] = _text(kind.get("client_id"))
    return actor


def _change_value(value: Any) -> Any:
    text = json.dumps(value, sort_keys=True, default=str)
    return value if len(text) <= _MAX_CHANGE_VALUE else text[:_MAX_CHANGE_VALUE]


def _changes(value: Any) -> list[dict[str, Any]]:
    """The ``changes`` of a policy change's event ({field, old, new} each), bounded."""
    if not isinstance(value, list):
        return []
    return [
        {
            "field": _text(c.get("field")),
            "old": _change_value(c.get("old")),
            "new": _change_value(c.get("new")),
        }
        for c in value[:_MAX_CHANGES]
        if isinstance(c, Mapping)
    ]


def forged_record_content(event: Mapping[str, Any], platform_tenant: str) -> dict[str, Any]:
    """The record of an event of the platform's kinds that did not come from the platform's source.

    It goes on the platform's chain whatever tenant it names, and keeps only what identifies the
    attempt: EventBridge's own event id (never the id the detail claims, which could collide with
    a genuine record's and hide this one as a duplicate), the claimed source, kind and tenant.
    Nothing else of the detail is kept: it is the sender's, untrusted, and may carry anything.
    Who put it is in CloudTrail (``PutEvents``).
    """
    detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else {}
    claimed_tenant = detail.get("tenant_id") if isinstance(detail, Mapping) else None
    details: dict[str, Any] = {
        "claimed_source": _text(event.get("source")),
        "claimed_detail_type": _text(event.get("detail-type")),
        "account": _text(event.get("account")),
        "region": _text(event.get("region")),
    }
    if isinstance(claimed_tenant, str):
        details["about_tenant"] = claimed_tenant[:64]
    return {
        "tenant_id": platform_tenant,
        "event_id": f"forged:{str(event.get('id') or '')[:120]}",
        "detail_type": SECURITY_ALERT,
        "source": _text(event.get("source")),
        "time": _text(event.get("time")),
        "category": "security",
        "action": action_of(AlertKind.FORGED_EVENT),
        "outcome": "denied",
        "resource": None,
        "status": None,
        "reason": "an event of the platform's kinds from another source",
        "request_id": None,
        "actor": {"tenant_id": None, "user": None},
        "source_ip": None,
        "target": {"user": None, "email": None},
        "details": details,
    }
