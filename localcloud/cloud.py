"""The local cloud: moto + PostgreSQL + local Lambda + EventBridge delivery + API Gateway.

Everything is derived from the template: :class:`LocalCloud` transforms it with the SAM
translator, provisions it in moto, registers its functions, schedules its rules and serves its
REST API. Used by ``python -m localcloud`` (``make local``) and by the tests.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from localcloud import motohooks, sqsfifo
from localcloud.apigateway import ApiGateway, ApiServer
from localcloud.awscalls import CountingMotoServer
from localcloud.eventbridge import EventDelivery
from localcloud.iam import kms as iam_kms
from localcloud.iam import objectlock
from localcloud.iam.enforce import Authorizer
from localcloud.iam.evaluator import PolicyEvaluator, Principal
from localcloud.lambdas import AsyncTiming, FunctionSpec, LambdaRuntime, function_environment
from localcloud.postgres import Database, EmbeddedPostgres, create_aurora_master, is_superuser, parse_url
from localcloud.provision import Provisioner, Resource, Stack
from localcloud.sqs_mapping import poller_key
from localcloud.sqs_pollers import SqsEventSources
from localcloud.template import load_template, transform_template
from localcloud.xray import TRACES_FILE, TraceSink

log = logging.getLogger("localcloud")

ACCOUNT = "123456789012"
# moto accepts any credentials; these never leave the machine.
CREDENTIALS = {"aws_access_key_id": "localcloud", "aws_secret_access_key": "localcloud"}


@dataclass
class LocalCloudConfig:
    """How to run a template locally."""

    template: Path
    api_port: int = 3000
    aws_port: int = 4566
    host: str = "127.0.0.1"
    region: str = "us-east-1"
    stack_name: str = "dcisionai-local"
    state_dir: Path = Path(".localcloud")
    parameters: dict[str, Any] = field(default_factory=dict)
    # "embedded" (pgserver), a postgresql:// URL, or None for no database.
    database: str | None = "embedded"
    retry_base_seconds: float = 1.0
    # Authorize every function's AWS calls by its role and the resources' policies (localcloud.iam).
    enforce_iam: bool = True
    # Lambda's asynchronous queue: waits before the retries of a function error (AWS: about 1
    # and 2 minutes) and the back-off of a throttled event (doubling, capped).
    async_retry_delays: tuple[float, ...] = (60.0, 120.0)
    async_throttle_base: float = 1.0
    async_throttle_cap: float = 300.0
    # Extra deliveries of every EventBridge event (at-least-once); see localcloud.eventbridge.
    duplicate_deliveries: int = 0


class LocalCloud:
    """Runs a SAM template on this machine; ``start()`` then ``stop()`` (or use ``with``)."""

    def __init__(self, config: LocalCloudConfig) -> None:
        self.config = config
        self.aws_endpoint = f"http://{config.host}:{config.aws_port}"
        self.api_url = f"http://{config.host}:{config.api_port}"
        # Bound first: the functions' environment names its address (its file opens at start).
        self.traces = TraceSink(config.state_dir / TRACES_FILE, config.host)
        timing = AsyncTiming(config.async_retry_delays, config.async_throttle_base, config.async_throttle_cap)
        self.runtime = LambdaRuntime(self._function_environment(), timing)
        self.runtime.use_clients(self._function_client)
        # One policy evaluator (a node process) for the functions' IAM and EventBridge's targets.
        self.evaluator = PolicyEvaluator()
        self.delivery = EventDelivery(
            self.runtime,
            self.client,
            retry_base_seconds=config.retry_base_seconds,
            duplicates=config.duplicate_deliveries,
            state_dir=config.state_dir,
            evaluator=self.evaluator,
        )
        # Lambda's SQS event source mappings: pollers that sign as the functions' roles
        self.event_sources = SqsEventSources(
            self.runtime, self.client, self._poller_client, config.region, ACCOUNT
        )
        self.stack: Stack | None = None
        self.api: ApiGateway | None = None
        self.database: Database | None = None
        self._moto: CountingMotoServer | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._api_server: ApiServer | None = None
        self._clients: dict[str, Any] = {}
        self.bootstrap_result: dict[str, Any] = {}
        # LOCALCLOUD_IAM=report: log what IAM would deny and let it through (to list a change's gaps).
        self.authorizer = Authorizer(
            self.evaluator, ACCOUNT, {}, report_only=os.environ.get("LOCALCLOUD_IAM") == "report"
        )

    # ------------------------------------------------------------------ plumbing
    def _function_environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_REGION": self.config.region,
            "AWS_DEFAULT_REGION": self.config.region,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "TZ": "UTC",
            # The tracer runs as on AWS (no AWS_SAM_LOCAL): its segments go to the local daemon.
            "AWS_XRAY_DAEMON_ADDRESS": self.traces.address,
        }

    def client(self, service: str) -> Any:
        """A boto3 client for the local cloud's moto."""
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.aws_endpoint,
                region_name=self.config.region,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                **CREDENTIALS,
            )
        return self._clients[service]

    def _function_client(self, service: str, spec: FunctionSpec) -> Any:
        """A boto3 client that calls as ``spec``'s role (its own access key, as its workers do):
        what Lambda's service does on the function's behalf, such as sending to a destination."""
        key = function_environment(spec, self._function_environment())["AWS_ACCESS_KEY_ID"]
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.aws_endpoint,
            region_name=self.config.region,
            aws_access_key_id=key,
            aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
        )

    def _poller_client(self, service: str, spec: FunctionSpec) -> Any:
        """A boto3 client for ``spec``'s SQS pollers: its role, its own key (Lambda's calls, not
        the function's, in the AWS-call counts)."""
        key = poller_key(function_environment(spec, self._function_environment())["AWS_ACCESS_KEY_ID"])
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.aws_endpoint,
            region_name=self.config.region,
            aws_access_key_id=key,
            aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalCloud:
        """Start moto, the database, provision the template, serve the API."""
        os.environ["MOTO_PORT"] = str(self.config.aws_port)  # moto's ASL interpreter calls back here
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.traces.start()
        self._moto = CountingMotoServer(self.config.host, self.config.aws_port)
        self._moto.start()
        motohooks.install(self.runtime, self.delivery)
        iam_kms.install()
        objectlock.install()
        sqsfifo.install()
        motohooks.enable_step_functions_execution(self.aws_endpoint)
        if self.config.enforce_iam:
            # From the first call: the template's own key policies get KMS's lockout check too.
            self._moto.enforce(self.authorizer)

        parameters = dict(self.config.parameters)
        self.database = self._start_database()
        declared = self._declared_parameters()
        if (
            self.database is not None
            and "DatabaseSecretArn" in declared
            and "DatabaseSecretArn" not in parameters
        ):
            parameters["DatabaseSecretArn"] = self._store_database_secret(self.database)

        cfn, code_dirs = transform_template(self.config.template, parameters, self.config.region)
        self.stack = Provisioner(
            cfn,
            parameters,
            code_dirs,
            self.client,
            self.runtime,
            self.config.stack_name,
            self.config.region,
            ACCOUNT,
            on_rule=self._schedule,
            on_event_source_mapping=self.event_sources.create,
        ).provision()
        self.authorizer.functions = self._function_principals(self.stack)
        # each function's SQS pollers: the same role session, under a key of their own
        self.authorizer.functions.update({poller_key(k): p for k, p in self.authorizer.functions.items()})
        self.event_sources.start()  # refuses a mapping whose role may not poll its queue

        apis = self.stack.of_type("AWS::ApiGateway::RestApi")
        if len(apis) > 1:
            raise RuntimeError("the local cloud serves one REST API per template")
        if apis:
            stage = self._stage_of(apis[0])
            moto = self._moto
            self.api = ApiGateway(
                apis[0].attributes["Body"],
                self.runtime,
                apis[0].physical_id,
                stage,
                self.config.region,
                ACCOUNT,
                stats=lambda: {
                    "aws_calls": moto.snapshot() if moto else {},
                    "dynamodb_tables": moto.table_snapshot() if moto else {},
                    # the IAM evaluator's work: simulations node answered, calls denied
                    "iam": {"evaluations": self.evaluator.evaluations, "denied": self.authorizer.denied},
                },
            )
            self._api_server = ApiServer(self.api, self.config.host, self.config.api_port)
            self._api_server.start()
        self.bootstrap_result = self._run_bootstrap()
        self._write_bootstrap()
        return self

    @staticmethod
    def _function_principals(stack: Stack) -> dict[str, Principal]:
        """Each function's access key (localcloud.lambdas) and the role session that signs with it."""
        principals = {}
        for function in stack.of_type("AWS::Lambda::Function"):
            role_arn = str(function.properties["Role"])
            path_and_name = role_arn.split(":role", 1)[1]
            path, _, name = path_and_name.rpartition("/")
            principals[f"{CREDENTIALS['aws_access_key_id']}-{function.logical_id}"] = Principal(
                account=ACCOUNT, role_name=name, session_name=function.physical_id, role_path=f"{path}/"
            )
        return principals

    def _declared_parameters(self) -> set[str]:
        return set(load_template(self.config.template).get("Parameters", {}))

    def _run_bootstrap(self) -> dict[str, Any]:
        """The template's ``Metadata.LocalCloud.Bootstrap`` command, run as its function would."""
        hook = load_template(self.config.template).get("Metadata", {}).get("LocalCloud", {}).get("Bootstrap")
        if not hook:
            return {}
        assert self.stack is not None
        function = self.stack.resources[hook["Function"]].physical_id
        # An operator's command (on AWS: run with the operator's credentials), not the function's.
        output = self.runtime.run_module(function, [str(a) for a in hook["Command"]], as_operator=True)
        result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        return result

    def _start_database(self) -> Database | None:
        choice = self.config.database
        if choice is None:
            return None
        if choice != "embedded":
            given = parse_url(choice)
            # a superuser URL stands for RDS itself: the platform gets an Aurora-like master
            return create_aurora_master(given) if is_superuser(given) else given
        self._postgres = EmbeddedPostgres(self.config.state_dir)
        return self._postgres.start()

    def _store_database_secret(self, database: Database) -> str:
        arn: str = self.client("secretsmanager").create_secret(
            Name=f"{self.config.stack_name}/platform-database",
            Description="Platform PostgreSQL master credentials (local stand-in for the RDS secret)",
            SecretString=json.dumps(database.secret()),
        )["ARN"]
        return arn

    def _stage_of(self, api: Resource) -> str:
        assert self.stack is not None
        for stage in self.stack.of_type("AWS::ApiGateway::Stage"):
            if stage.properties.get("RestApiId") == api.physical_id:
                return str(stage.properties.get("StageName", "local"))
        return "local"

    def _schedule(self, rule: Resource) -> None:
        bus = rule.properties.get("EventBusName", "default")

        def fire() -> None:
            for target in rule.properties.get("Targets", []):
                event = {
                    "version": "0",
                    "id": os.urandom(16).hex(),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": ACCOUNT,
                    "region": self.config.region,
                    "resources": [rule.attributes["Arn"]],
                    "detail": {},
                }
                if target["Arn"].split(":")[2] in ("lambda", "states"):
                    self.delivery.submit(rule.attributes["Arn"], target, event)
            log.debug("schedule on bus %s fired", bus)

        self.delivery.schedule(rule.attributes["Arn"], rule.properties["ScheduleExpression"], fire)

    def bootstrap(self) -> dict[str, Any]:
        """The contents of ``.localcloud/bootstrap.json``."""
        assert self.stack is not None
        buses = self.stack.of_type("AWS::Events::EventBus")
        parameters = self.config.parameters
        return {
            "api_url": self.api_url if self.api is not None else None,
            "aws_endpoint_url": self.aws_endpoint,
            "region": self.config.region,
            "event_bus_name": buses[0].physical_id if buses else "default",
            "platform_tenant": self.bootstrap_result.get(
                "platform_tenant", parameters.get("PlatformTenantId", "platform")
            ),
            # The first platform-admin: a one-time password, MFA enrolment at first sign-in.
            "username": self.bootstrap_result.get("username"),
            "password": self.bootstrap_result.get("password"),
            "outputs": self.stack.outputs,
        }

    def _write_bootstrap(self) -> None:
        # It holds a one-time password: 0600, never through a symlink planted in the state directory.
        from tenant_security.private_files import DirectoryPolicy, write_private_file

        write_private_file(
            self.config.state_dir / "bootstrap.json",
            json.dumps(self.bootstrap(), indent=2, default=str),
            DirectoryPolicy.NOT_WORLD_WRITABLE,
        )

    def stop(self) -> None:
        """Stop everything this cloud started; safe to call twice."""
        if self._api_server is not None:
            self._api_server.stop()
            self._api_server = None
        self.event_sources.close()
        self.delivery.close()
        self.runtime.close()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self.evaluator.close()
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None
        self.traces.stop()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
