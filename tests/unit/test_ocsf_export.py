"""The audit trail's OCSF export (tenant_security.audit.ocsf), validated against the OCSF schema.

The schema is OCSF's own: the export of schema.ocsf.io for the version the events claim, as the
`ocsf-json-schema` package ships it, turned by that package into JSON Schema (draft 2020-12) per
class and profile set and checked with `jsonschema`. JSON Schema cannot say that a caption goes
with its id (``activity_name`` with ``activity_id``), so those pairs are checked here against the
same export. The records are made the way the writer makes them: a platform event through
``record_content`` (or ``forged_record_content``), the tenant's ``pii_handling`` through the real
:class:`PiiProtector` (real per-subject encryption, keys held in memory) and ``seal``.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from tenant_security.activity import QUOTA_THRESHOLD_REACHED
from tenant_security.alerts import REVIEW_REQUIRED, AlertKind, action_of
from tenant_security.audit.chain import GENESIS_HASH, seal
from tenant_security.audit.events import forged_record_content, record_content, tenant_of
from tenant_security.audit.ocsf import (
    OCSF_VERSION,
    PRODUCT_NAME,
    VENDOR_NAME,
    alert_severity,
    classify,
    epoch_ms,
    ndjson_lines,
    ocsf_event,
    ocsf_lines,
)
from tenant_security.audit.ocsf_vocabulary import (
    CLASS_OF,
    AccountChangeActivity,
    Action,
    ApiActivity,
    AuthenticationActivity,
    AuthProtocol,
    ControlAction,
    EventClass,
    FindingActivity,
    Profile,
    Severity,
    Status,
    UserType,
)
from tenant_security.audit.pii import PII_FIELDS, PiiProtector
from tenant_security.authz.routes import ROUTES
from tenant_security.identity.client_credentials import TOKEN_ACTION
from tenant_security.onboarding.requests import OFFBOARDING_REQUESTED, ONBOARDING_REQUESTED

ROOT = Path(__file__).resolve().parents[2]
DATA = json.loads((ROOT / "tests/data/ocsf/trail_events.json").read_text())
SOURCE = DATA["source"]
PLATFORM = "platform"
VERSION = "0.1.0"
REGION = "eu-west-1"
RECORDED_AT = "2026-11-02T10:00:00.123456+00:00"
MODES = ("encrypt_and_redact", "redact", "none")
OTHER = 99  # OCSF's "Other": the activity's name is the source's own


# ------------------------------------------------------------------ the schema
@cache
def _schema() -> OcsfJsonSchemaEmbedded:
    return OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))


@cache
def _export() -> dict[str, Any]:
    return _schema().schema.schema


@cache
def _validator(class_uid: int, profiles: tuple[str, ...]) -> Draft202012Validator:
    name = _schema().lookup_class_name_from_uid(class_uid)
    schema = _schema().get_class_schema(name, list(profiles))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _caption(attributes: dict[str, Any], id_key: str, value: int) -> str:
    return str(attributes[id_key]["enum"][str(value)]["caption"])


def _class(event: dict[str, Any]) -> dict[str, Any]:
    name = _schema().lookup_class_name_from_uid(event["class_uid"])
    return dict(_export()["classes"][name])


def schema_errors(event: dict[str, Any]) -> list[str]:
    """Every way ``event`` breaks OCSF: JSON Schema of its class and profiles, then the captions
    that must go with their ids (per the same export), the type_uid rule and the version."""
    if event.get("class_uid") not in {c["uid"] for c in _export()["classes"].values()}:
        return [f"unknown class_uid {event.get('class_uid')!r}"]
    profiles = tuple(sorted(event.get("metadata", {}).get("profiles", [])))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(event["class_uid"], profiles).iter_errors(event)
    ]
    if errors:
        return errors
    attributes = _class(event)["attributes"]
    pairs = [("class_uid", "class_name"), ("category_uid", "category_name"), ("type_uid", "type_name")]
    pairs += [("severity_id", "severity"), ("status_id", "status"), ("action_id", "action")]
    pairs += [("auth_protocol_id", "auth_protocol")]
    if event["activity_id"] != OTHER:
        pairs.append(("activity_id", "activity_name"))
    for id_key, name_key in pairs:
        if id_key in event and event.get(name_key) != _caption(attributes, id_key, event[id_key]):
            errors.append(f"{name_key} {event.get(name_key)!r} is not the caption of {id_key}")
    if event["type_uid"] != event["class_uid"] * 100 + event["activity_id"]:
        errors.append("type_uid is not class_uid * 100 + activity_id")
    user_types = _export()["objects"]["user"]["attributes"]
    for user in _users(event):
        if user.get("type_id") != OTHER and user.get("type") != _caption(
            user_types, "type_id", user["type_id"]
        ):
            errors.append(f"user type {user.get('type')!r} is not the caption of {user['type_id']}")
    if event["metadata"]["version"] != _export()["version"]:
        errors.append("metadata.version is not the schema's version")
    return errors


def _users(event: dict[str, Any]) -> list[dict[str, Any]]:
    found = [event.get("user"), event.get("actor", {}).get("user")]
    found += [e.get("actor", {}).get("user") for e in event.get("evidences", [])]
    return [u for u in found if u]


# ------------------------------------------------------------------ records as the writer makes them
class MemorySubjectKeys:
    """SubjectKeys' part that PiiProtector uses, in memory: one random key per subject."""

    def __init__(self) -> None:
        self.by_subject: dict[tuple[str, str], tuple[str, bytes]] = {}

    def key_for(self, tenant_id: str, subject: str, happened_at: float | None = None) -> tuple[str, bytes]:
        return self.by_subject.setdefault((tenant_id, subject), (str(uuid.uuid4()), uuid.uuid4().bytes * 2))

    def key_by_id(self, tenant_id: str, key_id: str) -> bytes | None:
        return next((k for (t, _), (i, k) in self.by_subject.items() if t == tenant_id and i == key_id), None)


