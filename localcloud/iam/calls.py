"""What IAM checks for one AWS call: the actions, resources and condition keys it is authorized by.

A call is read as moto's server receives it (service from the SigV4 credential scope, operation
from ``X-Amz-Target``, the query's ``Action`` or S3's REST shape) and each resource is resolved to
its ARN through moto's backends in this process: a KMS alias or key id to the key's ARN (its
aliases and tags are condition keys), a secret's name to its ARN, a table's hash key for
``dynamodb:LeadingKeys``. A call may need several authorizations: a transaction's items, both the
alias and the key of CreateAlias, and the KMS operations Secrets Manager performs for the caller
under a customer managed key (``kms:ViaService``).
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from localcloud.awscalls import s3_operation

ContextValue = str | list[str]


class UnmappedCall(RuntimeError):
    """A call the local cloud cannot map to its resources: an error, never an allow."""


@dataclass
class Check:
    """One authorization: ``action`` on ``resource`` with ``context``, under ``resource_policy``.

    ``kind`` names the resource policy's service for the error message ("key", "bucket"...).
    ``via`` is the service that asks on the caller's behalf (Secrets Manager for KMS).
    """

    action: str
    resource: str
    context: dict[str, ContextValue] = field(default_factory=dict)
    resource_policy: dict[str, Any] | None = None
    resource_account: str = ""
    via: str = ""
    iam_only: bool = False  # IAM alone decides (``resource_policy`` only delegates to it)


@dataclass(frozen=True)
class Call:
    """One request moto's server received, parsed."""

    service: str  # SigV4 name: dynamodb, kms, s3, monitoring...
    operation: str
    region: str
    account: str
    params: Mapping[str, Any]  # the JSON body, the query form, or S3's pieces
    environ: Mapping[str, Any]

    @property
    def prefix(self) -> str:
        return _IAM_PREFIX.get(self.service, self.service)


_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}
# Calls that need no permission.
FREE = {"sts:GetCallerIdentity"}
# How long after CreateKey a key's tags and aliases may not yet authorize anything (AWS: "up to
# five minutes" for tag- and alias-based access to apply).
ABAC_LAG_SECONDS = 300.0


