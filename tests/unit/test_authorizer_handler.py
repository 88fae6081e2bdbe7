"""The authorizer handler fails closed: any error becomes API Gateway's 401, never an Allow."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_security import services
from tenant_security.errors import Unauthorized
from tests.unit.test_sample_events import FakeContext, load_function, sample


class Exploding:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def authorize(self, event: dict[str, Any]) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    "error", [RuntimeError("dynamodb down"), KeyError("methodArn"), Unauthorized("bad token")]
)
def test_any_error_is_unauthorized(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    module = load_function("authorizer")
    monkeypatch.setattr(services, "request_authorizer", lambda: Exploding(error))
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        module.lambda_handler(sample("authorizer_request.json"), FakeContext())


def test_a_decision_is_returned_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_function("authorizer")
    decision = {
        "principalId": "acme/alice",
        "policyDocument": {"Version": "2012-10-17", "Statement": []},
        "context": {"tenant_id": "acme"},
    }

    class Fixed:
        def authorize(self, event: dict[str, Any]) -> dict[str, Any]:
            return decision

    monkeypatch.setattr(services, "request_authorizer", Fixed)
    assert module.lambda_handler(sample("authorizer_request.json"), FakeContext()) == decision
