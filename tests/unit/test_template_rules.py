"""Rules template.yaml must keep (checked on the SAM-transformed template)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcloud.eventbridge import rate_seconds
from localcloud.intrinsics import Resolver
from localcloud.template import transform_template
from tests.support.cloud import REAL_TEMPLATE
from tests.support.iam import statements


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return transform_template(REAL_TEMPLATE, {}, "us-east-1")[0]


def _all_policy_documents(cfn: dict[str, Any]) -> list[dict[str, Any]]:
    docs = []
    for res in cfn["Resources"].values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            docs += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for key in ("KeyPolicy", "PolicyDocument"):
            if key in props:
                docs.append(props[key])
    return docs


def test_no_statement_allows_every_action(cfn: dict[str, Any]) -> None:
    for document in _all_policy_documents(cfn):
        for statement in statements(document):
            if statement.get("Effect") == "Deny":
                continue  # a wildcard in a Deny (TLS-only bucket policies) narrows, never grants
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            assert "*" not in actions, statement
            assert not any(a.endswith(":*") for a in actions), statement


def test_each_function_has_its_own_role(cfn: dict[str, Any]) -> None:
    roles = [
        r["Properties"]["Role"] for r in cfn["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    ]
    assert len(roles) == len({str(r) for r in roles})


def test_functions_run_python_3_12_with_tracing(cfn: dict[str, Any]) -> None:
    for res in cfn["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function":
            assert res["Properties"]["Runtime"] == "python3.12"
            assert res["Properties"]["TracingConfig"] == {"Mode": "Active"}
            env = res["Properties"]["Environment"]["Variables"]
            assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"  # events carry tokens


def test_tables_have_point_in_time_recovery_and_encryption(cfn: dict[str, Any]) -> None:
    tables = {k: r for k, r in cfn["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert set(tables) == {
        "TenantsTable",
        "UsersTable",
        "SessionsTable",
        "CountersTable",
        "AuditHeadsTable",
        "AuditIndexTable",
        "AuditSubjectKeysTable",
        "IdempotencyTable",
        "PolicyHistoryTable",
        "ApiClientsTable",
    }
    for table in tables.values():
        props = table["Properties"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
    for name in ("SessionsTable", "CountersTable", "IdempotencyTable", "AuditHeadsTable"):
        assert tables[name]["Properties"]["TimeToLiveSpecification"]["Enabled"] is True


def test_platform_keys(cfn: dict[str, Any]) -> None:
    res = cfn["Resources"]
    assert res["TokenSigningKey"]["Properties"]["KeySpec"] == "ECC_NIST_P256"
    assert res["TokenSigningKey"]["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    for name in ("AuditLogKey", "PlatformMasterKey"):
        assert res[name]["Properties"]["EnableKeyRotation"] is True


def test_the_authorizer_is_keyed_on_token_and_source_ip(cfn: dict[str, Any]) -> None:
    (api,) = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    (scheme,) = api["Properties"]["Body"]["securityDefinitions"].values()
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == "method.request.header.Authorization, context.identity.sourceIp"
    responses = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX"):
        assert '"error"' in responses[kind]["responseTemplates"]["application/json"]


def _rule_targeting(cfn: dict[str, Any], function: str) -> dict[str, Any]:
    for res in cfn["Resources"].values():
        if res["Type"] == "AWS::Events::Rule" and "EventPattern" in res["Properties"]:
            for target in res["Properties"]["Targets"]:
                if target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}:
                    return dict(res["Properties"])
    raise AssertionError(f"no rule targets {function}")


def test_every_platform_event_reaches_the_audit_writer_with_retries_and_a_dead_letter_queue(
    cfn: dict[str, Any],
) -> None:
    rule = cfn["Resources"]["AuditWriterFunctionPlatformEvents"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["dcisionai.tenant-security"]
    assert {"User Activity", "Security Alert", "Tenant Onboarded", "Tenant Onboarding Failed"} <= set(
        pattern["detail-type"]
    )
    (target,) = rule["Targets"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeliveryDLQ", "Arn"]}}
    alarm = cfn["Resources"]["EventDeliveryDLQAlarm"]["Properties"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["EventDeliveryDLQ", "QueueName"]}}
    ]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]


def test_rules_match_the_source_as_well_as_the_kind_of_event(cfn: dict[str, Any]) -> None:
    resources = cfn["Resources"]
    onboarding = resources["OnboardingStateMachineOnboardingRequested"]["Properties"]["EventPattern"]
    assert onboarding["source"] == {"Ref": "OnboardingEventSources"}
    offboarding = resources["OffboardingStateMachineOffboardingRequested"]["Properties"]["EventPattern"]
    assert offboarding["source"] == ["dcisionai.tenant-security"]
    # every other source of the platform's kinds reaches the audit writer, which records it as forged
    forged = resources["AuditWriterFunctionForgedPlatformEvents"]["Properties"]["EventPattern"]
    assert forged["source"] == [{"anything-but": ["dcisionai.tenant-security"]}]
    genuine = resources["AuditWriterFunctionPlatformEvents"]["Properties"]["EventPattern"]
    assert set(genuine["detail-type"]) <= set(forged["detail-type"])
    assert "Tenant Offboarding Requested" in forged["detail-type"]
    unlisted = resources["AuditWriterFunctionUnlistedOnboardingRequests"]["Properties"]["EventPattern"]
    assert unlisted == {
        "source": [{"anything-but": {"Ref": "OnboardingEventSources"}}],
        "detail-type": ["Tenant Onboarding Requested"],
    }


def test_the_platform_audit_bucket_is_object_locked_in_compliance_mode(cfn: dict[str, Any]) -> None:
    bucket = cfn["Resources"]["PlatformAuditBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
        "Fn::GetAtt": ["AuditLogKey", "Arn"]
    }


def test_the_checkpoint_key_signs_and_only_the_writer_may_sign(cfn: dict[str, Any]) -> None:
    key = cfn["Resources"]["AuditCheckpointKey"]["Properties"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    signers = set()
    for logical_id, res in cfn["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            for statement in statements(policy["PolicyDocument"]):
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                if "kms:Sign" in actions and statement["Resource"] == {
                    "Fn::GetAtt": ["AuditCheckpointKey", "Arn"]
                }:
                    signers.add(logical_id)
    assert signers == {"AuditWriterFunctionRole"}


def test_every_skipped_checkov_check_says_why() -> None:
    from localcloud.template import load_template

    skipped = 0
    for name, resource in load_template(REAL_TEMPLATE)["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skipped += 1
            assert skip["id"].startswith(("CKV_", "CKV2_")), name
            assert len(skip.get("comment", "")) >= 40, f"{name} skips {skip['id']} without a reason"
    assert skipped  # the reasons live in the template (make lint runs checkov on it)


def _resource_strings(resource: Any) -> list[str]:
    """The ARN patterns of a statement's Resource (Sub strings; both branches of an If)."""
    if isinstance(resource, list):
        return [s for item in resource for s in _resource_strings(item)]
    if isinstance(resource, str):
        return [resource]
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return [sub if isinstance(sub, str) else sub[0]]
    if isinstance(resource, dict) and "Fn::If" in resource:
        return _resource_strings(resource["Fn::If"][1:])
    return []  # a Ref or GetAtt names one resource


