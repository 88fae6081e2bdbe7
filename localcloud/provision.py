"""Create every resource of a (transformed) template in moto, through boto3 calls.

Resources are created in dependency order (Ref, GetAtt, Sub and DependsOn); each handler returns
the physical id (what ``Ref`` gives) and the attributes (what ``Fn::GetAtt`` gives). A type the
local cloud cannot create is an error, so "provisions completely" means what it says; a few types
are stood in for by the local cloud itself (see ``STOOD_IN``).
"""

from __future__ import annotations

import io
import json
import logging
import random
import string
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from localcloud.intrinsics import Resolver, UnresolvedReference, references
from localcloud.lambdas import (
    DEFAULT_ASYNC_MAX_AGE,
    DEFAULT_ASYNC_RETRIES,
    AsyncConfig,
    FunctionSpec,
    LambdaRuntime,
)
from localcloud.policies import check_policy, template_policies
from localcloud.topickeys import CLOUDWATCH_PRINCIPAL, publish_refusal

log = logging.getLogger("localcloud.provision")

# Types that exist only for API Gateway or IAM plumbing the local cloud does itself.
# The local stack's id ends in this UUID, as a real one ends in a random one; its first 8 hex
# digits are the deployment id in every bucket name (DEPLOYMENT_ID in every function's environment).
LOCAL_STACK_UUID = "10ca1000-0000-4000-8000-000000000000"

STOOD_IN = {
    "AWS::ApiGateway::Deployment": "the local API server serves the RestApi body directly",
    "AWS::ApiGateway::Stage": "the local API server serves the stage at /",
    "AWS::ApiGateway::Account": "no CloudWatch role is needed locally",
    "AWS::Lambda::Permission": "recorded; IAM is not enforced by moto",
    "AWS::WAFv2::WebACL": "no edge locally: the API's own sign-in throttles apply",
    "AWS::WAFv2::WebACLAssociation": "no edge locally: the API's own sign-in throttles apply",
    "AWS::XRay::Group": "segments go to the local daemon (traces.jsonl), unfiltered",
    "AWS::XRay::SamplingRule": "every invocation is sampled locally",
}


def _is_list_type(parameter_type: str) -> bool:
    return parameter_type == "CommaDelimitedList" or parameter_type.startswith("List<")


class ProvisioningError(RuntimeError):
    """A resource could not be created."""


@dataclass
class Resource:
    logical_id: str
    type: str
    physical_id: str
    attributes: dict[str, Any]
    properties: dict[str, Any]


@dataclass
class Stack:
    """What was provisioned, by logical id."""

    name: str
    region: str
    account: str
    resources: dict[str, Resource] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, kind: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type == kind]


def _suffix(n: int = 12) -> str:
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=n))  # noqa: S311


def _tags(props: dict[str, Any]) -> list[dict[str, str]]:
    tags = props.get("Tags") or []
    if isinstance(tags, dict):  # SAM-style map
        return [{"Key": k, "Value": str(v)} for k, v in tags.items()]
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in tags]


def _policy_document(document: dict[str, Any]) -> str:
    # SAM's policy templates omit Version (IAM then assumes 2008-10-17); moto rejects that.
    return json.dumps({"Version": "2012-10-17", **document})


def _placeholder_zip() -> bytes:
    # moto wants code; the real code runs from the source tree in the local Lambda runtime.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "code runs from the source tree (localcloud)")
    return buffer.getvalue()


