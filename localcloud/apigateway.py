"""The REST API of the template, served the way API Gateway serves it.

Reads the RestApi's swagger body (from the transformed template): routes and their ``aws_proxy``
integrations, the REQUEST authorizer (identity sources, result TTL), binary media types and the
gateway responses. Per request: match the route (unknown → MISSING_AUTHENTICATION_TOKEN);
authorize (missing identity source → 401 without calling the authorizer; the policy evaluated
against the method ARN, explicit Deny first, wildcards ``*`` and ``?``; decisions cached per
identity-source values for the TTL); then invoke the integration with the v1 proxy event.

What API Gateway (REST, v1 proxy event) hands Lambda, and what the local one does the same way:

- **Paths stay percent-encoded.** ``path``, ``requestContext.path`` and every ``pathParameters``
  value are the bytes the client sent, not decoded: ``/files/a%2Fb%20c`` gives ``path``
  ``/files/a%2Fb%20c`` and ``{"key": "a%2Fb%20c"}``; ``/users/a%40b`` gives ``a%40b`` and a literal
  ``+`` stays ``+``. Routes are matched on the decoded path, so an encoded ``%2F`` separates
  segments (it cannot stay inside a ``{name}`` parameter) and is kept inside a greedy ``{name+}``.
  Sources: live captures of REST, HTTP API and Function URL events (hotsock/voker#8, as cited by
  middleapi/standard-server#93: REST keeps the encoding, HTTP APIs decode); serverless/serverless#5037
  (``/posts/%40`` reaches the REST handler as ``%40``); a REST path parameter cannot carry an
  encoded ``/`` (dev.classmethod.jp, "amazon-api-gateway-path-parameter-slash").
- **Query strings are decoded** (``+`` as a space, ``%2B`` as ``+``; aws/aws-cdk#19827,
  micronaut-projects/micronaut-aws#1412); bytes that are not UTF-8 become U+FFFD.
- **Binary**: a request body is base64 (``isBase64Encoded``) when its Content-Type matches
  ``binaryMediaTypes``; a response with ``isBase64Encoded`` is decoded to bytes only when the
  *first* media type of the request's ``Accept`` matches ``binaryMediaTypes``; otherwise the base64
  text goes out as it is (docs.aws.amazon.com/apigateway/latest/developerguide/
  api-gateway-payload-encodings.html: "API Gateway uses the first Accept header from clients to
  determine if a response should return binary media").
- **Limits**: a request body over 10 MB (10,485,760 bytes) is 413 before the integration
  (REQUEST_TOO_LARGE); an event Lambda refuses as over its 6 MB is 413 too (REQUEST_TOO_LARGE).
- **Integration errors**: a throttled invocation (Lambda's 429) is 500 (re:Post, "API Gateway proxy
  integration does not forward Lambda throttling (HTTP 429) to client"); a function error, a
  Lambda timeout, an oversized or malformed proxy
  response (not an object; ``statusCode`` missing or not an integer; ``body`` not a string;
  ``headers`` not strings; ``multiValueHeaders`` not lists of strings; ``isBase64Encoded`` not a
  boolean; any other key; a base64 body that does not decode) are 502 ``Internal server error``
  (knowledge center "malformed-502-api-gateway"); 504 only when no answer came within the
  integration timeout (29 s by default, ``timeoutInMillis``).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from localcloud.lambdas import InvokeResult, LambdaRuntime, RefusalCode

log = logging.getLogger("localcloud.apigateway")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit
INTEGRATION_TIMEOUT_MS = 29_000  # API Gateway's default (and, for REST APIs, usual) limit
_PROXY_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
_HEX = frozenset("0123456789abcdefABCDEF")
STATS_PATH = "/__localcloud/stats"
_FUNCTION_IN_URI = re.compile(r"functions/(arn:[^/]+)/invocations")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# API Gateway's own answers when a gateway response is not customised.
_DEFAULT_RESPONSES = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "UNAUTHORIZED": (401, "Unauthorized"),
    "ACCESS_DENIED": (403, "User is not authorized to access this resource"),
    "AUTHORIZER_FAILURE": (500, None),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, None),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "INTEGRATION_FAILURE": (502, "Internal server error"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "THROTTLED": (429, "Too Many Requests"),
    "BAD_REQUEST_BODY": (400, "Invalid request body"),
}


class _Request(Request):
    # Also bounds bodies sent without a Content-Length (chunked).
    max_content_length = MAX_PAYLOAD_BYTES


@dataclass
class Route:
    resource: str
    method: str  # upper case, or ANY
    pattern: re.Pattern[str]
    function_arn: str
    authorizer: str | None
    specificity: tuple[int, int, int]
    timeout_ms: int = INTEGRATION_TIMEOUT_MS


@dataclass
class Authorizer:
    name: str
    function_arn: str
    identity_sources: list[str]
    ttl: int
    kind: str = "request"


@dataclass
class _CacheEntry:
    expires: float
    principal_id: str
    policy: dict[str, Any]
    context: dict[str, Any]


def _route_regex(resource: str) -> tuple[re.Pattern[str], tuple[int, int, int]]:
    parts = [p for p in resource.split("/") if p]
    regex, literal, greedy = "", 0, 0
    for part in parts:
        if part.startswith("{") and part.endswith("+}"):
            regex += f"/(?P<{part[1:-2]}>.+)"
            greedy += 1
        elif part.startswith("{") and part.endswith("}"):
            regex += f"/(?P<{part[1:-1]}>[^/]+)"
        else:
            regex += "/" + re.escape(part)
            literal += 1
    # Literal segments beat parameters, which beat greedy ones (API Gateway's precedence).
    # Any byte but "/" belongs to a segment (a decoded %0A too): DOTALL, and \Z, not $ (which
    # would also match before a final newline).
    return re.compile(f"^{regex or '/'}/?\\Z", re.DOTALL), (-greedy, literal, len(parts))


def _string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def raw_path(environ: Mapping[str, Any]) -> str:
    """The request's path as the client sent it: still percent-encoded (non-ASCII bytes encoded)."""
    target = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    if not target:
        return quote(str(environ.get("PATH_INFO") or "/"), safe="/%")
    if "://" in target.split("?", 1)[0]:  # an absolute request target
        target = urlsplit(target).path or "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    # WSGI hands the request line's bytes over as Latin-1 characters
    return "".join(c if ord(c) < 0x80 else f"%{ord(c):02X}" for c in path)