def _wire(case: dict[str, Any]) -> dict[str, Any]:
    return {"source": SOURCE, **case["event"]}


def stored_record(
    case: dict[str, Any], mode: str, keys: MemorySubjectKeys | None = None, sequence: int = 7
) -> dict[str, Any]:
    """The record the writer stores for the case's event under ``pii_handling: mode``."""
    event = _wire(case)
    if case.get("forged"):
        content = forged_record_content(event, PLATFORM)
    else:
        content = record_content(event, tenant_of(event, PLATFORM))
    protected = PiiProtector(keys or MemorySubjectKeys()).protect(content, mode)
    return seal({**protected, "sequence": sequence, "prev_hash": GENESIS_HASH, "recorded_at": RECORDED_AT})


def export(record: dict[str, Any]) -> dict[str, Any]:
    return ocsf_event(record, record["tenant_id"], VERSION, region=REGION)


CASES = [pytest.param(case, id=case["id"]) for case in DATA["cases"]]


# ------------------------------------------------------------------ tests
def test_the_validator_is_real_it_refuses_broken_events() -> None:
    good = export(stored_record(DATA["cases"][0], "encrypt_and_redact"))
    assert schema_errors(good) == []
    broken = [
        {k: v for k, v in good.items() if k != "user"},  # Authentication's user is required
        {**good, "activity_id": 42, "type_uid": 300242},  # not an activity of the class
        {**good, "time": RECORDED_AT},  # a timestamp is epoch milliseconds
        {**good, "severity_id": 7},
        {**good, "src_endpoint": {"ip": "[redacted]"}},  # ip_t is an address
        {**good, "user": {"type_id": 1}},  # a user needs a name, uid or account
        {**good, "invented": True},  # not an attribute of the class
        {**good, "activity_name": "Logoff"},  # a caption of another activity
        {**good, "metadata": {**good["metadata"], "product": {"name": 7}}},
    ]
    for event in broken:
        assert schema_errors(event), event