def test_every_wildcard_resource_of_a_function_carries_a_condition(cfn: dict[str, Any]) -> None:
    # "*" (any resource) and "key/*" (any KMS key: a key id cannot be known in advance) are
    # narrowed by a condition: the ManagedBy tag, the tenant alias naming, the request's tags.
    checked = 0
    for logical_id, res in cfn["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            for statement in statements(policy["PolicyDocument"]):
                wild = [
                    r for r in _resource_strings(statement["Resource"]) if r == "*" or r.endswith(":key/*")
                ]
                if wild:
                    checked += 1
                    assert statement.get("Condition"), (logical_id, statement.get("Sid"), wild)
    assert checked >= 5


def test_tenant_keys_are_reached_only_through_their_alias_or_the_stacks_tag(cfn: dict[str, Any]) -> None:
    for res in cfn["Resources"].values():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            for statement in statements(policy["PolicyDocument"]):
                if not any(r.endswith(":key/*") for r in _resource_strings(statement["Resource"])):
                    continue
                condition = json.dumps(statement["Condition"])
                # kms:RequestAlias: a DescribeKey through the tenant alias (no lag for a new key)
                keys = ("kms:ResourceAliases", "kms:RequestAlias", "aws:ResourceTag/ManagedBy")
                assert any(key in condition for key in keys)


def _functions(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}


def test_every_function_logs_to_its_own_encrypted_group_with_a_retention(cfn: dict[str, Any]) -> None:
    groups = set()
    for name, function in _functions(cfn).items():
        group_ref = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        group = cfn["Resources"][group_ref]
        assert group["Type"] == "AWS::Logs::LogGroup", name
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["LogsKey", "Arn"]}
        groups.add(group_ref)
    assert len(groups) == len(_functions(cfn))


