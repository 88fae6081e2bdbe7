"""Audit records as Open Cybersecurity Schema Framework events (OCSF 1.1.0, the version of Amazon
Security Lake's version 2 sources), one event per record, for SIEMs.

Sign-in, MFA, token and sign-out steps are Authentication (3002); changes of a user account
(creation, deletion, roles, password, MFA) Account Change (3001); a ``security:`` alert a Detection
Finding (2004): the platform's own controls raised it, and SIEMs triage findings apart from
activity; everything else API Activity (6003). A record is taken as the writer stored it: PII as
``[redacted]`` plus a pseudonym (the subject key id), or in clear where the tenant keeps it so
(``pii_handling: none``). An event shows only that, never the ``pii`` ciphertext.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tenant_security.activity import ActorType
from tenant_security.alerts import REVIEW_REQUIRED, SECURITY_ACTION_PREFIX, AlertKind
from tenant_security.audit.ocsf_vocabulary import (
    CLASS_OF,
    CLIENT_USER_TYPE,
    CLOUD_PROVIDER,
    LIFECYCLE_PREFIX,
    OCSF_VERSION,
    PRODUCT_NAME,
    VENDOR_NAME,
    Action,
    ApiActivity,
    AuthProtocol,
    Captioned,
    ControlAction,
    EventClass,
    FindingActivity,
    Outcome,
    Profile,
    Severity,
    Status,
    UserType,
)
from tenant_security.audit.pii import ANONYMOUS, ERASED, REDACTED

_WITHHELD = (REDACTED, ERASED)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Line breaks to str.splitlines (and U+2028/2029 to JavaScript) that JSON may leave raw: escaped,
# so that an event stays one line for any reader.
_LINE_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}


# API Activity: by the action's verb (``tenants:Suspend``), else the route's HTTP method, else
# (lifecycle events) the tenant created or removed.
_VERBS: dict[ApiActivity, tuple[str, ...]] = {
    ApiActivity.CREATE: ("Create", "POST", "Tenant Onboard"),
    ApiActivity.READ: ("Read", "List", "History", "Verify", "Export", "Get", "GET", "HEAD"),
    ApiActivity.UPDATE: ("Write", "Update", "Rotate", "Suspend", "Reinstate", "PUT", "PATCH"),
    ApiActivity.DELETE: ("Delete", "Erase", "Revoke", "End", "DELETE", "Tenant Offboard"),
}
# Alerts a compliance report asks to review are High; incident response, policy roll-out and a
# forced lock-out Medium (so is a kind unknown here); the authorizer's daily refusals Low.
_NOTABLE_ALERTS = frozenset(
    {
        AlertKind.TENANT_SUSPENDED,
        AlertKind.TENANT_REINSTATED,
        AlertKind.SESSIONS_REVOKED,
        AlertKind.POLICY_ROLLOUT_FAILED,
        AlertKind.POLICY_LOCKOUT_FORCED,
    }
)
# An activity's severity and status by its outcome: a control's refusal weighs more than a failure.
_OUTCOMES: dict[str, tuple[Severity, Status]] = {
    Outcome.SUCCESS: (Severity.INFORMATIONAL, Status.SUCCESS),
    Outcome.FAILURE: (Severity.LOW, Status.FAILURE),
    Outcome.DENIED: (Severity.MEDIUM, Status.FAILURE),
}
_UNMAPPED = ("outcome", "category", "detail_type", "source", "resource", "hash", "prev_hash", "details")


def alert_severity(kind: str) -> Severity:
    """The severity of a ``security:<kind>`` finding."""
    if kind in REVIEW_REQUIRED:
        return Severity.HIGH
    routine = kind in AlertKind._value2member_map_ and kind not in _NOTABLE_ALERTS
    return Severity.LOW if routine else Severity.MEDIUM


def classify(action: str, resource: str | None = None) -> tuple[EventClass, Captioned]:
    """The OCSF class and activity of an audit action (total: any string maps to one)."""
    if action in CLASS_OF:
        return CLASS_OF[action]
    if action.startswith(SECURITY_ACTION_PREFIX):
        return EventClass.DETECTION_FINDING, FindingActivity.CREATE
    words = [action.partition(":")[2], (resource or action).partition(" ")[0]]
    if action.startswith(LIFECYCLE_PREFIX):
        words = [action.removeprefix(LIFECYCLE_PREFIX)]
    for word in filter(None, words):
        for activity, verbs in _VERBS.items():
            if word.startswith(verbs):
                return EventClass.API_ACTIVITY, activity
    return EventClass.API_ACTIVITY, ApiActivity.OTHER


def epoch_ms(moment: str) -> int:
    """An ISO 8601 time as OCSF's timestamp_t: milliseconds since the epoch (naive = UTC)."""
    when = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return ((when if when.tzinfo else when.replace(tzinfo=UTC)) - _EPOCH) // timedelta(milliseconds=1)