def _moto(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


# ---------------------------------------------------------------------- parsing
def parse_call(environ: Mapping[str, Any], body: bytes, service: str, region: str, account: str) -> Call:
    """The service's operation and parameters of one request."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if service == "s3":
        path = str(environ.get("PATH_INFO", "")).lstrip("/")
        bucket, _, key = path.partition("/")
        headers = {
            k[5:].lower().replace("_", "-"): str(v) for k, v in environ.items() if k.startswith("HTTP_")
        }
        params: dict[str, Any] = {
            "Bucket": unquote(bucket),
            "Key": unquote(key),
            "headers": headers,
            "body": body,
        }
        return Call(service, s3_operation(dict(environ)), region, account, params, environ)
    if target:
        try:
            params = json.loads(body or b"{}")
        except ValueError as exc:
            raise UnmappedCall(f"{service}: the body is not JSON") from exc
        return Call(service, target.rsplit(".", 1)[-1], region, account, params, environ)
    if service == "lambda":
        return Call(service, _lambda_operation(environ), region, account, {}, environ)
    form = {k: v[-1] for k, v in parse_qs(body.decode(errors="replace"), keep_blank_values=True).items()}
    form.update({k: v[-1] for k, v in parse_qs(str(environ.get("QUERY_STRING", ""))).items()})
    return Call(
        service, form.get("Action", str(environ.get("REQUEST_METHOD", ""))), region, account, form, environ
    )


_LAMBDA_INVOKE = re.compile(r"/20\d\d-\d\d-\d\d/functions/([^/]+)/invocations")


def _lambda_operation(environ: Mapping[str, Any]) -> str:
    return "Invoke" if _LAMBDA_INVOKE.search(str(environ.get("PATH_INFO", ""))) else "Unknown"


# ---------------------------------------------------------------------- checks
def checks_of(call: Call, caller_account: str) -> list[Check]:
    """Every authorization ``call`` needs (empty for a call that needs none)."""
    action = f"{call.prefix}:{call.operation}"
    if action in FREE:
        return []
    mapper = _MAPPERS.get(call.prefix)
    if mapper is None:
        raise UnmappedCall(f"{action}: the local cloud maps no {call.prefix} call to its resources")
    checks = mapper(call)
    for check in checks:
        check.resource_account = check.resource_account or call.account
        check.context.setdefault("aws:RequestedRegion", call.region)
        check.context.setdefault("aws:SecureTransport", "true")  # AWS's endpoints are HTTPS only
    return checks


# DynamoDB ---------------------------------------------------------------
_DDB_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _table(call: Call, name: str) -> Any:
    backend = _moto("moto.dynamodb.models", "dynamodb_backends")[call.account][call.region]
    return backend.tables.get(name.rsplit("/", 1)[-1])


def _table_arn(call: Call, name: str, index: str | None = None) -> str:
    base = name if name.startswith("arn:") else f"arn:aws:dynamodb:{call.region}:{call.account}:table/{name}"
    return f"{base}/index/{index}" if index else base


def _scalar(value: Mapping[str, Any]) -> str:
    for kind in ("S", "N", "B"):
        if kind in value:
            return str(value[kind])
    raise UnmappedCall(f"dynamodb: a key value of type {sorted(value)}")


def _leading_key(call: Call, table_name: str, key: Mapping[str, Any] | None) -> list[str] | None:
    table = _table(call, table_name)
    if table is None or not key or table.hash_key_attr not in key:
        return None
    return [_scalar(key[table.hash_key_attr])]


def _query_leading_key(call: Call, params: Mapping[str, Any]) -> list[str] | None:
    table = _table(call, str(params["TableName"]))
    if table is None:
        return None
    hash_attr = table.hash_key_attr
    index = params.get("IndexName")
    if index:
        for candidate in [*table.global_indexes, *table.indexes]:
            if candidate.name == index:
                hash_attr = next(k["AttributeName"] for k in candidate.schema if k["KeyType"] == "HASH")
    names = dict(params.get("ExpressionAttributeNames") or {})
    spellings = [hash_attr] + [placeholder for placeholder, name in names.items() if name == hash_attr]
    expression = str(params.get("KeyConditionExpression") or "")
    values = params.get("ExpressionAttributeValues") or {}
    for spelling in spellings:
        found = re.search(rf"(?<![\w#]){re.escape(spelling)}\s*=\s*(:\w+)", expression) or re.search(
            rf"(:\w+)\s*=\s*(?<![\w#]){re.escape(spelling)}(?!\w)", expression
        )
        if found and found.group(1) in values:
            return [_scalar(values[found.group(1)])]
    legacy = (params.get("KeyConditions") or {}).get(hash_attr)
    if legacy:
        return [_scalar(legacy["AttributeValueList"][0])]
    raise UnmappedCall(
        f"dynamodb:Query on {params['TableName']}: no partition key value in the key condition"
    )


def _dynamodb(call: Call) -> list[Check]:
    params, op = call.params, call.operation

    def item(action: str, table: str, key: Mapping[str, Any] | None, index: str | None = None) -> Check:
        context: dict[str, ContextValue] = {}
        leading = _leading_key(call, table, key)
        if leading is not None:
            context["dynamodb:LeadingKeys"] = leading
        return Check(f"dynamodb:{action}", _table_arn(call, table, index), context)

    if op in ("GetItem", "DeleteItem", "UpdateItem"):
        return [item(op, params["TableName"], params.get("Key"))]
    if op == "PutItem":
        return [item(op, params["TableName"], params.get("Item"))]
    if op == "Query":
        check = Check("dynamodb:Query", _table_arn(call, params["TableName"], params.get("IndexName")))
        leading = _query_leading_key(call, params)
        if leading is not None:
            check.context["dynamodb:LeadingKeys"] = leading
        return [check]
    if op == "Scan":
        return [Check("dynamodb:Scan", _table_arn(call, params["TableName"], params.get("IndexName")))]
    if op in ("TransactWriteItems", "TransactGetItems"):
        checks = []
        for entry in params.get("TransactItems", []):
            kind, spec = next(iter(entry.items()))
            checks.append(
                item(_DDB_ITEM_ACTIONS[kind], spec["TableName"], spec.get("Key") or spec.get("Item"))
            )
        return checks
    if op == "BatchWriteItem":
        checks = []
        for table, requests in (params.get("RequestItems") or {}).items():
            for request in requests:
                if "PutRequest" in request:
                    checks.append(item("BatchWriteItem", table, request["PutRequest"]["Item"]))
                else:
                    checks.append(item("BatchWriteItem", table, request["DeleteRequest"]["Key"]))
        return checks
    if op == "BatchGetItem":
        return [
            item("BatchGetItem", table, key)
            for table, spec in (params.get("RequestItems") or {}).items()
            for key in spec.get("Keys", [])
        ]
    if "TableName" in params:
        return [Check(f"dynamodb:{op}", _table_arn(call, params["TableName"]))]
    raise UnmappedCall(f"dynamodb:{op}: no table")


# KMS --------------------------------------------------------------------
def kms_backend(account: str, region: str) -> Any:
    """moto's KMS in ``region``."""
    return _moto("moto.kms.models", "kms_backends")[account][region]


def kms_key(account: str, region: str, key_id: str) -> Any:
    """moto's key for any key id, key ARN, alias name or alias ARN; None when there is none."""
    if key_id.startswith("arn:"):
        region = key_id.split(":")[3] or region
    backend = kms_backend(account, region)
    try:
        raw = backend.any_id_to_key_id(key_id)
    except Exception:  # an unknown alias: KMS answers NotFoundException itself
        return None
    return backend.keys.get(raw) if raw else None


def key_context(account: str, region: str, key: Any, now: float | None = None) -> dict[str, ContextValue]:
    """The condition keys a key contributes: its aliases and tags, once they can authorize.

    For :data:`ABAC_LAG_SECONDS` after CreateKey they are absent: AWS documents that tag- and
    alias-based permissions may take up to five minutes to apply to a new key.
    """
    created = getattr(key, "creation_date", None)
    if created is not None and (now or time.time()) - float(created) < ABAC_LAG_SECONDS:
        return {}
    backend = kms_backend(account, region)
    context: dict[str, ContextValue] = {}
    aliases = sorted(key.aliases)
    if aliases:
        context["kms:ResourceAliases"] = aliases
    for tag in backend.tagger.list_tags_for_resource(key.id).get("Tags", []):
        context[f"aws:ResourceTag/{tag['TagKey']}"] = str(tag["TagValue"])
    return context


def key_policy(key: Any) -> dict[str, Any]:
    """A key's key policy, parsed."""
    policy = key.policy
    return json.loads(policy) if isinstance(policy, str) else dict(policy)


def _encryption_context(params: Mapping[str, Any]) -> dict[str, ContextValue]:
    context = dict(params.get("EncryptionContext") or {})
    values: dict[str, ContextValue] = {f"kms:EncryptionContext:{k}": str(v) for k, v in context.items()}
    if context:
        values["kms:EncryptionContextKeys"] = sorted(context)
    return values


def _request_tags(
    tags: Any, key_name: str = "TagKey", value_name: str = "TagValue"
) -> dict[str, ContextValue]:
    values: dict[str, ContextValue] = {}
    for tag in tags or []:
        values[f"aws:RequestTag/{tag[key_name]}"] = str(tag[value_name])
    if tags:
        values["aws:TagKeys"] = sorted(str(t[key_name]) for t in tags)
    return values


def _ciphertext_key(params: Mapping[str, Any]) -> str | None:
    blob = params.get("CiphertextBlob")
    if not blob:
        return None
    deserialize = _moto("moto.kms.utils", "_deserialize_ciphertext_blob")
    try:
        return str(deserialize(ciphertext_blob=base64.b64decode(blob)).key_id)
    except Exception:
        return None


def kms_key_check(
    account: str, region: str, action: str, key: Any, context: Mapping[str, ContextValue] | None = None
) -> Check:
    """``action`` on ``key``, under its key policy."""
    values: dict[str, ContextValue] = {"kms:CallerAccount": account}
    values.update(key_context(account, region, key))
    values.update(context or {})
    return Check(action, str(key.arn), values, key_policy(key), account)


def _kms(call: Call) -> list[Check]:
    params, op = call.params, call.operation
    action = f"kms:{op}"
    if op in ("CreateKey", "ListKeys", "ListAliases", "GenerateRandom", "ConnectCustomKeyStore"):
        tags = _request_tags(params.get("Tags")) if op == "CreateKey" else {}
        if op == "ListAliases" and params.get("KeyId"):
            key = kms_key(call.account, call.region, str(params["KeyId"]))
            if key is not None:
                return [kms_key_check(call.account, call.region, action, key)]
        return [Check(action, "*", tags), *_tag_on_create(call, call.region, params.get("Tags"))]
    if op in ("CreateAlias", "DeleteAlias", "UpdateAlias"):
        alias = str(params["AliasName"])
        alias_arn = alias if alias.startswith("arn:") else f"arn:aws:kms:{call.region}:{call.account}:{alias}"
        checks = [Check(action, alias_arn)]
        # UpdateAlias is authorized on the alias, the key it points at now and the new target
        # key; CreateAlias on the alias and its target; DeleteAlias on the alias and its key.
        targets: list[Any] = (
            [params.get("TargetKeyId")]
            if op == "CreateAlias"
            else [alias]
            if op == "DeleteAlias"
            else [alias, params.get("TargetKeyId")]
        )
        for target in targets:
            key = kms_key(call.account, call.region, str(target))
            if key is not None:
                checks.append(kms_key_check(call.account, call.region, action, key))
        return checks
    key_id = params.get("KeyId") or params.get("DestinationKeyId") or _ciphertext_key(params)
    if not key_id:
        raise UnmappedCall(f"{action}: no key")
    key = kms_key(call.account, call.region, str(key_id))
    if key is None:
        return []  # KMS answers NotFoundException before any authorization
    context: dict[str, ContextValue] = _encryption_context(params)
    if str(key_id).startswith("alias/") or ":alias/" in str(key_id):
        context["kms:RequestAlias"] = "alias/" + str(key_id).split("alias/", 1)[1]
    if op in ("TagResource",):
        context.update(_request_tags(params.get("Tags")))
    checks = [kms_key_check(call.account, call.region, action, key, context)]
    if op == "ReplicateKey":
        # The replica is a new key in the replica region: kms:CreateKey there (IAM, and its tags).
        replica_region = str(params["ReplicaRegion"])
        create = Check(
            "kms:CreateKey", "*", {**_request_tags(params.get("Tags")), "aws:RequestedRegion": replica_region}
        )
        checks.append(create)
        checks += _tag_on_create(call, replica_region, params.get("Tags"))
    return checks


def _tag_on_create(call: Call, region: str, tags: Any) -> list[Check]:
    """CreateKey and ReplicateKey with ``Tags`` also need ``kms:TagResource`` in an IAM policy
    covering every key of the account in ``region`` (KMS: "the caller must have kms:TagResource
    permission in an IAM policy"): checked on a key ARN no statement names, so only a statement
    for ``key/*`` (or ``*``) allows it, under a key policy that leaves the decision to IAM."""
    if not tags:
        return []
    context = {**_request_tags(tags), "aws:RequestedRegion": region, "kms:CallerAccount": call.account}
    unnamed = f"arn:aws:kms:{region}:{call.account}:key/00000000-0000-0000-0000-000000000000"
    to_iam = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{call.account}:root"},
                "Action": "kms:TagResource",
                "Resource": "*",
            }
        ],
    }
    return [Check("kms:TagResource", unnamed, context, to_iam, iam_only=True)]


