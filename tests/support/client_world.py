"""The token endpoint in this process over moto (tests of issue 19's machine access): the API
clients table, one api-keys KMS key per tenant, a real TokenIssuer over a local P-256 key, and AWS
failures injected per operation."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote_plus, urlencode

import boto3
import pytest
from aws_lambda_powertools.event_handler import Response
from botocore.exceptions import ClientError

from tenant_security import aws
from tenant_security.actors import Actor
from tenant_security.administration.clients import ClientAdmin
from tenant_security.identity.client_credentials import ClientCredentialsGrant
from tenant_security.identity.client_secrets import VerifierKeys
from tenant_security.identity.clients import ApiClientStore
from tenant_security.identity.signin_audit import SignInAudit
from tenant_security.identity.throttle import SignInThrottle
from tenant_security.identity.tokens import TokenIssuer, TokenVerifier
from tenant_security.models.policies import parse_security_policies
from tenant_security.tenants import TenantProfile, TenantStatus
from tests.support.clock import ManualClock
from tests.support.identity_fakes import LocalKeys, LocalSigner, RecordingPublisher
from tests.support.moto import create_table, mocked_aws

ACCOUNT = "123456789012"
CLIENTS_TABLE = "api-clients"
ISSUER, AUDIENCE = "https://issuer.test", "dcisionai-api"
FORM = "application/x-www-form-urlencoded"
TENANTS = ("acme", "globex")


def key_arn(tenant_id: str) -> str:
    """The tenant's api-keys key, by alias, as config.tenant_key_arn names it."""
    return f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/dcisionai-tenant-{tenant_id}-api-keys"


def throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation)


class WatchedClient:
    """The DynamoDB client, watched: each operation counted (``calls[name]``), ``before[name]``
    run once before the next call of that operation (it gets the call's parameters), and
    ``fail[name]`` (an exception) raised by each call of that operation while it is there."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.fail: dict[str, BaseException] = {}
        self.calls: dict[str, int] = {}
        self.before: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            with self.lock:
                self.calls[name] = self.calls.get(name, 0) + 1
                hook = self.before.pop(name, None)
            if hook is not None:
                hook(kwargs)
            if name in self.fail:
                raise self.fail[name]
            return real(**kwargs)

        return call


class Tenants:
    """The tenant directory the token endpoint reads (TenantLookup)."""

    def __init__(self) -> None:
        self.records = {t: TenantProfile(t, t, TenantStatus.ACTIVE) for t in (*TENANTS, "platform")}

    def get(self, tenant_id: str) -> TenantProfile | None:
        return self.records.get(tenant_id)

    def access(self, tenant_id: str, **access: Any) -> None:
        self.records[tenant_id] = replace(
            self.records[tenant_id], policies=parse_security_policies({"access_control": access})
        )

    def status(self, tenant_id: str, status: TenantStatus) -> None:
        self.records[tenant_id] = replace(self.records[tenant_id], status=status)


@dataclass
class ClientWorld:
    ddb: Any
    store_client: WatchedClient
    store: ApiClientStore
    keys: VerifierKeys
    tenants: Tenants
    clock: ManualClock
    grant: ClientCredentialsGrant
    admin: ClientAdmin
    verifier: TokenVerifier
    publisher: RecordingPublisher
    # KMS operations made (by every client of the layer, the Encryption SDK's among them)
    kms_calls: list[str] = field(default_factory=list)
    # KMS operations that fail (ThrottlingException) while named here
    kms_failing: set[str] = field(default_factory=set)

    @staticmethod
    def boss(tenant: str = "acme") -> Actor:
        """The tenant's tenant-admin (a person)."""
        return Actor(tenant_id=tenant, user="boss", platform_admin=False, roles=("tenant-admin",))

    def make(
        self, tenant: str = "acme", roles: tuple[str, ...] = ("viewer",), days: int = 90, **kw: Any
    ) -> dict[str, Any]:
        """A new client of ``tenant`` (made by its tenant-admin), with its secret."""
        return self.admin.create(
            self.boss(tenant), self.tenants.records[tenant], "ci", list(roles), days, **kw
        )

    def rotate(self, made: dict[str, Any], grace: int = 0) -> str:
        """A new secret for the client (by its tenant's tenant-admin)."""
        tenant = made["client_id"].split("_")[0]
        rotated = self.admin.rotate(self.boss(tenant), self.tenants.records[tenant], made["client_id"], grace)
        return str(rotated["client_secret"])

    def delete(self, made: dict[str, Any]) -> None:
        """Delete the client (by its tenant's tenant-admin)."""
        tenant = made["client_id"].split("_")[0]
        self.admin.delete(self.boss(tenant), tenant, made["client_id"])

    def basic(
        self, client_id: str, secret: str, body: dict[str, str] | None = None, ip: str | None = "203.0.113.9"
    ) -> dict[str, Any]:
        """A client_secret_basic token request."""
        credentials = base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()
        form = urlencode({"grant_type": "client_credentials", **(body or {})})
        return self.grant.token(form, FORM, f"Basic {credentials}", ip)

    def post(
        self, client_id: str, secret: str, body: dict[str, str] | None = None, ip: str | None = "203.0.113.9"
    ) -> dict[str, Any]:
        """A client_secret_post token request."""
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                **(body or {}),
            }
        )
        return self.grant.token(form, FORM, None, ip)

    def activity(self) -> list[dict[str, Any]]:
        return [d for t, d in self.publisher.events if t == "User Activity"]


