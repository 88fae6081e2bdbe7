"""Tenant data routes behind the authorizer: files (and presigned uploads), records and secrets.

File bodies are raw bytes (send ``Content-Type: application/octet-stream``; ask for them back with
``Accept: application/octet-stream`` first, or the answer is 406: API Gateway sends bytes only then,
and base64 text otherwise); the key is the rest of the path after ``files/``, percent-decoded once.
A file over :data:`MAX_API_FILE_BYTES` does not fit a Lambda invocation as base64: 413, pointing to
presigned uploads and downloads.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from tenant_security import services
from tenant_security.api_reference import ApiTag, idempotent_reply, reply
from tenant_security.context import current_caller, current_tenant
from tenant_security.errors import BadRequest, NotAcceptable, PayloadTooLarge
from tenant_security.http import make_resolver
from tenant_security.idempotency import IdempotencyKey, creation_id
from tenant_security.models.replies import (
    DownloadLink,
    FileList,
    FileWritten,
    RecordCreated,
    RecordView,
    SecretView,
    SecretWritten,
    UploadCreated,
)
from tenant_security.observability import logger, metrics, tracer
from tenant_security.records import MAX_FIELD_NAME, MAX_SENSITIVE_FIELDS
from tenant_security.storage.file_keys import (
    MAX_API_FILE_BYTES,
    MAX_KEY_BYTES,
    MAX_UPLOAD_BYTES,
    attachment,
    decode_next,
)
from tenant_security.tenant_secrets import MAX_VALUE_BYTES

settings = services.settings()
FILES = "/tenants/{tenant_id}/files/"
# The API's binaryMediaTypes (template.yaml): the one type API Gateway turns base64 into bytes for.
FILE_MEDIA_TYPE = "application/octet-stream"
# What GET of a file answers (OpenAPI): its bytes.
FILE_BYTES: dict[int, Any] = {
    200: {
        "description": "The file's bytes",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    406: {"description": "Accept does not name application/octet-stream first"},
    413: {"description": "The file is larger than the API returns: POST /tenants/{tenant_id}/downloads"},
}
app = make_resolver(max_json_body_bytes=settings.max_json_body_bytes, raw_body_prefixes=(FILES,))
app.use_before_validation(services.request_middleware())


class SecretValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VALUE_BYTES)]


@app.put(
    "/tenants/<tenant_id>/secrets/<name>",
    summary="Store a secret",
    description="An application secret of the tenant, in Secrets Manager under the tenant's secrets key; "
    "a new value is a new version.",
    tags=[ApiTag.DATA],
    responses=reply(SecretWritten),
)
def put_secret(tenant_id: str, name: str, body: SecretValue) -> dict[str, Any]:
    return services.tenant_secrets().put(current_tenant(app), name, body.value)


@app.get(
    "/tenants/<tenant_id>/secrets/<name>",
    summary="Read a secret",
    description="The secret's current value and version; 404 for a name the tenant has not set.",
    tags=[ApiTag.DATA],
    responses=reply(SecretView),
)
def get_secret(tenant_id: str, name: str) -> dict[str, Any]:
    return services.tenant_secrets().get(current_tenant(app).tenant_id, name)


FieldName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FIELD_NAME)]


class NewRecord(BaseModel):
    """A record: any JSON object; the top-level fields named in ``sensitive`` are stored encrypted."""

    model_config = ConfigDict(extra="forbid")
    data: dict[FieldName, JsonValue]
    sensitive: list[FieldName] = Field(default_factory=list, max_length=MAX_SENSITIVE_FIELDS)


@app.post(
    "/tenants/<tenant_id>/records",
    status_code=201,
    middlewares=[services.idempotency_middleware()],
    summary="Create a record",
    description="A JSON object stored in the tenant's own database (or schema) through its own login; the "
    "top-level fields named in sensitive are encrypted under the tenant's data key first. "
    "Send Idempotency-Key to retry safely: a repeat returns the same record.",
    tags=[ApiTag.DATA],
    responses=idempotent_reply(RecordCreated, 201, "The new record"),
)
def create_record(
    tenant_id: str, body: NewRecord, idempotency_key: IdempotencyKey = None
) -> Response[dict[str, Any]]:
    created = services.tenant_records().create(
        current_tenant(app), current_caller(app).user, body.data, body.sensitive, creation_id(app)
    )
    return Response(status_code=201, content_type="application/json", body=created)


@app.get(
    "/tenants/<tenant_id>/records/<record_id>",
    summary="Read a record",
    description="The record with its sensitive fields decrypted; 404 when the tenant has no such record.",
    tags=[ApiTag.DATA],
    responses=reply(RecordView),
)
def get_record(tenant_id: str, record_id: str) -> dict[str, Any]:
    # the path's tenant, as the middleware read it: its isolation says whether it has a database
    return services.tenant_records().get(current_tenant(app), record_id)


def _file_key() -> str:
    """The greedy ``{key+}``, percent-decoded by the resolver (tenant_security.http)."""
    return str((app.current_event.path_parameters or {}).get("key", ""))


def _require_binary_accept() -> None:
    """406 unless the request's first Accept media type is :data:`FILE_MEDIA_TYPE`.

    API Gateway decodes a base64 proxy response to bytes only when the first media type of
    ``Accept`` matches the API's binaryMediaTypes; for any other (curl's and most libraries'
    ``*/*``, none at all) it sends the base64 text as the body -- a corrupt download that says 200.
    """
    accept = app.current_event.get_header_value("Accept", default_value="", case_sensitive=False) or ""
    first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
    if first != FILE_MEDIA_TYPE:
        raise NotAcceptable(f"send Accept: {FILE_MEDIA_TYPE} (first) to get a file's bytes")


def _raw_body() -> bytes:
    event = app.current_event
    if not event.body:
        return b""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(event.body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("body is not valid base64") from None
    return event.body.encode()


def _too_large_for_the_api(what: str, pointer: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what} larger than the API carries ({MAX_API_FILE_BYTES} bytes, the Lambda payload limit "
        f"as base64): {pointer}"
    )


@app.put(
    "/tenants/<tenant_id>/files/.+",
    summary="Write a file",
    tags=[ApiTag.DATA],
    responses=reply(FileWritten),
    description=f"Raw bytes (Content-Type: {FILE_MEDIA_TYPE}), at most {MAX_API_FILE_BYTES} bytes "
    "(Lambda's 6 MiB as base64); 413 above it: POST /tenants/{tenant_id}/uploads for larger files.",
)
def put_file(tenant_id: str) -> dict[str, Any]:
    tenant = current_tenant(app)
    data = _raw_body()
    if len(data) > MAX_API_FILE_BYTES:
        raise _too_large_for_the_api(
            "file", f'POST /tenants/{tenant.tenant_id}/uploads {{"key", "size"}} for a presigned upload'
        )
    return services.tenant_files().put(tenant, _file_key(), data, current_caller(app).user)


# No return annotation on purpose: Powertools validates an annotated response by encoding it as
# text, which binary file contents are not.
@app.get(
    "/tenants/<tenant_id>/files/.+",
    summary="Read a file",
    tags=[ApiTag.DATA],
    responses=FILE_BYTES,
    description=f"The file's bytes; send Accept: {FILE_MEDIA_TYPE} as the first media type (406 otherwise). "
    f"Files over {MAX_API_FILE_BYTES} bytes: POST /tenants/{{tenant_id}}/downloads.",
)
def get_file(tenant_id: str):  # type: ignore[no-untyped-def]
    _require_binary_accept()
    key = _file_key()
    data = services.tenant_files().get(current_tenant(app).tenant_id, key)
    # always a download, never rendered by a browser as the API's own page
    return Response(
        status_code=200,
        content_type="application/octet-stream",
        body=data,
        headers={"Content-Disposition": attachment(key)},
    )


@app.delete(
    "/tenants/<tenant_id>/files/.+",
    summary="Delete a file",
    description="Deletes the file at the key (the rest of the path after files/); its storage is released "
    "from the quota.",
    tags=[ApiTag.DATA],
    responses={204: {"description": "Deleted"}},
)
def delete_file(tenant_id: str) -> Response[str]:
    services.tenant_files().delete(current_tenant(app).tenant_id, _file_key())
    return Response(status_code=204, body="")


class NewUpload(BaseModel):
    """A file to send straight to S3: its key and exact size in bytes."""

    model_config = ConfigDict(extra="forbid")
    key: Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_BYTES)]
    size: Annotated[int, Field(strict=True, ge=1, le=MAX_UPLOAD_BYTES)]


class FileRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_BYTES)]


@app.post(
    "/tenants/<tenant_id>/uploads",
    status_code=201,
    middlewares=[services.idempotency_middleware()],
    summary="Start a presigned upload",
    description="For files larger than the API carries: a presigned S3 POST for one file of exactly size "
    "bytes at key, reserved against the storage quota (413 when it cannot fit). Send the file "
    "to url with fields, then POST .../uploads/{upload_id}/complete. Send Idempotency-Key to "
    "retry safely.",
    tags=[ApiTag.DATA],
    responses=idempotent_reply(UploadCreated, 201, "The presigned upload"),
)
def create_upload(
    tenant_id: str, body: NewUpload, idempotency_key: IdempotencyKey = None
) -> Response[dict[str, Any]]:
    created = services.tenant_files().upload(current_tenant(app), body.key, body.size, creation_id(app))
    return Response(status_code=201, content_type="application/json", body=created)


@app.post(
    "/tenants/<tenant_id>/uploads/<upload_id>/complete",
    summary="Complete a presigned upload",
    description="After the file reached S3: checks its size, moves it to its key and settles the storage "
    "quota; once per upload.",
    tags=[ApiTag.DATA],
    responses=reply(FileWritten),
)
def complete_upload(tenant_id: str, upload_id: str) -> dict[str, Any]:
    return services.tenant_files().complete(current_tenant(app), upload_id, current_caller(app).user)


@app.post(
    "/tenants/<tenant_id>/downloads",
    summary="Get a presigned download",
    description="A presigned S3 GET for a file uploaded through a presigned upload (409 for one the API "
    "encrypted: read it with GET .../files/{key}).",
    tags=[ApiTag.DATA],
    responses=reply(DownloadLink),
)
def create_download(tenant_id: str, body: FileRef) -> dict[str, Any]:
    return services.tenant_files().download(current_tenant(app).tenant_id, body.key)


@app.get(
    "/tenants/<tenant_id>/files",
    summary="List files",
    description="The tenant's files in key order, optionally under a prefix; next pages with ?next=.",
    tags=[ApiTag.DATA],
    responses=reply(FileList),
)
def list_files(
    tenant_id: str,
    prefix: Annotated[str, Query(max_length=512)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(alias="next", max_length=800)] = None,
) -> dict[str, Any]:
    return services.tenant_files().list(
        current_tenant(app).tenant_id, prefix, limit, decode_next(after) if after else None
    )


class Sweep(StrEnum):
    """The data API's scheduled work (template.yaml: the Schedule events' Input)."""

    EXPIRED_UPLOADS = "expired-uploads"
    EXPIRED_VERSIONS = "expired-versions"


def sweep(task: str) -> dict[str, Any]:
    """Make the storage quota equal what S3 keeps: expired uploads (their staging keys emptied,
    the never completed released), keys whose write had an outcome S3 did not tell, noncurrent
    versions lifecycle removed."""
    files = services.tenant_files()
    if task == Sweep.EXPIRED_UPLOADS:
        return {"uploads_released": files.release_expired_uploads(), "keys_settled": files.settle_unsettled()}
    if task == Sweep.EXPIRED_VERSIONS:
        released = sum(files.release_expired_versions(t.tenant_id) for t in services.tenant_store().all())
        return {"versions_released": released}
    raise ValueError(f"unknown task {task!r}")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway proxy entry point; a scheduled ``{"task"}`` runs the storage sweep."""
    if "task" in event and "httpMethod" not in event:
        return sweep(str(event["task"]))
    return app.resolve(event, context)