# Secrets Manager --------------------------------------------------------
_AWS_MANAGED_SECRETS_KEY = "alias/aws/secretsmanager"


def _secrets_backend(call: Call) -> Any:
    return _moto("moto.secretsmanager.models", "secretsmanager_backends")[call.account][call.region]


def _secret(call: Call, secret_id: str) -> Any:
    backend = _secrets_backend(call)
    return backend.secrets.get(secret_id) if secret_id in backend.secrets else None


def _secret_context(secret: Any) -> dict[str, ContextValue]:
    return {f"aws:ResourceTag/{t['Key']}": str(t["Value"]) for t in (getattr(secret, "tags", None) or [])}


def _secret_policy(secret: Any) -> dict[str, Any] | None:
    policy = getattr(secret, "policy", None)
    return json.loads(policy) if isinstance(policy, str) and policy else None


def _via_secrets_manager(
    call: Call, key_id: str | None, secret_arn: str, actions: tuple[str, ...]
) -> list[Check]:
    """The KMS operations Secrets Manager performs as the caller under a customer managed key."""
    if not key_id or key_id in (
        _AWS_MANAGED_SECRETS_KEY,
        f"arn:aws:kms:{call.region}:{call.account}:{_AWS_MANAGED_SECRETS_KEY}",
    ):
        return []  # the AWS managed key's policy lets the account use it through Secrets Manager
    key = kms_key(call.account, call.region, key_id)
    if key is None:
        return []
    context: dict[str, ContextValue] = {
        "kms:ViaService": f"secretsmanager.{call.region}.amazonaws.com",
        "kms:EncryptionContext:SecretARN": secret_arn,
        "kms:EncryptionContextKeys": ["SecretARN", "SecretVersionId"],
    }
    checks = [kms_key_check(call.account, call.region, action, key, context) for action in actions]
    for check in checks:
        check.via = "secretsmanager"
    return checks