def test_the_vocabulary_spells_every_value_as_the_schema_does() -> None:
    classes = {c["uid"]: c for c in _export()["classes"].values()}
    activities = {
        EventClass.AUTHENTICATION: AuthenticationActivity,
        EventClass.ACCOUNT_CHANGE: AccountChangeActivity,
        EventClass.API_ACTIVITY: ApiActivity,
        EventClass.DETECTION_FINDING: FindingActivity,
    }
    for event_class, activity in activities.items():
        attributes = classes[event_class]["attributes"]
        assert classes[event_class]["caption"] == event_class.caption
        assert _caption(attributes, "category_uid", event_class.category) == event_class.category.caption
        assert all(_caption(attributes, "activity_id", a) == a.caption for a in activity)
        assert Profile.CLOUD in classes[event_class]["profiles"]
    assert set(Profile) <= set(classes[EventClass.DETECTION_FINDING]["profiles"])
    base = _export()["base_event"]["attributes"]
    finding = classes[EventClass.DETECTION_FINDING]["attributes"]
    for attributes, id_key, enum in (
        (base, "severity_id", Severity),
        (base, "status_id", Status),
        (finding, "action_id", ControlAction),
        (classes[EventClass.AUTHENTICATION]["attributes"], "auth_protocol_id", AuthProtocol),
        (_export()["objects"]["user"]["attributes"], "type_id", UserType),
    ):
        assert all(_caption(attributes, id_key, member) == member.caption for member in enum), id_key


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES)
def test_every_family_of_record_maps_to_a_valid_event_of_its_class(case: dict[str, Any], mode: str) -> None:
    record = stored_record(case, mode)
    event = export(record)
    assert schema_errors(event) == []
    assert (event["class_uid"], event["activity_id"]) == (case["class_uid"], case["activity_id"])
    if "severity_id" in case:
        assert event["severity_id"] == case["severity_id"]
    if "count" in case:
        assert event["count"] == case["count"]
    metadata = event["metadata"]
    assert metadata["uid"] == record["event_id"]
    assert metadata["sequence"] == record["sequence"]
    assert metadata["tenant_uid"] == record["tenant_id"]
    assert metadata["product"] == {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME, "version": VERSION}
    assert event["cloud"] == {"provider": "AWS", "region": REGION}
    assert event["unmapped"]["hash"] == record["hash"]  # the event names the leaf it comes from
    assert "pii" not in event["unmapped"]


@pytest.mark.parametrize("case", CASES)
def test_pii_the_record_holds_only_as_ciphertext_never_appears_in_the_event(case: dict[str, Any]) -> None:
    keys = MemorySubjectKeys()
    record = stored_record(case, "encrypt_and_redact", keys)
    revealed = PiiProtector(keys).reveal(record)
    in_clear = json.dumps({k: v for k, v in record.items() if k != "pii"})
    hidden = set()
    for path, _role in PII_FIELDS:
        value: Any = revealed
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and value not in in_clear:
            hidden.add(value)
    line = b"".join(ndjson_lines([export(record)])).decode()
    assert not any(value in line for value in hidden)
    assert all(entry["ciphertext"] not in line for entry in record.get("pii", []))
    detail = case["event"]["detail"]
    # (a refusals summary's event id names its source address in clear, so that one is not hidden)
    if not case.get("forged") and detail.get("user"):
        assert hidden
        assert record["pii"]
        person = record["actor"].get("type") != "client" and record["actor"].get("pseudonym")
        assert not person or person in line  # the pseudonym stands for the person


def test_names_and_addresses_kept_in_clear_by_the_tenant_are_exported() -> None:
    created = next(c for c in DATA["cases"] if c["id"] == "user-created")
    event = export(stored_record(created, "none"))
    assert event["user"]["name"] == "bob.builder"
    assert event["actor"]["user"]["name"] == "ada.lovelace"
    assert event["src_endpoint"] == {"ip": "203.0.113.7"}
    protected = export(stored_record(created, "encrypt_and_redact"))
    assert "name" not in protected["user"]
    assert protected["user"]["uid"]
    assert protected["src_endpoint"] == {"name": "[redacted]"}
    redacted = export(stored_record(created, "redact"))  # no pseudonym: the marker stands for it
    assert redacted["user"]["name"] == "[redacted]"
    assert "uid" not in redacted["user"]