def decoded_for_matching(path: str) -> tuple[str, list[int]]:
    """``path`` with each ``%XX`` decoded to one character per byte (Latin-1), and for each
    character of the result the offset in ``path`` where it starts (plus the end): route matching
    runs on the decoded path, parameters are cut from the encoded one."""
    out: list[str] = []
    starts: list[int] = []
    i = 0
    while i < len(path):
        starts.append(i)
        if path[i] == "%" and i + 2 < len(path) and path[i + 1] in _HEX and path[i + 2] in _HEX:
            out.append(chr(int(path[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(path[i])
            i += 1
    starts.append(len(path))
    return "".join(out), starts


def proxy_response_problem(payload: Any) -> str | None:
    """Why API Gateway would call ``payload`` a malformed Lambda proxy response (502), or None."""
    if not isinstance(payload, dict):
        return "not a JSON object"
    unknown = set(payload) - _PROXY_KEYS
    if unknown:
        return f"unknown keys {sorted(unknown)}"
    status = payload.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return "statusCode missing or not an HTTP status integer"
    body = payload.get("body")
    if body is not None and not isinstance(body, str):
        return "body is not a string"
    if not isinstance(payload.get("isBase64Encoded", False), bool):
        return "isBase64Encoded is not a boolean"
    headers = payload.get("headers")
    if headers is not None and (
        not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())
    ):
        return "headers is not an object of strings"
    multi = payload.get("multiValueHeaders")
    if multi is not None and (
        not isinstance(multi, dict)
        or not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in multi.values())
    ):
        return "multiValueHeaders is not an object of string lists"
    if payload.get("isBase64Encoded") and body:
        try:
            base64.b64decode(body, validate=True)
        except ValueError:
            return "body is not valid base64"
    return None


def method_arn_matches(pattern: str, arn: str) -> bool:
    """IAM-style match of a policy resource against a method ARN (``*`` and ``?`` wildcards)."""
    return fnmatch.fnmatchcase(arn, pattern.replace("[", "[[]"))


def evaluate_policy(policy: Mapping[str, Any], method_arn: str) -> bool:
    """True when ``policy`` allows ``execute-api:Invoke`` on ``method_arn`` (explicit Deny wins)."""
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if not any(method_arn_matches(r, method_arn) for r in resources):
            continue
        effect = str(statement.get("Effect", "")).lower()
        if effect == "deny":
            return False
        if effect == "allow":
            allowed = True
    return allowed


class ApiGateway:
    """A WSGI app that is one REST API stage."""

    def __init__(
        self,
        body: Mapping[str, Any],
        runtime: LambdaRuntime,
        api_id: str,
        stage: str,
        region: str,
        account: str,
        stats: Any = None,
    ) -> None:
        self.runtime = runtime
        self._stats = stats
        self.api_id, self.stage, self.region, self.account = api_id, stage, region, account
        self._cache: dict[tuple[str, tuple[str, ...]], _CacheEntry] = {}
        self._lock = threading.Lock()
        self._request = threading.local()  # per-request tally of the functions' AWS calls
        # Integrations run here so that a request can stop waiting at the integration timeout
        # (the invocation itself runs on, as Lambda's does).
        self._integrations = ThreadPoolExecutor(max_workers=64, thread_name_prefix="api-integration")
        self.binary_types = list(body.get("x-amazon-apigateway-binary-media-types", []))
        self.gateway_responses = dict(body.get("x-amazon-apigateway-gateway-responses", {}))
        self.authorizers = self._read_authorizers(body)
        self.routes = self._read_routes(body)

    # ------------------------------------------------------------------ swagger
    @staticmethod
    def _read_authorizers(body: Mapping[str, Any]) -> dict[str, Authorizer]:
        schemes = dict(body.get("securityDefinitions", {}))
        schemes.update(body.get("components", {}).get("securitySchemes", {}))
        out = {}
        for name, scheme in schemes.items():
            spec = scheme.get("x-amazon-apigateway-authorizer")
            if not spec:
                continue
            match = _FUNCTION_IN_URI.search(_string(spec.get("authorizerUri", "")))
            if not match:
                raise ValueError(f"authorizer {name}: no Lambda function in its URI")
            kind = str(spec.get("type", "token")).lower()
            sources = spec.get("identitySource", "")
            if kind == "token" and not sources:
                sources = "method.request.header.Authorization"
            out[name] = Authorizer(
                name=name,
                function_arn=match.group(1),
                identity_sources=[s.strip() for s in sources.split(",") if s.strip()],
                ttl=int(spec.get("authorizerResultTtlInSeconds", 300)),
                kind=kind,
            )
        return out

    def _read_routes(self, body: Mapping[str, Any]) -> list[Route]:
        default_security = body.get("security", [])
        routes = []
        for resource, methods in body.get("paths", {}).items():
            for method, spec in methods.items():
                if method == "x-amazon-apigateway-any-method":
                    verb = "ANY"
                elif method in _METHODS:
                    verb = method.upper()
                else:
                    continue
                integration = spec.get("x-amazon-apigateway-integration", {})
                match = _FUNCTION_IN_URI.search(_string(integration.get("uri", "")))
                if integration.get("type") != "aws_proxy" or not match:
                    raise ValueError(f"{verb} {resource}: only Lambda proxy integrations are served")
                authorizer = None
                for requirement in spec.get("security", default_security):
                    for name in requirement:
                        if name in self.authorizers:
                            authorizer = name
                pattern, specificity = _route_regex(resource)
                timeout_ms = int(integration.get("timeoutInMillis", INTEGRATION_TIMEOUT_MS))
                routes.append(
                    Route(resource, verb, pattern, match.group(1), authorizer, specificity, timeout_ms)
                )
        routes.sort(key=lambda r: (r.specificity, r.method != "ANY"), reverse=True)
        return routes

    # ------------------------------------------------------------------ helpers
    def _gateway_response(
        self, kind: str, request_id: str, message: str | None = None, status: int | None = None
    ) -> Response:
        default_status, default_message = _DEFAULT_RESPONSES.get(kind, (500, None))
        default_status = status or default_status
        status = default_status
        fallback = "DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX"
        custom = self.gateway_responses.get(kind) or self.gateway_responses.get(fallback) or {}
        status = int(custom.get("statusCode", status))
        text = message if message is not None else default_message
        template = (custom.get("responseTemplates") or {}).get("application/json")
        if template:
            body = (
                template.replace("$context.error.messageString", json.dumps(text))
                .replace("$context.error.message", text or "")
                .replace("$context.requestId", request_id)
                .replace("$context.error.responseType", kind)
            )
        else:
            body = json.dumps({"message": text})
        headers = {
            "Content-Type": "application/json",
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": kind,
        }
        for key, value in (custom.get("responseParameters") or {}).items():
            if key.startswith("gatewayresponse.header."):
                headers[key.split(".", 2)[2]] = str(value).strip("'")
        return Response(body, status=status, headers=headers)

    def _match(self, path: str, method: str) -> tuple[Route, dict[str, str]] | None:
        """The route of the encoded ``path`` (matched decoded) and its parameters, still encoded."""
        decoded, starts = decoded_for_matching(path)
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.pattern.match(decoded)
            if found:
                params = {
                    name: path[starts[found.start(name)] : starts[found.end(name)]]
                    for name in found.groupdict()
                }
                return route, params
        return None

    def method_arn(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:{self.region}:{self.account}:{self.api_id}/{self.stage}/{method}{path}"

    def _request_context(self, request: Request, route: Route, request_id: str, path: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "accountId": self.account,
            "apiId": self.api_id,
            "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, route.resource).hex[:6],
            "resourcePath": route.resource,
            "httpMethod": request.method,
            # The path as the client called it: the local API is served at the root, as a custom
            # domain with an empty base path mapping serves a stage (no /<stage> prefix).
            "path": path,
            "stage": self.stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "domainName": request.host,
            "identity": {
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent"),
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
                "cognitoIdentityId": None,
            },
        }

    @staticmethod
    def _headers(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            multi.setdefault(key, []).append(value)
            single[key] = value
        return single, multi

    @staticmethod
    def _query(request: Request) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
        if not request.args:
            return None, None
        multi = {k: request.args.getlist(k) for k in request.args}
        return {k: v[-1] for k, v in multi.items()}, multi

    def _identity_values(self, authorizer: Authorizer, event: Mapping[str, Any]) -> list[str | None]:
        values: list[str | None] = []
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        query = event.get("queryStringParameters") or {}
        for source in authorizer.identity_sources:
            if source.startswith("method.request.header."):
                values.append(headers.get(source.rsplit(".", 1)[1].lower()))
            elif source.startswith("method.request.querystring."):
                values.append(query.get(source.rsplit(".", 1)[1]))
            elif source.startswith("context."):
                value: Any = event["requestContext"]
                for part in source.split(".")[1:]:
                    value = value.get(part) if isinstance(value, dict) else None
                values.append(value)
            elif source.startswith("stageVariables."):
                values.append((event.get("stageVariables") or {}).get(source.split(".", 1)[1]))
            else:
                values.append(None)
        return values

    # ------------------------------------------------------------------ authorizer
    def _authorize(
        self, authorizer: Authorizer, event: dict[str, Any], method_arn: str, request_id: str
    ) -> Response | dict[str, Any]:
        values = self._identity_values(authorizer, event)
        if authorizer.ttl > 0 and any(v in (None, "") for v in values):
            return self._gateway_response("UNAUTHORIZED", request_id)
        key = (authorizer.name, tuple(str(v) for v in values))
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry.expires <= now:
                del self._cache[key]
                entry = None
        if entry is None:
            entry_or_response = self._call_authorizer(authorizer, event, method_arn, request_id)
            if isinstance(entry_or_response, Response):
                return entry_or_response
            entry = entry_or_response
            if authorizer.ttl > 0:
                with self._lock:
                    self._cache[key] = entry
        if not evaluate_policy(entry.policy, method_arn):
            return self._gateway_response("ACCESS_DENIED", request_id)
        return {**entry.context, "principalId": entry.principal_id}

    def _call_authorizer(
        self, authorizer: Authorizer, event: dict[str, Any], method_arn: str, request_id: str
    ) -> Response | _CacheEntry:
        if authorizer.kind == "token":
            values = self._identity_values(authorizer, event)
            auth_event: dict[str, Any] = {
                "type": "TOKEN",
                "authorizationToken": values[0],
                "methodArn": method_arn,
            }
        else:
            auth_event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                **{
                    k: event[k]
                    for k in (
                        "resource",
                        "path",
                        "httpMethod",
                        "headers",
                        "multiValueHeaders",
                        "queryStringParameters",
                        "multiValueQueryStringParameters",
                        "pathParameters",
                        "stageVariables",
                        "requestContext",
                    )
                },
            }
        result = self._invoke(authorizer.function_arn, auth_event)
        if result.failed:
            message = str((result.error or {}).get("errorMessage", ""))
            if message == "Unauthorized":
                return self._gateway_response("UNAUTHORIZED", request_id)
            log.error("authorizer %s failed: %s", authorizer.name, result.error)
            return self._gateway_response("AUTHORIZER_FAILURE", request_id)
        payload = result.payload
        try:
            principal = str(payload["principalId"])
            policy = payload["policyDocument"]
            context = payload.get("context") or {}
            if not isinstance(policy, dict) or not isinstance(context, dict):
                raise TypeError("policyDocument and context must be objects")
            if any(not isinstance(v, str | int | float | bool) for v in context.values()):
                raise TypeError("context values must be strings, numbers or booleans")
        except (KeyError, TypeError) as exc:
            log.error("authorizer %s returned an invalid response: %s", authorizer.name, exc)
            return self._gateway_response("AUTHORIZER_CONFIGURATION_ERROR", request_id)
        return _CacheEntry(time.monotonic() + authorizer.ttl, principal, policy, context)

    # ------------------------------------------------------------------ WSGI
    def _invoke(
        self, function_arn: str, event: dict[str, Any], timeout_ms: int | None = None
    ) -> InvokeResult:
        """Invoke and count the function's AWS calls; TimeoutError when no answer came within
        ``timeout_ms`` (API Gateway's integration timeout)."""
        if timeout_ms is None:
            result = self.runtime.invoke(function_arn, event)
        else:
            future = self._integrations.submit(self.runtime.invoke, function_arn, event)
            try:
                result = future.result(timeout=timeout_ms / 1000)
            except FutureTimeout:
                raise TimeoutError(f"no answer within {timeout_ms} ms") from None
        self._request.aws_calls = getattr(self._request, "aws_calls", 0) + result.aws_calls
        return result

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = _Request(environ)
        self._request.aws_calls = 0
        response = self.handle(request)
        # Not an API Gateway header: what the request cost in AWS calls, for benchmarks.
        response.headers["x-localcloud-aws-calls"] = str(self._request.aws_calls)
        return response(environ, start_response)

    def _body(self, request: Request) -> tuple[str | None, bool]:
        raw = request.get_data(cache=False)
        if not raw:
            return None, False
        content_type = (request.content_type or "").split(";")[0].strip()
        if any(fnmatch.fnmatchcase(content_type, t) for t in self.binary_types):
            return base64.b64encode(raw).decode(), True
        return raw.decode("utf-8", errors="replace"), False

    def handle(self, request: Request) -> Response:
        """One request through API Gateway."""
        request_id = str(uuid.uuid4())
        if request.path == STATS_PATH and request.method == "GET" and self._stats is not None:
            # Not part of API Gateway: the local cloud's counters, for benchmarks.
            return Response(json.dumps(self._stats()), status=200, content_type="application/json")
        if (request.content_length or 0) > MAX_PAYLOAD_BYTES:
            return self._gateway_response("REQUEST_TOO_LARGE", request_id)
        path = raw_path(request.environ)
        matched = self._match(path, request.method)
        if matched is None:
            return self._gateway_response("MISSING_AUTHENTICATION_TOKEN", request_id)
        route, path_params = matched
        try:
            body, is_base64 = self._body(request)
        except RequestEntityTooLarge:
            return self._gateway_response("REQUEST_TOO_LARGE", request_id)
        headers, multi_headers = self._headers(request)
        query, multi_query = self._query(request)
        event: dict[str, Any] = {
            "resource": route.resource,
            "path": path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": self._request_context(request, route, request_id, path),
            "body": body,
            "isBase64Encoded": is_base64,
        }
        if route.authorizer is not None:
            arn = self.method_arn(request.method, path)
            decision = self._authorize(self.authorizers[route.authorizer], event, arn, request_id)
            if isinstance(decision, Response):
                return decision
            event["requestContext"]["authorizer"] = decision
        return self._integrate(route, event, request_id, request.headers.get("Accept", ""))

    def binary_accepted(self, accept: str) -> bool:
        """Whether API Gateway answers a base64 proxy response as bytes: the first media type of
        ``Accept`` matches a binary media type (a wildcard in ``binaryMediaTypes`` matches)."""
        first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
        return bool(first) and any(fnmatch.fnmatchcase(first, t.lower()) for t in self.binary_types)

    def _integrate(self, route: Route, event: dict[str, Any], request_id: str, accept: str) -> Response:
        try:
            result = self._invoke(route.function_arn, event, route.timeout_ms)
        except TimeoutError:
            log.error("integration %s %s timed out (%d ms)", route.method, route.resource, route.timeout_ms)
            return self._gateway_response("INTEGRATION_TIMEOUT", request_id)
        if result.refusal is not None and result.refusal.code is RefusalCode.TOO_LARGE:
            # the event over Lambda's 6 MB: refused by Lambda's Invoke API, answered 413
            return self._gateway_response("REQUEST_TOO_LARGE", request_id)
        if result.throttled:
            # Lambda's 429 is not passed on: API Gateway answers 500 (INTEGRATION_FAILURE's
            # response, when the API customises one) -- re:Post "API Gateway proxy integration does
            # not forward Lambda throttling (HTTP 429) to client"
            log.error("integration %s %s throttled: %s", route.method, route.resource, result.error)
            return self._gateway_response("INTEGRATION_FAILURE", request_id, status=500)
        if result.failed:
            # a function error, a Lambda timeout, an oversized or unserialisable response: API
            # Gateway's 502 (its 504 is only the integration timeout, above)
            log.error("integration %s %s failed: %s", route.method, route.resource, result.error)
            return self._gateway_response("INTEGRATION_FAILURE", request_id)
        payload = result.payload
        problem = proxy_response_problem(payload)
        if problem is not None:
            log.error("malformed Lambda proxy response from %s %s: %s", route.method, route.resource, problem)
            return self._gateway_response("INTEGRATION_FAILURE", request_id)
        body = payload.get("body") or ""
        binary = bool(payload.get("isBase64Encoded")) and self.binary_accepted(accept)
        # not asked for as binary: the base64 text itself is the body, as API Gateway sends it
        data = base64.b64decode(body) if binary else body.encode()
        response = Response(data, status=payload["statusCode"])
        response.headers.pop("Content-Type", None)
        for key, value in (payload.get("headers") or {}).items():
            response.headers[key] = value
        for key, values in (payload.get("multiValueHeaders") or {}).items():
            response.headers.pop(key, None)
            for value in values:
                response.headers.add(key, value)
        response.headers["x-amzn-RequestId"] = request_id
        return response


class ApiServer:
    """Serves an :class:`ApiGateway` over HTTP on a background thread."""

    def __init__(self, gateway: ApiGateway, host: str, port: int) -> None:
        self.gateway = gateway
        self._server: BaseWSGIServer = make_server(host, port, gateway, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="api"
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