def _secretsmanager(call: Call) -> list[Check]:
    params, op = call.params, call.operation
    action = f"secretsmanager:{op}"
    if op in ("ListSecrets", "GetRandomPassword", "BatchGetSecretValue"):
        return [Check(action, "*")]
    if op == "CreateSecret":
        name = str(params["Name"])
        arn = f"arn:aws:secretsmanager:{call.region}:{call.account}:secret:{name}-xxxxxx"
        checks = [Check(action, arn, _request_tags(params.get("Tags"), "Key", "Value"))]
        if params.get("SecretString") is not None or params.get("SecretBinary") is not None:
            checks += _via_secrets_manager(
                call, params.get("KmsKeyId"), arn, ("kms:GenerateDataKey", "kms:Decrypt")
            )
        return checks
    secret_id = str(params.get("SecretId", ""))
    secret = _secret(call, secret_id)
    if secret is None:
        return []  # ResourceNotFoundException, answered by Secrets Manager itself
    context = _secret_context(secret)
    if op == "TagResource":
        context.update(_request_tags(params.get("Tags"), "Key", "Value"))
    checks = [Check(action, str(secret.arn), context, _secret_policy(secret))]
    key_id = getattr(secret, "kms_key_id", None)
    if op in ("PutSecretValue", "UpdateSecret") and (
        params.get("SecretString") is not None or params.get("SecretBinary") is not None
    ):
        checks += _via_secrets_manager(
            call, params.get("KmsKeyId") or key_id, str(secret.arn), ("kms:GenerateDataKey", "kms:Decrypt")
        )
    if op == "GetSecretValue":
        checks += _via_secrets_manager(call, key_id, str(secret.arn), ("kms:Decrypt",))
    return checks