def test_the_functions_that_reach_postgresql_can_run_in_its_vpc_with_bounded_concurrency(
    cfn: dict[str, Any],
) -> None:
    for name, parameter in (
        ("OnboardingFunction", "OnboardingConcurrency"),
        ("DataApiFunction", "DataApiConcurrency"),
    ):
        props = _functions(cfn)[name]["Properties"]
        assert props["VpcConfig"]["Fn::If"][0] == "InVpc"
        assert props["ReservedConcurrentExecutions"]["Fn::If"][1] == {"Ref": parameter}
    writer = _functions(cfn)["AuditWriterFunction"]["Properties"]["ReservedConcurrentExecutions"]
    unreserved = {"Ref": "AWS::NoValue"}
    assert writer == {"Fn::If": ["HasAuditWriterConcurrency", {"Ref": "AuditWriterConcurrency"}, unreserved]}


def test_every_reserved_concurrency_may_be_zero_for_accounts_with_a_low_quota(cfn: dict[str, Any]) -> None:
    """Issue 16, item 10: Lambda refuses a reservation that leaves fewer than 100 unreserved
    executions; a new account may have a quota of 10, so every reservation must be optional."""
    for name, props in _functions(cfn).items():
        reserved = props["Properties"].get("ReservedConcurrentExecutions")
        if reserved is None:
            continue
        condition, parameter, otherwise = reserved["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}, name
        assert cfn["Parameters"][parameter["Ref"]]["MinValue"] == 0, name
        assert cfn["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [parameter, 0]}]}, name


def test_aurora_keeps_its_master_password_in_secrets_manager_and_its_data_encrypted(
    cfn: dict[str, Any],
) -> None:
    cluster = cfn["Resources"]["PlatformDatabaseCluster"]
    props = cluster["Properties"]
    assert cluster["Condition"] == "CreateAurora"
    assert props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props
    assert props["StorageEncrypted"] is True
    assert props["DeletionProtection"] is True
    assert "ServerlessV2ScalingConfiguration" in props
    instance = cfn["Resources"]["PlatformDatabaseInstance"]["Properties"]
    assert (instance["DBInstanceClass"], instance["PubliclyAccessible"]) == ("db.serverless", False)
    ingress = cfn["Resources"]["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [rule["SourceSecurityGroupId"] for rule in ingress] == [{"Ref": "FunctionSecurityGroup"}]


def test_every_alarm_reaches_the_alert_topic(cfn: dict[str, Any]) -> None:
    alarms = {
        k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert {
        "EventDeliveryDLQAlarm",
        "AuthorizerErrorsAlarm",
        "OnboardingFailuresAlarm",
        "SecurityAlertsAlarm",
        "AuditLagAlarm",
        "AuditRecordsLostAlarm",
        "ApiServerErrorsAlarm",
    } <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlertTopic"}], name
        assert "runbook" in alarm["AlarmDescription"] or name == "EventDeliveryDLQAlarm"


def test_the_security_alert_alarm_watches_the_rule_that_feeds_the_topic(cfn: dict[str, Any]) -> None:
    rule = cfn["Resources"]["SecurityAlertsToTopic"]["Properties"]
    alarm = cfn["Resources"]["SecurityAlertsAlarm"]["Properties"]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions["RuleName"] == rule["Name"]
    assert dimensions["EventBusName"] == rule["EventBusName"]


def test_outputs_and_parameters_a_deployer_needs(cfn: dict[str, Any]) -> None:
    assert {"ApiUrl", "EventBusName", "JwksUrl", "DocsUrl", "MfaEnrolmentUrl", "DashboardUrl"} <= set(
        cfn["Outputs"]
    )
    assert {
        "ResourcePrefix",
        "AuthorizerCacheTtl",
        "AlertEmail",
        "PlatformDatabase",
        "DatabaseSecretArn",
        "VpcSubnetIds",
        "LogRetentionDays",
    } <= set(cfn["Parameters"])


def test_the_docs_function_has_no_aws_permissions(cfn: dict[str, Any]) -> None:
    role = cfn["Resources"][_functions(cfn)["DocsFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]]
    assert not role["Properties"].get("Policies")


def test_the_iam_check_flags_a_call_the_role_does_not_allow(cfn: dict[str, Any]) -> None:
    # conftest runs this check on the calls counted by the local cloud after the e2e tests.
    from tests.support.iam import ungranted_calls

    calls = {
        "localcloud-AuthorizerFunction|dynamodb:GetItem": 3,  # granted
        "localcloud-AuditWriterFunction|dynamodb:TransactWriteItems": 1,  # through its item actions
        "localcloud-AuditWriterFunction|s3:HeadObject": 1,  # s3:GetObject
        "localcloud-DataApiFunction|s3:PutObject": 2,
        "localcloud-OnboardingFunction|s3:HeadBucket": 1,  # s3:ListBucket
        "localcloud-OnboardingFunction|s3:PutObjectLockConfiguration": 1,  # s3:PutBucketObjectLock...
        "localcloud-DataApiFunction|sts:GetCallerIdentity": 1,  # needs no permission
        "test|kms:ScheduleKeyDeletion": 1,  # the tests' own call
        "localcloud-DocsFunction|kms:Decrypt": 1,  # the docs function has no AWS permission
        "localcloud-AuthorizerFunction|s3:PutObject": 1,
        "localcloud-HealthFunction|dynamodb:TransactWriteItems": 1,
        "localcloud-ComplianceApiFunction|s3:DeleteObjects": 1,  # the auditors' API deletes nothing
    }
    assert ungranted_calls(cfn, calls) == [
        "AuthorizerFunction: s3:PutObject",
        "ComplianceApiFunction: s3:DeleteObject",
        "DocsFunction: kms:Decrypt",
        "HealthFunction: dynamodb:TransactWriteItems",
    ]


@pytest.mark.parametrize(
    ("method", "path", "query", "operation"),
    [
        ("HEAD", "/bucket", "", "HeadBucket"),
        ("HEAD", "/bucket/a/b.txt", "", "HeadObject"),
        ("GET", "/bucket", "list-type=2&prefix=x", "ListObjectsV2"),
        ("GET", "/bucket", "versions&prefix=records/", "ListObjectVersions"),
        ("GET", "/bucket/key", "versionId=3", "GetObjectVersion"),
        ("PUT", "/bucket", "object-lock", "PutObjectLockConfiguration"),
        ("PUT", "/bucket/key", "retention", "PutObjectRetention"),
        ("PUT", "/bucket", "", "CreateBucket"),
        ("POST", "/bucket", "delete", "DeleteObjects"),
        ("DELETE", "/bucket/key", "versionId=1", "DeleteObjectVersion"),
    ],
)
def test_s3_calls_are_counted_by_operation(method: str, path: str, query: str, operation: str) -> None:
    from localcloud.awscalls import s3_operation

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    assert s3_operation(environ) == operation


def test_the_sign_in_web_acl_is_optional_and_rate_limits_auth() -> None:
    from localcloud.template import transform_template
    from tests.support.cloud import REAL_TEMPLATE

    default = transform_template(REAL_TEMPLATE, {}, "us-east-1")[0]
    assert default["Resources"]["SignInWebAcl"]["Condition"] == "HasWaf"
    assert default["Conditions"]["HasWaf"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WafRequestsPerFiveMinutes"}, 0]}]
    }
    acl = default["Resources"]["SignInWebAcl"]["Properties"]
    (rule,) = acl["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["Limit"] == {"Ref": "WafRequestsPerFiveMinutes"}
    assert rate["AggregateKeyType"] == "IP"
    # the unauthenticated credential checks: sign-in and the OAuth 2.0 token endpoint
    matched = [
        s["ByteMatchStatement"]["SearchString"]
        for s in rate["ScopeDownStatement"]["OrStatement"]["Statements"]
    ]
    assert matched == ["/auth/", "/oauth2/token"]
    assert rule["Action"] == {"Block": {}}
    association = default["Resources"]["SignInWebAclAssociation"]
    assert association["Condition"] == "HasWaf"
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": ["SignInWebAcl", "Arn"]}


def test_an_audit_event_the_writer_keeps_failing_on_reaches_the_dead_letter_queue(
    cfn: dict[str, Any],
) -> None:
    # Events reach the writer through the audit queue: what it fails on is received again, and
    # after maxReceiveCount moved to the dead-letter queue by SQS
    queue = cfn["Resources"]["AuditEventsQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["EventDeliveryDLQ", "Arn"]},
        "maxReceiveCount": 50,
    }
    # its schedules invoke it asynchronously: a tick it fails on goes there too, not nowhere
    config = cfn["Resources"]["AuditWriterFunctionEventInvokeConfig"]["Properties"]
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["EventDeliveryDLQ", "Arn"]
    }
    assert config["MaximumRetryAttempts"] == 2
    policy = cfn["Resources"]["AuditWriterFunctionRole"]["Properties"]["Policies"]
    statements = [s for p in policy for s in p["PolicyDocument"]["Statement"]]
    assert any(
        s["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"])
        and s["Resource"] == {"Fn::GetAtt": ["EventDeliveryDLQ", "Arn"]}
        for s in statements
    )


def test_only_the_platforms_delivery_may_put_dead_letters_that_a_redrive_hands_on(
    cfn: dict[str, Any],
) -> None:
    from tenant_security.redrive import PlatformTargets, Target

    statements = cfn["Resources"]["EventDeliveryDLQPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s.get("Sid") == "OnlyThePlatformsDeliveryDeadLetters"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sqs:SendMessage")
    assert deny["Condition"] == {
        "StringNotEqualsIfExists": {"aws:PrincipalServiceName": "events.amazonaws.com"},
        "ArnNotEqualsIfExists": {"aws:PrincipalArn": {"Fn::GetAtt": ["AuditWriterFunctionRole", "Arn"]}},
    }
    # the redrive finds the platform's targets from the prefix, as the template names them
    targets = PlatformTargets.of("${ResourcePrefix}", "aws", "r", "a")
    names = {
        Target.AUDIT_WRITER: _functions(cfn)["AuditWriterFunction"]["Properties"]["FunctionName"],
        Target.ONBOARDING: cfn["Resources"]["OnboardingStateMachine"]["Properties"]["StateMachineName"],
        Target.OFFBOARDING: cfn["Resources"]["OffboardingStateMachine"]["Properties"]["StateMachineName"],
        Target.ALERTS: cfn["Resources"]["AlertTopic"]["Properties"]["TopicName"],
    }
    for target, name in names.items():
        assert targets.arn_of(target).endswith(":" + name["Fn::Sub"])


def test_traces_never_capture_a_handlers_response_or_exception(cfn: dict[str, Any]) -> None:
    """Issue 16, item 12: with Tracing Active, capture_lambda_handler put each whole response (MFA
    secrets, backup codes, tokens, secret values) into X-Ray as metadata."""
    for name, function in _functions(cfn).items():
        props = function["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        variables = props["Environment"]["Variables"]
        assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false", name
        assert variables["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false", name


def test_every_function_eventbridge_invokes_has_an_on_failure_destination_and_an_alarm_on_it(
    cfn: dict[str, Any],
) -> None:
    """EventBridge invokes Lambda asynchronously: Lambda's async retries, not the rule's, apply to
    a function error, so a function an event rule targets without an EventInvokeConfig drops a
    failing event after two retries, silently. A function only schedules invoke keeps no tick
    longer than the next one takes to come (its ticks carry nothing of their own)."""
    resources = cfn["Resources"]

    def targeted(scheduled: bool) -> set[str]:
        return {
            target["Arn"]["Fn::GetAtt"][0]
            for r in resources.values()
            if r["Type"] == "AWS::Events::Rule" and ("ScheduleExpression" in r["Properties"]) == scheduled
            for target in r["Properties"].get("Targets", [])
            if isinstance(target["Arn"], dict) and "Fn::GetAtt" in target["Arn"]
        } & set(_functions(cfn))

    invoked = targeted(scheduled=False)
    # the audit rules deliver to the audit queue instead, which dead-letters to the alarmed queue
    queue = resources["AuditEventsQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["EventDeliveryDLQ", "Arn"]}
    for rule in ("PlatformEvents", "ForgedPlatformEvents", "UnlistedOnboardingRequests"):
        (target,) = resources[f"AuditWriterFunction{rule}"]["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": ["AuditEventsQueue", "Arn"]}, rule
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EventDeliveryDLQ", "Arn"]}, rule
    (mapping,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "AuditWriterFunction"}
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    configs = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    for function in targeted(scheduled=True) - invoked:
        defaults = {name: str(p.get("Default", "")) for name, p in cfn.get("Parameters", {}).items()}
        resolver = Resolver(cfn, defaults, {}, ref=lambda name: name, get_att=lambda *_: "")
        periods = [
            rate_seconds(str(resolver.resolve(r["Properties"]["ScheduleExpression"])))
            for r in resources.values()
            if r["Type"] == "AWS::Events::Rule"
            and any(t["Arn"] == {"Fn::GetAtt": [function, "Arn"]} for t in r["Properties"].get("Targets", []))
        ]
        assert configs[function]["MaximumEventAgeInSeconds"] <= min(periods), function
    for function in invoked:
        config = configs[function]
        assert config["DestinationConfig"]["OnFailure"]["Destination"], function
        assert 60 <= config["MaximumEventAgeInSeconds"] <= 21600, function
        alarms = [
            r["Properties"]
            for r in resources.values()
            if r["Type"] == "AWS::CloudWatch::Alarm"
            and r["Properties"].get("MetricName") == "DestinationDeliveryFailures"
            and {"Name": "FunctionName", "Value": {"Ref": function}} in r["Properties"].get("Dimensions", [])
        ]
        assert alarms, f"no alarm on {function}'s failed deliveries to its destination"


def test_the_gateways_too_large_answer_names_the_api_file_limit(cfn: dict[str, Any]) -> None:
    """One number in two places: the REQUEST_TOO_LARGE gateway response must name the limit the data
    API enforces (Lambda's 6 MB event, base64), not a figure of its own."""
    from tenant_security.storage.file_keys import MAX_API_FILE_BYTES

    apis = [r["Properties"] for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    bodies = [api["Body"]["x-amazon-apigateway-gateway-responses"] for api in apis if "Body" in api]
    too_large = [body["REQUEST_TOO_LARGE"] for body in bodies if "REQUEST_TOO_LARGE" in body]
    assert len(too_large) == 1
    assert f"{MAX_API_FILE_BYTES:,} bytes" in too_large[0]["responseTemplates"]["application/json"]