@contextmanager
def client_world(
    monkeypatch: pytest.MonkeyPatch, throttle: tuple[int, int] | None = None
) -> Iterator[ClientWorld]:
    """moto with the clients table and each tenant's api-keys key; ``throttle``: (per address,
    per account) a minute, over a moto counters table."""
    with mocked_aws(monkeypatch):
        ddb, kms = boto3.client("dynamodb"), boto3.client("kms")
        create_table(ddb, CLIENTS_TABLE, "tenant_id", "client_id")
        create_table(ddb, "counters", "pk", "sk")
        for tenant in TENANTS:
            key = kms.create_key()["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=f"alias/dcisionai-tenant-{tenant}-api-keys", TargetKeyId=key)
        kms_calls: list[str] = []
        kms_failing: set[str] = set()

        def kms_hook(model: Any, **_: Any) -> None:
            if model.service_model.service_name != "kms":
                return
            kms_calls.append(model.name)
            if model.name in kms_failing:
                raise throttled(model.name)

        monkeypatch.setattr(aws, "_call_hooks", [])  # the hook goes with this moto
        aws.before_every_call("tests19-kms", kms_hook)
        store_client = WatchedClient(ddb)
        store = ApiClientStore(store_client, CLIENTS_TABLE)  # type: ignore[arg-type]
        clock = ManualClock()
        keys = VerifierKeys(store, key_arn, ACCOUNT, clock=clock)
        tenants = Tenants()
        signer = LocalSigner("k1")
        issuer = TokenIssuer(signer, ISSUER, AUDIENCE, clock=clock)  # type: ignore[arg-type]
        publisher = RecordingPublisher()
        limiter = (
            SignInThrottle(ddb, "counters", per_address=throttle[0], per_account=throttle[1], clock=clock)
            if throttle
            else None
        )
        grant = ClientCredentialsGrant(
            store,
            keys,
            tenants,
            issuer,
            SignInAudit(publisher),  # type: ignore[arg-type]
            throttle=limiter,
            clock=clock,
        )
        # the admin's own key cache: a token request's KMS calls are the endpoint's alone
        admin = ClientAdmin(store, VerifierKeys(store, key_arn, ACCOUNT), "platform", clock=clock)
        yield ClientWorld(
            ddb=ddb,
            store_client=store_client,
            store=store,
            keys=keys,
            tenants=tenants,
            clock=clock,
            grant=grant,
            admin=admin,
            verifier=TokenVerifier(LocalKeys(signer), ISSUER, AUDIENCE, clock=clock),  # type: ignore[arg-type]
            publisher=publisher,
            kms_calls=kms_calls,
            kms_failing=kms_failing,
        )


def resolver_over(grant: Callable[[], ClientCredentialsGrant]) -> Any:
    """The token route as functions/auth_api/app.py wires it, over ``grant`` (the HTTP status a
    caller sees: the one error mapping of http.py)."""
    from tenant_security.headers import header
    from tenant_security.http import make_resolver
    from tenant_security.identity.client_credentials import TOKEN_PATH, TOKEN_REPLY_HEADERS

    app = make_resolver(raw_body_prefixes=(TOKEN_PATH,))

    @app.post(TOKEN_PATH)
    def oauth_token() -> Response[Any]:
        event = app.current_event
        token = grant().token(
            event.body,
            header(event.headers, "content-type"),
            header(event.headers, "authorization"),
            event.request_context.identity.source_ip,
            base64_encoded=bool(event.is_base64_encoded),
        )
        return Response(
            status_code=200, content_type="application/json", body=token, headers=TOKEN_REPLY_HEADERS
        )

    return app


def token_event(
    body: str, content_type: str | None = FORM, authorization: str | None = None
) -> dict[str, Any]:
    headers = {
        k: v for k, v in (("Content-Type", content_type), ("Authorization", authorization)) if v is not None
    }
    return {
        "resource": "/oauth2/token",
        "path": "/oauth2/token",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "pathParameters": None,
        "queryStringParameters": None,
        "requestContext": {"requestId": "req-1", "identity": {"sourceIp": "203.0.113.9"}},
        "body": body,
        "isBase64Encoded": False,
    }
