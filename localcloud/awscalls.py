"""moto's server, counting the AWS calls it answers (by caller, service and operation): what a
request or a workflow costs, as a benchmark wants to know, and which actions each function uses
(every function signs with its own access key), as the IAM check wants to know.

With an :class:`~localcloud.iam.enforce.Authorizer` set (:meth:`CountingMotoServer.enforce`),
each call is authorized before moto sees it, as the account would authorize it; a denied call is
answered with the service's AccessDenied and never reaches moto."""

from __future__ import annotations

import io
import re
import threading
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

from werkzeug.serving import BaseWSGIServer, make_server

_REASONS = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error"}
_TABLE_NAME = re.compile(rb'"TableName"\s*:\s*"([A-Za-z0-9_.-]{3,255})"')
_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/")


def remember_backends_by_host(app: Any) -> None:
    """moto's dispatcher finds a request's service anew for every request, under one lock: it
    lists moto's package directory (an ``isdir`` per service) and tries every service's URL
    pattern -- a tenth of the local cloud's own time under load. The answer for a host never
    changes, so it is kept (what moto answers is unchanged: the same backend for the same host)."""
    found: dict[str | None, Any] = {}
    lookup = app.get_backend_for_host

    def get_backend_for_host(host: str | None) -> Any:
        if host not in found:
            found[host] = lookup(host)  # called under the dispatcher's own lock
        return found[host]

    app.get_backend_for_host = get_backend_for_host


class CountingMotoServer:
    """moto in server mode on a thread, with a call counter."""

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        self.calls: Counter[str] = Counter()
        # DynamoDB calls by caller, operation and table ("caller|GetItem|table"): which store a
        # request reads, for the benchmarks that bound a cache's reads
        self.table_calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.authorizer: Any = None  # localcloud.iam.enforce.Authorizer, once the stack exists
        app = DomainDispatcherApplication(create_backend_app)
        remember_backends_by_host(app)
        self._server: BaseWSGIServer = make_server(
            host, port, self._counting(app), threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="moto"
        )

    def _counting(self, app: Any) -> Any:
        def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
            if not environ.get("PATH_INFO", "").startswith("/moto-api"):
                match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
                caller, region, service = (
                    (match.group(1), match.group(2), match.group(3)) if match else ("-", "", "unsigned")
                )
                operation = (
                    s3_operation(environ)
                    if service == "s3"
                    else environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
                    or environ.get("REQUEST_METHOD")
                )
                with self._lock:
                    self.calls[f"{caller}|{service}:{operation}"] += 1
                authorizer = self.authorizer
                if authorizer is not None and match is not None:
                    body = b""
                    # S3's checks need no body (an upload may be large), but DeleteObjects' key list
                    if service != "s3" or operation == "DeleteObjects":
                        length = int(environ.get("CONTENT_LENGTH") or 0)
                        body = environ["wsgi.input"].read(length) if length else b""
                        environ["wsgi.input"] = io.BytesIO(body)
                    if service == "dynamodb":
                        self._count_table(caller, str(operation), body)
                    denial = authorizer.authorize(environ, body, caller, service, region)
                    if denial is not None:
                        status = f"{denial.status} {_REASONS.get(denial.status, 'Error')}"
                        start_response(status, [*denial.headers, ("Content-Length", str(len(denial.body)))])
                        return [denial.body]
            return app(environ, start_response)

        return wsgi

    def _count_table(self, caller: str, operation: str, body: bytes) -> None:
        match = _TABLE_NAME.search(body[:4096])
        if match is not None:
            with self._lock:
                self.table_calls[f"{caller}|{operation}|{match.group(1).decode()}"] += 1

    def table_snapshot(self) -> dict[str, int]:
        """DynamoDB calls by ``caller|operation|table``."""
        with self._lock:
            return dict(self.table_calls)

    def enforce(self, authorizer: Any) -> None:
        """Authorize every call from now on with ``authorizer`` (None: stop)."""
        self.authorizer = authorizer

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---------------------------------------------------------------------- S3's REST operations
# S3 names no operation in a header: it is the method, whether the path names an object, and the
# sub-resource in the query. Path-style addressing (the local endpoint is an IP address).
_S3_BUCKET_SUBRESOURCES: dict[tuple[str, str], str] = {
    ("GET", "versions"): "ListObjectVersions",
    ("GET", "encryption"): "GetBucketEncryption",
    ("PUT", "encryption"): "PutBucketEncryption",
    ("GET", "object-lock"): "GetObjectLockConfiguration",
    ("PUT", "object-lock"): "PutObjectLockConfiguration",
    ("GET", "policy"): "GetBucketPolicy",
    ("PUT", "policy"): "PutBucketPolicy",
    ("GET", "versioning"): "GetBucketVersioning",
    ("PUT", "versioning"): "PutBucketVersioning",
    ("GET", "tagging"): "GetBucketTagging",
    ("PUT", "tagging"): "PutBucketTagging",
    ("GET", "lifecycle"): "GetBucketLifecycleConfiguration",
    ("PUT", "lifecycle"): "PutBucketLifecycleConfiguration",
    ("PUT", "publicAccessBlock"): "PutPublicAccessBlock",
    ("GET", "location"): "GetBucketLocation",
    ("POST", "delete"): "DeleteObjects",
}
_S3_BUCKET = {
    "GET": "ListObjects",
    "HEAD": "HeadBucket",
    "PUT": "CreateBucket",
    "DELETE": "DeleteBucket",
    "POST": "PostObject",
}
_S3_OBJECT = {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}


def s3_operation(environ: dict[str, Any]) -> str:
    """The S3 API operation of a path-style request (``PutObject``, ``HeadBucket``...)."""
    method = str(environ.get("REQUEST_METHOD", ""))
    path = str(environ.get("PATH_INFO", "")).lstrip("/")
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    if "/" in path and path.split("/", 1)[1]:
        if "retention" in query:
            return f"{method.title()}ObjectRetention"
        if method == "PUT" and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
            return "CopyObject"
        operation = _S3_OBJECT.get(method, method)
        return f"{operation}Version" if "versionId" in query and method in ("GET", "DELETE") else operation
    for (verb, name), operation in _S3_BUCKET_SUBRESOURCES.items():
        if verb == method and name in query:
            return operation
    if method == "GET" and query.get("list-type") == ["2"]:
        return "ListObjectsV2"
    return _S3_BUCKET.get(method, method)