class Provisioner:
    """Creates a transformed template's resources in moto."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, Any],
        code_dirs: dict[str, Path],
        client: Callable[[str], Any],
        runtime: LambdaRuntime,
        stack_name: str,
        region: str,
        account: str = "123456789012",
        on_rule: Callable[[Resource], None] | None = None,
        # AWS::Lambda::EventSourceMapping: (logical id, properties) -> (physical id, attributes)
        on_event_source_mapping: Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.template = template
        self.on_event_source_mapping = on_event_source_mapping
        self.code_dirs = code_dirs
        self.client = client
        self.runtime = runtime
        self.on_rule = on_rule
        self.stack = Stack(stack_name, region, account)
        self._layer_dirs: dict[str, Path] = {}
        declared = template.get("Parameters", {})
        values = {name: spec.get("Default") for name, spec in declared.items()}
        unknown = set(parameters) - set(declared)
        if unknown:
            raise ProvisioningError(f"parameters not in the template: {sorted(unknown)}")
        values.update(parameters)
        missing = [name for name, value in values.items() if value is None]
        if missing:
            raise ProvisioningError(f"parameters without a value: {missing}")
        for name, spec in declared.items():
            if _is_list_type(str(spec.get("Type", ""))) and isinstance(values[name], str):
                # as CloudFormation: a list parameter is a list ("" is [""])
                values[name] = [part.strip() for part in values[name].split(",")]
        self.resolver = Resolver(
            template,
            values,
            {
                "AWS::Region": region,
                "AWS::AccountId": account,
                "AWS::StackName": stack_name,
                "AWS::StackId": (
                    f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/{LOCAL_STACK_UUID}"
                ),
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::NotificationARNs": [],
            },
            self._ref,
            self._get_att,
        )
        self._handlers: dict[str, Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]] = {
            "AWS::Events::EventBus": self._event_bus,
            "AWS::Events::Rule": self._rule,
            "AWS::Events::EventBusPolicy": self._event_bus_policy,
            "AWS::SQS::Queue": self._queue,
            "AWS::SQS::QueuePolicy": self._queue_policy,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::SNS::TopicPolicy": self._topic_policy,
            "AWS::DynamoDB::Table": self._table,
            "AWS::KMS::Key": self._key,
            "AWS::KMS::Alias": self._alias,
            "AWS::IAM::Role": self._role,
            "AWS::IAM::Policy": self._policy,
            "AWS::IAM::ManagedPolicy": self._managed_policy,
            "AWS::Lambda::LayerVersion": self._layer,
            "AWS::Lambda::Function": self._function,
            "AWS::Lambda::EventInvokeConfig": self._event_invoke_config,
            "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
            "AWS::ApiGateway::RestApi": self._rest_api,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::S3::Bucket": self._bucket,
            "AWS::S3::BucketPolicy": self._bucket_policy,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::CloudWatch::Dashboard": self._dashboard,
            "AWS::SSM::Parameter": self._ssm_parameter,
        }

    # ------------------------------------------------------------------ references
    def _ref(self, logical_id: str) -> Any:
        resource = self.stack.resources.get(logical_id)
        if resource is None:
            raise UnresolvedReference(f"Ref to {logical_id!r}, which is not provisioned")
        return resource.physical_id

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.stack.resources.get(logical_id)
        if resource is None or attribute not in resource.attributes:
            raise UnresolvedReference(f"GetAtt {logical_id}.{attribute}")
        return resource.attributes[attribute]

    # ------------------------------------------------------------------ driver
    def _included(self, res: dict[str, Any]) -> bool:
        condition = res.get("Condition")
        return condition is None or self.resolver.condition(condition)

    def provision(self) -> Stack:
        """Create every resource, then resolve the outputs."""
        resources = {k: v for k, v in self.template.get("Resources", {}).items() if self._included(v)}
        unsupported = sorted({r["Type"] for r in resources.values()} - set(self._handlers) - set(STOOD_IN))
        if unsupported:
            raise ProvisioningError(f"resource types the local cloud cannot create: {unsupported}")
        graph: dict[str, set[str]] = {}
        for logical_id, res in resources.items():
            depends = res.get("DependsOn", [])
            depends = {depends} if isinstance(depends, str) else set(depends)
            graph[logical_id] = (references(res.get("Properties", {})) | depends) & set(resources)
        for logical_id in TopologicalSorter(graph).static_order():
            res = resources[logical_id]
            props = self.resolver.resolve(res.get("Properties", {}))
            self._check_policies(logical_id, res["Type"], props)
            try:
                attrs: dict[str, Any]
                if res["Type"] in STOOD_IN:
                    physical_id, attrs = f"{self.stack.name}-{logical_id}", {}
                else:
                    physical_id, attrs = self._handlers[res["Type"]](logical_id, props)
            except Exception as exc:
                raise ProvisioningError(f"{logical_id} ({res['Type']}): {exc}") from exc
            self.stack.resources[logical_id] = Resource(logical_id, res["Type"], physical_id, attrs, props)
            log.debug("created %s %s", res["Type"], physical_id)
        self.stack.outputs = {
            name: self.resolver.resolve(out["Value"])
            for name, out in self.template.get("Outputs", {}).items()
            if self._included(out)
        }
        return self.stack

    def _check_policies(self, logical_id: str, kind: str, props: dict[str, Any]) -> None:
        """Refuse a resource whose policy document AWS would refuse, naming it: CloudFormation
        fails the deployment there. (The call that writes it logs the warnings.)"""
        for where, policy_kind, document in template_policies(kind, props):
            check = check_policy(document, policy_kind)
            if not check.accepted:
                raise ProvisioningError(f"{logical_id} ({kind}) {where}: {check.message()}")

    def _arn(self, service: str, resource: str, region: bool = True) -> str:
        where = self.stack.region if region else ""
        return f"arn:aws:{service}:{where}:{self.stack.account}:{resource}"

    def _name(self, logical_id: str, limit: int = 64) -> str:
        return f"{self.stack.name}-{logical_id}"[: limit - 13] + "-" + _suffix()

    # ------------------------------------------------------------------ events
    def _event_bus(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = p["Name"]
        arn = self.client("events").create_event_bus(Name=name, Tags=_tags(p))["EventBusArn"]
        return name, {"Arn": arn, "Name": name}

    def _event_bus_policy(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """One statement of a bus's resource policy, merged with the statements already there (as
        CloudFormation keeps one statement per EventBusPolicy resource)."""
        events = self.client("events")
        bus = p.get("EventBusName", "default")
        statement = {"Sid": p["StatementId"], **p["Statement"]}
        current = events.describe_event_bus(Name=bus).get("Policy")
        statements = [
            s
            for s in (json.loads(current)["Statement"] if current else [])
            if s.get("Sid") != statement["Sid"]
        ]
        policy = {"Version": "2012-10-17", "Statement": [*statements, statement]}
        events.put_permission(EventBusName=bus, Policy=json.dumps(policy))
        return f"{bus}|{p['StatementId']}", {}

    def _rule(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        events = self.client("events")
        name = p.get("Name") or self._name(logical_id)
        bus = p.get("EventBusName", "default")
        if bus.startswith("arn:"):
            bus = bus.rsplit("/", 1)[1]
        args: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": p.get("State", "ENABLED")}
        if "EventPattern" in p:
            pattern = p["EventPattern"]
            args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if "ScheduleExpression" in p:
            args["ScheduleExpression"] = p["ScheduleExpression"]
        if "Description" in p:
            args["Description"] = p["Description"]
        arn = events.put_rule(**args)["RuleArn"]
        targets = [{k: v for k, v in t.items() if k in _TARGET_KEYS} for t in p.get("Targets", [])]
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        physical = name if bus == "default" else f"{bus}|{name}"
        if "ScheduleExpression" in p and self.on_rule is not None:
            self.on_rule(Resource(logical_id, "AWS::Events::Rule", physical, {"Arn": arn}, p))
        return physical, {"Arn": arn}

    def _queue(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        sqs = self.client("sqs")
        fifo = str(p.get("FifoQueue", "false")).lower() == "true"
        name = p.get("QueueName") or (self._name(logical_id, 75) + (".fifo" if fifo else ""))
        attributes = {
            key: (
                json.dumps(value)
                if isinstance(value, dict)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            for key, value in p.items()
            if key in _QUEUE_ATTRIBUTES
        }
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self._arn("sqs", name)
        return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def _queue_policy(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        for url in p["Queues"]:
            self.client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])}
            )
        return self._name(logical_id), {}

    def _topic(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = p.get("TopicName") or self._name(logical_id, 256)
        args: dict[str, Any] = {"Name": name}
        if p.get("KmsMasterKeyId"):
            args["Attributes"] = {"KmsMasterKeyId": p["KmsMasterKeyId"]}
        arn = self.client("sns").create_topic(**args)["TopicArn"]
        for sub in p.get("Subscription", []):
            self.client("sns").subscribe(TopicArn=arn, Protocol=sub["Protocol"], Endpoint=sub["Endpoint"])
        return arn, {"TopicArn": arn, "TopicName": name}

    def _topic_policy(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        for topic in p["Topics"]:
            self.client("sns").set_topic_attributes(
                TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"])
            )
        return logical_id, {}

    def _subscription(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        arn = self.client("sns").subscribe(
            TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p.get("Endpoint", "")
        )["SubscriptionArn"]
        return arn, {}

    # ------------------------------------------------------------------ data
    def _table(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ddb = self.client("dynamodb")
        name = p.get("TableName") or self._name(logical_id, 255)
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": p["AttributeDefinitions"],
            "KeySchema": p["KeySchema"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        for key in (
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "StreamSpecification",
            "ProvisionedThroughput",
        ):
            if key in p:
                args[key] = p[key]
        if "SSESpecification" in p:
            sse = dict(p["SSESpecification"])
            sse["Enabled"] = bool(sse.pop("SSEEnabled", True))
            args["SSESpecification"] = sse
        if _tags(p):
            args["Tags"] = _tags(p)
        described = ddb.create_table(**args)["TableDescription"]
        if "TimeToLiveSpecification" in p:
            ttl = p["TimeToLiveSpecification"]
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": bool(ttl["Enabled"]),
                },
            )
        pitr = (p.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
        if pitr:
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        return name, {"Arn": described["TableArn"], "StreamArn": described.get("LatestStreamArn", "")}

    def _key(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kms = self.client("kms")
        args: dict[str, Any] = {
            "Description": p.get("Description", ""),
            "KeyUsage": p.get("KeyUsage", "ENCRYPT_DECRYPT"),
            "KeySpec": p.get("KeySpec", "SYMMETRIC_DEFAULT"),
            "MultiRegion": bool(p.get("MultiRegion", False)),
        }
        if "KeyPolicy" in p:
            policy = p["KeyPolicy"]
            args["Policy"] = policy if isinstance(policy, str) else json.dumps(policy)
        if _tags(p):
            args["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags(p)]
        meta = kms.create_key(**args)["KeyMetadata"]
        if p.get("EnableKeyRotation"):
            rotation: dict[str, Any] = {"KeyId": meta["KeyId"]}
            if "RotationPeriodInDays" in p:
                rotation["RotationPeriodInDays"] = int(p["RotationPeriodInDays"])
            kms.enable_key_rotation(**rotation)
        if p.get("Enabled") is False:
            kms.disable_key(KeyId=meta["KeyId"])
        return meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    def _alias(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
        return p["AliasName"], {}

    def _bucket(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        s3 = self.client("s3")
        name = p.get("BucketName") or self._name(logical_id.lower(), 63).lower()
        args: dict[str, Any] = {"Bucket": name}
        if self.stack.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.stack.region}
        if p.get("ObjectLockEnabled"):
            args["ObjectLockEnabledForBucket"] = True
        s3.create_bucket(**args)
        if "BucketEncryption" in p:
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            rules = [
                {
                    **(
                        {"BucketKeyEnabled": bool(rule["BucketKeyEnabled"])}
                        if "BucketKeyEnabled" in rule
                        else {}
                    ),
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                }
                for rule in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "VersioningConfiguration" in p:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]}
            )
        if "PublicAccessBlockConfiguration" in p:
            s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration={
                    k: bool(v) for k, v in p["PublicAccessBlockConfiguration"].items()
                },
            )
        if "ObjectLockConfiguration" in p:
            s3.put_object_lock_configuration(
                Bucket=name, ObjectLockConfiguration=p["ObjectLockConfiguration"]
            )
        if "LifecycleConfiguration" in p:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": p["LifecycleConfiguration"]["Rules"]}
            )
        if _tags(p):
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(p)})
        return name, {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{self.stack.region}.amazonaws.com",
        }

    def _bucket_policy(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"]))
        return p["Bucket"], {}

    def _secret(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        args: dict[str, Any] = {"Name": p.get("Name") or self._name(logical_id, 256)}
        if "SecretString" in p:
            args["SecretString"] = p["SecretString"]
        elif "GenerateSecretString" in p:
            gen = p["GenerateSecretString"]
            password = self.client("secretsmanager").get_random_password(
                PasswordLength=int(gen.get("PasswordLength", 32)),
                ExcludeCharacters=gen.get("ExcludeCharacters", ""),
                ExcludePunctuation=bool(gen.get("ExcludePunctuation", False)),
            )["RandomPassword"]
            if "SecretStringTemplate" in gen:
                body = json.loads(gen["SecretStringTemplate"])
                body[gen["GenerateStringKey"]] = password
                args["SecretString"] = json.dumps(body)
            else:
                args["SecretString"] = password
        for key in ("KmsKeyId", "Description"):
            if key in p:
                args[key] = p[key]
        arn = self.client("secretsmanager").create_secret(**args)["ARN"]
        return arn, {"Id": arn}

    def _ssm_parameter(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = p.get("Name") or f"/{self.stack.name}/{logical_id}"
        self.client("ssm").put_parameter(Name=name, Value=str(p["Value"]), Type=p.get("Type", "String"))
        return name, {"Type": p.get("Type", "String"), "Value": p["Value"]}

    # ------------------------------------------------------------------ IAM and code
    def _role(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = self.client("iam")
        name = p.get("RoleName") or self._name(logical_id)
        role = iam.create_role(
            RoleName=name,
            Path=p.get("Path", "/"),
            AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
        )["Role"]
        for policy in p.get("Policies", []):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=_policy_document(policy["PolicyDocument"]),
            )
        for arn in p.get("ManagedPolicyArns", []):
            try:
                iam.attach_role_policy(RoleName=name, PolicyArn=arn)
            except iam.exceptions.NoSuchEntityException:
                log.debug("managed policy %s unknown to moto; not attached to %s", arn, name)
        return name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}

    def _policy(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = self.client("iam")
        for role in p.get("Roles", []):
            iam.put_role_policy(
                RoleName=role,
                PolicyName=p["PolicyName"],
                PolicyDocument=_policy_document(p["PolicyDocument"]),
            )
        return p["PolicyName"], {}

    def _managed_policy(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = self.client("iam")
        name = p.get("ManagedPolicyName") or self._name(logical_id, 128)
        arn = iam.create_policy(PolicyName=name, PolicyDocument=_policy_document(p["PolicyDocument"]))[
            "Policy"
        ]["Arn"]
        for role in p.get("Roles", []):
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        return arn, {"PolicyArn": arn}

    def _layer(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        source = self._source_dir(logical_id)
        name = p.get("LayerName") or logical_id
        arn = self.client("lambda").publish_layer_version(
            LayerName=name,
            Content={"ZipFile": _placeholder_zip()},
            CompatibleRuntimes=p.get("CompatibleRuntimes", []),
        )["LayerVersionArn"]
        self._layer_dirs[arn] = source
        return arn, {"LayerVersionArn": arn}

    def _source_dir(self, logical_id: str) -> Path:
        # SAM logical ids of layers carry a hash suffix: "CommonLayera5199c20ec" → "CommonLayer".
        for candidate, path in self.code_dirs.items():
            if logical_id == candidate or (
                logical_id.startswith(candidate) and len(logical_id) == len(candidate) + 10
            ):
                return path
        raise ProvisioningError(f"no local code for {logical_id}")

    def _function(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = p.get("FunctionName") or self._name(logical_id)
        env = {k: str(v) for k, v in ((p.get("Environment") or {}).get("Variables") or {}).items()}
        created = self.client("lambda").create_function(
            FunctionName=name,
            Runtime=p.get("Runtime", "python3.12"),
            Role=p["Role"],
            Handler=p["Handler"],
            Code={"ZipFile": _placeholder_zip()},
            Timeout=int(p.get("Timeout", 3)),
            MemorySize=int(p.get("MemorySize", 128)),
            Environment={"Variables": env},
            Layers=p.get("Layers", []),
            TracingConfig=p.get("TracingConfig", {"Mode": "PassThrough"}),
        )
        layer_dirs = tuple(self._layer_dirs[arn] for arn in p.get("Layers", []) if arn in self._layer_dirs)
        self.runtime.register(
            FunctionSpec(
                logical_id=logical_id,
                name=name,
                arn=created["FunctionArn"],
                handler=p["Handler"],
                code_dir=self._source_dir(logical_id),
                layer_dirs=layer_dirs,
                environment=env,
                timeout=int(p.get("Timeout", 3)),
                memory_mb=int(p.get("MemorySize", 128)),
                # (a Number parameter arrives as a string, as CloudFormation passes it)
                reserved_concurrency=(
                    int(p["ReservedConcurrentExecutions"]) if "ReservedConcurrentExecutions" in p else None
                ),
            )
        )
        return name, {"Arn": created["FunctionArn"]}

    def _event_invoke_config(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Asynchronous invocation settings: the local Lambda's queue retries and routes by them."""
        on_failure = ((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        config = AsyncConfig(
            maximum_retry_attempts=int(p.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)),
            maximum_event_age_seconds=int(p.get("MaximumEventAgeInSeconds", DEFAULT_ASYNC_MAX_AGE)),
            on_failure=str(on_failure) if on_failure else None,
        )
        self.runtime.configure_async(str(p["FunctionName"]), config)
        return f"{p['FunctionName']}:{p.get('Qualifier', '$LATEST')}", {}

    def _event_source_mapping(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Lambda's pollers (localcloud.sqs_mapping), not moto's: moto would invoke the function
        inside each SendMessage call."""
        if self.on_event_source_mapping is None:
            raise ProvisioningError("no event source mappings without the local cloud's pollers")
        return self.on_event_source_mapping(logical_id, p)

    def _rest_api(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        api = self.client("apigateway").create_rest_api(name=p.get("Name") or logical_id)
        return api["id"], {"RootResourceId": api.get("rootResourceId", ""), "Body": p.get("Body", {})}

    def _state_machine(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        definition = p.get("DefinitionString")
        if definition is None:
            definition = json.dumps(p["Definition"])
        for key, value in (p.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        name = p.get("StateMachineName") or self._name(logical_id, 80)
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=p.get("RoleArn", self._arn("iam", "role/localcloud-states", region=False)),
            type=p.get("StateMachineType", "STANDARD"),
        )["stateMachineArn"]
        return arn, {"Arn": arn, "Name": name}

    def _log_group(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        logs = self.client("logs")
        name = p.get("LogGroupName") or f"/localcloud/{self._name(logical_id)}"
        logs.create_log_group(logGroupName=name)
        if "RetentionInDays" in p:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
        return name, {"Arn": self._arn("logs", f"log-group:{name}:*")}

    def _alarm(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = p.get("AlarmName") or self._name(logical_id, 255)
        allowed = {
            "AlarmDescription",
            "ActionsEnabled",
            "OKActions",
            "AlarmActions",
            "InsufficientDataActions",
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Dimensions",
            "Period",
            "Unit",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "Metrics",
        }
        args = {k: v for k, v in p.items() if k in allowed}
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in args:
                args[key] = int(args[key])
        if "Threshold" in args:
            args["Threshold"] = float(args["Threshold"])
        for action in args.get("AlarmActions", []) + args.get("OKActions", []):
            if action.split(":")[2] == "sns":
                refusal = publish_refusal(
                    self.client("kms"), self.client("sns"), action, CLOUDWATCH_PRINCIPAL
                )
                if refusal:  # AWS would create the alarm and drop every notification it sends
                    raise ProvisioningError(f"{logical_id}: {refusal}")
        self.client("cloudwatch").put_metric_alarm(AlarmName=name, **args)
        return name, {"Arn": self._arn("cloudwatch", f"alarm:{name}")}

    def _dashboard(self, logical_id: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = p.get("DashboardName") or self._name(logical_id)
        body = p["DashboardBody"]
        self.client("cloudwatch").put_dashboard(
            DashboardName=name, DashboardBody=body if isinstance(body, str) else json.dumps(body)
        )
        return name, {}


_TARGET_KEYS = {
    "Id",
    "Arn",
    "RoleArn",
    "Input",
    "InputPath",
    "InputTransformer",
    "RetryPolicy",
    "DeadLetterConfig",
    "SqsParameters",
}
_QUEUE_ATTRIBUTES = {
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
}