def test_a_machine_client_is_an_actor_of_its_own_kind() -> None:
    token = next(c for c in DATA["cases"] if c["id"] == "client-token")
    event = export(stored_record(token, "encrypt_and_redact"))
    assert event["user"]["uid"] == event["user"]["name"] == "cli_7f3a9c"
    assert (event["user"]["type_id"], event["user"]["type"]) == (OTHER, "API Client")
    assert event["auth_protocol"] == "OAUTH 2.0"
    read = next(c for c in DATA["cases"] if c["id"] == "file-read-by-client")
    assert export(stored_record(read, "encrypt_and_redact"))["actor"]["user"]["uid"] == "cli_7f3a9c"


def test_a_source_address_of_nobody_known_is_evidence_but_no_person() -> None:
    summary = next(c for c in DATA["cases"] if c["id"] == "alert-refusals-summary")
    protected = stored_record(summary, "encrypt_and_redact")
    assert protected["actor"].get("pseudonym")  # the anonymous subject's key, standing for no one
    assert export(protected)["evidences"] == [{"src_endpoint": {"name": "[redacted]"}}]
    assert export(stored_record(summary, "none"))["evidences"] == [{"src_endpoint": {"ip": "192.0.2.99"}}]


def _vocabulary() -> set[str]:
    """Every action the platform records: the route table, the sign-in steps (read from their
    source, so a new step cannot be missed), the token endpoint, every alert, every lifecycle
    event the bus carries (the state machines' DetailTypes and the requests')."""
    signin = (ROOT / "layers/common/tenant_security/identity/signin.py").read_text()
    steps = set(re.findall(r'audit\.step\("([^"]+)"', signin))
    assert {"auth:Login", "auth:MfaVerify", "auth:ChangePassword"} <= steps
    lifecycle = {ONBOARDING_REQUESTED, OFFBOARDING_REQUESTED, QUOTA_THRESHOLD_REACHED}
    for machine in (ROOT / "statemachines").glob("*.asl.json"):
        lifecycle |= set(re.findall(r'"DetailType": "([^"]+)"', machine.read_text()))
    assert {"Tenant Onboarded", "Tenant Offboarded"} <= lifecycle
    return (
        {rule.action for rule in ROUTES}
        | {a for rule in ROUTES for a in rule.also}
        | steps
        | {TOKEN_ACTION}
        | {action_of(kind) for kind in AlertKind}
        | {f"lifecycle:{t}" for t in lifecycle}
    )


def test_every_action_of_the_vocabulary_maps_to_a_class_and_validates() -> None:
    vocabulary = _vocabulary()
    assert set(Action) <= vocabulary  # no special case for an action nobody records
    assert Action.TOKEN == TOKEN_ACTION
    seen: dict[int, set[str]] = {}
    for action in sorted(vocabulary):
        event_class, _activity = classify(action)
        seen.setdefault(int(event_class), set()).add(action)
        record = seal(
            {
                "tenant_id": "acme",
                "event_id": f"e-{action}",
                "action": action,
                "outcome": "success",
                "actor": {"tenant_id": "acme", "user": "[redacted]", "pseudonym": "k-1"},
                "target": {"user": None, "email": None},
                "source_ip": "[redacted]",
                "sequence": 1,
                "prev_hash": GENESIS_HASH,
                "recorded_at": RECORDED_AT,
            }
        )
        assert schema_errors(export(record)) == [], action
    assert seen[EventClass.AUTHENTICATION] == {
        "auth:Login",
        "auth:MfaVerify",
        TOKEN_ACTION,
        "auth:Logout",
        "auth:EndSession",
    }
    assert seen[EventClass.ACCOUNT_CHANGE] == {
        str(a) for a, (c, _) in CLASS_OF.items() if c is EventClass.ACCOUNT_CHANGE
    }
    assert seen[EventClass.DETECTION_FINDING] == {action_of(kind) for kind in AlertKind}
    assert {"files:Read", "tenants:Suspend", "lifecycle:Tenant Onboarded"} <= seen[EventClass.API_ACTIVITY]


def test_every_alert_has_a_severity_and_the_ones_to_review_are_high() -> None:
    for kind in AlertKind:
        assert alert_severity(kind) in (Severity.LOW, Severity.MEDIUM, Severity.HIGH)
        assert (alert_severity(kind) is Severity.HIGH) == (kind in REVIEW_REQUIRED)
    assert alert_severity("a_kind_not_known_yet") is Severity.MEDIUM


