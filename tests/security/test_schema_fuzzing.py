"""Schemathesis against the local cloud's /openapi.json, signed in as a tenant admin.

Every operation of the document gets valid and invalid requests (a fixed derandomised seed, a
bounded number of cases per operation, so CI runs the same cases every time). Each response must
not be a 5xx and must match the document: a documented status, content type and body schema.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
)

from tests.support.cloud import RunningCloud
from tests.support.identity import mint_token, seed_tenant

pytestmark = pytest.mark.e2e

TENANT = "fuzz-tenant"
CASES_PER_OPERATION = 6
# Rules the handlers enforce that the document does not (yet) express, so a schema-valid request
# may be refused (400) and an odd one accepted: file-key segments ('..', '.uploads/'), the contents
# of opaque `next` tokens, from <= to, "a code or a backup code", pydantic's lax datetimes (a number
# is a Unix time). Everything else the document promises -- no 5xx, documented statuses, content
# types, bodies and headers -- is checked.
NOT_EXPRESSED_IN_THE_DOCUMENT = [positive_data_acceptance, negative_data_rejection]
# Every reply body is checked against its model (tenant_security.models.replies): schemathesis runs
# all its checks unless told otherwise; this one must never be among those left out.
assert response_schema_conformance not in NOT_EXPRESSED_IN_THE_DOCUMENT


@pytest.fixture(scope="module")
def api_schema(platform_cloud: RunningCloud) -> Any:
    seed_tenant(platform_cloud, TENANT, database="schema")
    platform_cloud.client("s3").create_bucket(Bucket=f"dcisionai-10ca1000-tenant-{TENANT}-data")
    return schemathesis.openapi.from_url(f"{platform_cloud.info['api_url']}/openapi.json")


def test_the_api_answers_as_its_openapi_document_says(platform_cloud: RunningCloud, api_schema: Any) -> None:
    api_url = platform_cloud.info["api_url"]
    failures: list[str] = []
    tokens: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30
    for operation in operations:
        # The admin's own tenant, so requests get past the authorizer to the handlers.
        fixed = {"tenant_id": TENANT} if "{tenant_id}" in operation.path else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode, path_parameters=fixed))
            @settings(
                max_examples=CASES_PER_OPERATION,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],  # no shrinking: report, do not minimise
            )
            def run(case: Any) -> None:
                # A fresh session after a generated "revoke every session" (or a sign-out) ended it.
                token = (
                    tokens[0]
                    if tokens
                    else mint_token(platform_cloud, TENANT, "fuzz-admin", ["tenant-admin"])
                )
                tokens[:] = (
                    []
                    if case.method in ("DELETE", "POST") and case.path.endswith(("/sessions", "/logout"))
                    else [token]
                )
                case.call_and_validate(
                    base_url=api_url,
                    headers={"Authorization": f"Bearer {token}"},
                    additional_checks=[response_schema_conformance],  # on by default; stated here
                    excluded_checks=NOT_EXPRESSED_IN_THE_DOCUMENT,
                )

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong in a request without inputs
            except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")
    assert not failures, f"{len(failures)} failing:\n\n" + "\n\n".join(failures)