def _pair(uid: str, name: str, member: Captioned) -> dict[str, Any]:
    """An OCSF enum attribute and its caption (``severity_id`` and ``severity``)."""
    return {uid: int(member), name: member.caption}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _part(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def _user(name: Any, pseudonym: Any, org: Any) -> dict[str, Any] | None:
    """A person as the record holds them: the pseudonym as ``uid``, the name where it is in clear
    (or withheld with no pseudonym to stand for it). None when the record names nobody: a
    pseudonym alone is the anonymous subject's (the source address of nobody known)."""
    if not _text(name):
        return None
    user: dict[str, Any] = {"uid": pseudonym} if _text(pseudonym) else {}
    if not (name in _WITHHELD and user):
        user["name"] = name
    return {
        **user,
        **_pair("type_id", "type", UserType.USER),
        **({"org": {"uid": org}} if _text(org) else {}),
    }


def _actor(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """Who acted: an API client by its id (a machine, no person), else the person, else None."""
    actor = _part(record, "actor")
    org = actor.get("tenant_id") or record.get("tenant_id")
    client = _text(actor.get("client_id")) if actor.get("type") == ActorType.CLIENT else None
    if client:
        return {
            **(_user(client, client, org) or {}),
            "type_id": int(UserType.OTHER),
            "type": CLIENT_USER_TYPE,
        }
    return _user(actor.get("user"), actor.get("pseudonym"), org)


def _endpoint(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where the call came from: the address in clear, else the record's marker for it."""
    source_ip = _text(record.get("source_ip"))
    if source_ip is None:
        return None
    try:
        return {"ip": str(ipaddress.ip_address(source_ip))}
    except ValueError:
        return {"name": source_ip}  # ``[redacted]``: the address is withheld, not unknown


def ocsf_event(
    record: Mapping[str, Any], tenant_id: str, product_version: str, *, region: str | None = None
) -> dict[str, Any]:
    """One audit record (as stored: PII protected, sealed) as one OCSF 1.1.0 event.

    ``tenant_id``: the trail's tenant, which must be the record's (an export never mixes tenants);
    ``product_version``: this platform's version; ``region``: the AWS Region, when known. The
    event's ``time`` is the record's ``recorded_at`` (epoch milliseconds), its ``metadata.uid`` and
    ``metadata.sequence`` the record's event id and sequence. Raises ValueError for a record of
    another tenant or without ``recorded_at``.
    """
    if record.get("tenant_id") != tenant_id:
        raise ValueError("the record is not of this tenant's trail")
    if not _text(record.get("recorded_at")):
        raise ValueError("the record has no recorded_at")
    action, outcome = str(record.get("action") or ""), str(record.get("outcome") or "")
    event_class, activity = classify(action, _text(record.get("resource")))
    finding = event_class is EventClass.DETECTION_FINDING
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME, "version": product_version},
        "uid": str(record.get("event_id") or ""),
        "tenant_uid": tenant_id,
        "profiles": [Profile.CLOUD, *([Profile.SECURITY_CONTROL] if finding else [])],
    }
    if isinstance(record.get("sequence"), int):
        metadata["sequence"] = record["sequence"]
    for key, field in (("correlation_uid", "request_id"), ("original_time", "time")):
        if _text(record.get(field)):
            metadata[key] = record[field]
    event: dict[str, Any] = {
        **_pair("class_uid", "class_name", event_class),
        **_pair("category_uid", "category_name", event_class.category),
        **_pair("activity_id", "activity_name", activity),
        "type_uid": int(event_class) * 100 + int(activity),
        "type_name": f"{event_class.caption}: {activity.caption}",
        "time": epoch_ms(record["recorded_at"]),
        "metadata": metadata,
        "cloud": {"provider": CLOUD_PROVIDER, **({"region": region} if region else {})},
    }
    if activity == ApiActivity.OTHER and action:  # Other (99): the schema leaves the name to us
        event["activity_name"] = action
    if finding:
        event.update(_finding(record, action.removeprefix(SECURITY_ACTION_PREFIX), outcome, event["time"]))
    else:
        event.update(_participants(event_class, action, record))
        severity, status = _OUTCOMES.get(outcome, (Severity.UNKNOWN, None))
        event.update(
            _pair("severity_id", "severity", severity),
            **(_pair("status_id", "status", status) if status else {}),
        )
        if isinstance(record.get("status"), int):
            event["status_code"] = str(record["status"])
        if _text(record.get("reason")):
            event["status_detail"] = record["reason"]
    unmapped = {k: record[k] for k in (*_UNMAPPED, "changes") if record.get(k) not in (None, {}, [])}
    return {**event, "unmapped": unmapped} if unmapped else event


def _participants(event_class: EventClass, action: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The class's who and where: user, actor, source endpoint, api."""
    actor, source = _actor(record), _endpoint(record)
    nobody = {"name": ANONYMOUS, **_pair("type_id", "type", UserType.UNKNOWN)}
    if event_class is EventClass.AUTHENTICATION:  # the user is who signs in (or out)
        out: dict[str, Any] = {"user": actor or nobody, "service": {"name": PRODUCT_NAME}}
        if action == Action.TOKEN:
            out.update(_pair("auth_protocol_id", "auth_protocol", AuthProtocol.OAUTH2))
        if action == Action.MFA_VERIFY:
            out["is_mfa"] = True
    elif event_class is EventClass.ACCOUNT_CHANGE:  # the user is the account changed
        target = _part(record, "target")
        changed = _user(target.get("user"), target.get("pseudonym"), record.get("tenant_id"))
        out = {"user": changed or actor or nobody, **({"actor": {"user": actor}} if actor else {})}
    else:
        api: dict[str, Any] = {"operation": action or "unknown", "service": {"name": PRODUCT_NAME}}
        if _text(record.get("request_id")):
            api["request"] = {"uid": record["request_id"]}
        if isinstance(record.get("status"), int):
            api["response"] = {
                "code": record["status"],
                **({"error": record["reason"]} if _text(record.get("reason")) else {}),
            }
        invoker = {"invoked_by": record.get("source") or PRODUCT_NAME}  # an event of a service
        out = {"actor": {"user": actor} if actor else invoker, "api": api}
        source = source or {"svc_name": record.get("source") or PRODUCT_NAME}
    return {**out, "src_endpoint": source} if source else out


def _finding(record: Mapping[str, Any], kind: str, outcome: str, time: int) -> dict[str, Any]:
    """A Detection Finding's own attributes: the finding, the control's action, the evidence."""
    info: dict[str, Any] = {
        "uid": str(record.get("event_id") or ""),
        "title": kind.replace("_", " ").capitalize() or "Security alert",
        "types": [kind],
        "created_time": time,
    }
    if _text(record.get("reason")):
        info["desc"] = record["reason"]
    action = ControlAction.DENIED if outcome == Outcome.DENIED else ControlAction.UNKNOWN
    out = {"finding_info": info, **_pair("action_id", "action", action)}
    out.update(_pair("severity_id", "severity", alert_severity(kind)))
    actor, source = _actor(record), _endpoint(record)
    evidence = {
        **({"actor": {"user": actor}} if actor else {}),
        **({"src_endpoint": source} if source else {}),
    }
    if evidence:
        out["evidences"] = [evidence]
    attempts = _part(record, "details").get("attempts")  # a refusals summary: how many
    if isinstance(attempts, int) and not isinstance(attempts, bool):
        out["count"] = attempts
    return out


def ndjson_lines(events: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """Each event as one compact UTF-8 JSON line ending in ``\\n`` (application/x-ndjson)."""
    for event in events:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        yield text.translate(_LINE_BREAKS).encode() + b"\n"


def ocsf_lines(
    records: Iterable[Mapping[str, Any]], tenant_id: str, product_version: str, *, region: str | None = None
) -> Iterator[bytes]:
    """The NDJSON export of ``records``, in the order given (the caller pages by sequence)."""
    return ndjson_lines(ocsf_event(r, tenant_id, product_version, region=region) for r in records)