@pytest.mark.parametrize(
    ("recorded_at", "expected"),
    [
        ("2026-11-02T10:00:00.123456+00:00", datetime(2026, 11, 2, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-02T10:00:00Z", datetime(2026, 11, 2, 10, tzinfo=UTC)),
        ("2026-11-02T12:00:00.999+02:00", datetime(2026, 11, 2, 10, 0, 0, 999000, tzinfo=UTC)),
        ("1970-01-01T00:00:00.001+00:00", datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)),
    ],
)
def test_the_time_is_the_records_recorded_at_in_epoch_milliseconds(
    recorded_at: str, expected: datetime
) -> None:
    record = {**stored_record(DATA["cases"][0], "none"), "recorded_at": recorded_at}
    ms = int(expected.timestamp()) * 1000 + expected.microsecond // 1000
    assert epoch_ms(recorded_at) == ms
    event = export(record)
    assert event["time"] == ms
    assert isinstance(event["time"], int)
    assert event["metadata"]["original_time"] == record["time"]  # when it happened, as reported


def test_a_record_of_another_tenant_or_without_its_time_is_refused() -> None:
    record = stored_record(DATA["cases"][0], "none")
    with pytest.raises(ValueError, match="tenant"):
        ocsf_event(record, "globex", VERSION)
    with pytest.raises(ValueError, match="recorded_at"):
        ocsf_event({k: v for k, v in record.items() if k != "recorded_at"}, "acme", VERSION)


def test_ndjson_is_one_compact_json_line_per_event_in_the_order_given() -> None:
    records = [
        stored_record(c, "none", sequence=i) for i, c in enumerate(DATA["cases"], 1) if not c.get("forged")
    ]
    tricky = {**records[0], "reason": "line one\nline two \u2028 \x85 é ✓", "sequence": 99}
    records.append(tricky)
    lines = list(ocsf_lines(records, "acme", VERSION))
    assert len(lines) == len(records)
    for line, record in zip(lines, records, strict=True):
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        event = json.loads(line)
        assert event == export(record) | {"cloud": {"provider": "AWS"}}
        assert event["metadata"]["sequence"] == record["sequence"]
        compact = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        assert line.decode() == compact.replace("\u2028", "\\u2028").replace("\x85", "\\u0085") + "\n"
        assert len(line.decode().splitlines()) == 1  # not even U+2028 or NEL splits it
    assert json.loads(lines[-1])["status_detail"] == tricky["reason"]
    assert list(ndjson_lines([])) == []


@settings(max_examples=60, deadline=None)
@given(
    action=st.one_of(
        st.text(max_size=40),
        st.sampled_from(sorted(_vocabulary())),
        st.builds(
            lambda m, p: f"{m} {p}",
            st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
            st.text(max_size=20),
        ),
    ),
    outcome=st.sampled_from(["success", "failure", "denied", "", "strange"]),
    status=st.one_of(st.none(), st.integers(100, 599)),
    source_ip=st.one_of(st.none(), st.just("[redacted]"), st.ip_addresses().map(str)),
    client=st.booleans(),
)
def test_any_record_maps_to_a_valid_event(
    action: str, outcome: str, status: int | None, source_ip: str | None, client: bool
) -> None:
    detail = {
        "event_id": "e-1",
        "tenant_id": "acme",
        "action": action,
        "outcome": outcome,
        "user": "cli_1" if client else "ada",
        "status": status,
        "source_ip": source_ip,
        "actor": {"type": "client", "client_id": "cli_1"} if client else {"type": "user"},
    }
    event = {"id": "eb-1", "source": SOURCE, "detail-type": "User Activity", "detail": detail}
    record = stored_record({"event": event}, "none")
    mapped = export(record)
    assert schema_errors(mapped) == []
    if source_ip and source_ip != "[redacted]":
        assert mapped.get("src_endpoint", mapped.get("evidences", [{}])[0].get("src_endpoint")) == {
            "ip": source_ip
        }