# S3 ---------------------------------------------------------------------
# S3 operations (as localcloud/awscalls.py names them) whose IAM action has another name.
S3_IAM_ACTIONS = {
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "HeadObject": "s3:GetObject",
    "CopyObject": "s3:PutObject",
    "PostObject": "s3:PutObject",
    "DeleteObjects": "s3:DeleteObject",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
}
_S3_HEADERS = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id")


def _bucket_policy(call: Call, bucket: str) -> dict[str, Any] | None:
    backend = _moto("moto.s3.models", "s3_backends")[call.account]["global"]
    found = backend.buckets.get(bucket)
    policy = getattr(found, "policy", None) if found is not None else None
    if not policy:
        return None
    return dict(json.loads(policy.decode() if isinstance(policy, bytes) else policy))


def deleted_objects(body: bytes) -> list[tuple[str, bool]]:
    """DeleteObjects' keys, and whether each names a version."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - our own clients' request to moto
    except ElementTree.ParseError as exc:
        raise UnmappedCall("s3:DeleteObjects: the body is no XML") from exc
    found = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Object":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
        found.append((fields.get("Key", ""), bool(fields.get("VersionId"))))
    return found


def _s3(call: Call) -> list[Check]:
    op = call.operation
    bucket, key = str(call.params["Bucket"]), str(call.params["Key"])
    headers: Mapping[str, str] = call.params["headers"]
    if op == "DeleteObjects":  # authorized object by object
        policy = _bucket_policy(call, bucket)
        return [
            Check(
                "s3:DeleteObjectVersion" if versioned else "s3:DeleteObject",
                f"arn:aws:s3:::{bucket}/{name}",
                {},
                policy,
            )
            for name, versioned in deleted_objects(bytes(call.params.get("body") or b""))
        ]
    action = S3_IAM_ACTIONS.get(op, f"s3:{op}")
    if action.endswith("ObjectRetention") and op.startswith("Put"):
        action = "s3:PutObjectRetention"
    if op in ("GetObject", "DeleteObject") and "versionId=" in str(call.environ.get("QUERY_STRING", "")):
        action = f"{action}Version"
    resource = f"arn:aws:s3:::{bucket}/{key}" if key else f"arn:aws:s3:::{bucket}"
    context: dict[str, ContextValue] = {f"s3:{h}": headers[h] for h in _S3_HEADERS if h in headers}
    return [Check(action, resource, context, _bucket_policy(call, bucket))]


# EventBridge ------------------------------------------------------------
def _events(call: Call) -> list[Check]:
    params, op = call.params, call.operation
    if op != "PutEvents":
        name = str(params.get("EventBusName") or params.get("Name") or "default")
        arn = (
            name
            if name.startswith("arn:")
            else f"arn:aws:events:{call.region}:{call.account}:event-bus/{name}"
        )
        return [Check(f"events:{op}", arn)]
    checks = []
    for entry in params.get("Entries", []):
        name = str(entry.get("EventBusName") or "default")
        arn = (
            name
            if name.startswith("arn:")
            else f"arn:aws:events:{call.region}:{call.account}:event-bus/{name}"
        )
        context: dict[str, ContextValue] = {
            "events:source": str(entry.get("Source", "")),
            "events:detail-type": str(entry.get("DetailType", "")),
        }
        checks.append(Check("events:PutEvents", arn, context, _bus_policy(call, arn)))
    return checks


def _bus_policy(call: Call, arn: str) -> dict[str, Any] | None:
    backend = _moto("moto.events.models", "events_backends")[call.account][call.region]
    bus = backend.event_buses.get(arn.rsplit("/", 1)[-1])
    policy = bus.policy if bus is not None else None
    if not policy:
        return None
    return dict(json.loads(policy) if isinstance(policy, str) else policy)


# Step Functions, SQS, SNS, Lambda -------------------------------------------
def _states(call: Call) -> list[Check]:
    params = call.params
    arn = params.get("executionArn") or params.get("stateMachineArn")
    if not arn:
        raise UnmappedCall(f"states:{call.operation}: no state machine or execution")
    return [Check(f"states:{call.operation}", str(arn))]


def _queue_arn(call: Call, url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return f"arn:aws:sqs:{call.region}:{call.account}:{name}"


def _queue_policy(call: Call, name: str) -> dict[str, Any] | None:
    backend = _moto("moto.sqs.models", "sqs_backends")[call.account][call.region]
    queue = backend.queues.get(name)
    policy = getattr(queue, "policy", None) if queue is not None else None
    return dict(json.loads(policy)) if policy else None


def _sqs(call: Call) -> list[Check]:
    params = call.params
    if call.operation == "GetQueueUrl":
        name = str(params["QueueName"])
        return [
            Check(
                "sqs:GetQueueUrl",
                f"arn:aws:sqs:{call.region}:{call.account}:{name}",
                {},
                _queue_policy(call, name),
            )
        ]
    url = params.get("QueueUrl")
    if not url:
        raise UnmappedCall(f"sqs:{call.operation}: no queue")
    arn = _queue_arn(call, str(url))
    action = call.operation.replace("Batch", "")  # SendMessageBatch is authorized as SendMessage
    return [Check(f"sqs:{action}", arn, {}, _queue_policy(call, arn.rsplit(":", 1)[-1]))]


def _sns(call: Call) -> list[Check]:
    arn = call.params.get("TopicArn") or call.params.get("TargetArn")
    if not arn:
        raise UnmappedCall(f"sns:{call.operation}: no topic")
    return [Check(f"sns:{call.operation}", str(arn))]


def _lambda(call: Call) -> list[Check]:
    found = _LAMBDA_INVOKE.search(str(call.environ.get("PATH_INFO", "")))
    if not found:
        raise UnmappedCall("lambda: only Invoke is mapped")
    name = unquote(found.group(1))
    arn = name if name.startswith("arn:") else f"arn:aws:lambda:{call.region}:{call.account}:function:{name}"
    return [Check("lambda:InvokeFunction", arn)]


_MAPPERS: dict[str, Callable[[Call], list[Check]]] = {
    "dynamodb": _dynamodb,
    "kms": _kms,
    "secretsmanager": _secretsmanager,
    "s3": _s3,
    "events": _events,
    "states": _states,
    "sqs": _sqs,
    "sns": _sns,
    "lambda": _lambda,
}
