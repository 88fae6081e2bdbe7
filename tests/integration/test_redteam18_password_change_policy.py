"""Red team (issue 18): POST /auth/password (no authorizer, no request middleware) is a request
the tenant policy does not govern.

The allow-list and the session timeout moved to the request middleware, which the password route
does not run; SignInService.change_password checks only that the token's session is live. So:

- from an address outside the allow-list, a signed-in user's token and password change the
  password (every other session of the user ends) and get a brand-new session;
- a session older than a tightened session_timeout_minutes -- refused by the authorizer and by
  the middleware -- mints a fresh session (new created_at, the old token's ``amr`` copied: no
  second factor) through the password route, i.e. the timeout can be renewed forever.

The contract: "A stored policy or quota change governs every request that starts 5 seconds after
its 200, in every function."
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pyotp
import pytest

from tenant_security.errors import DomainError
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.signin import SignInService
from tenant_security.models import parse_security_policies
from tests.integration.test_sign_in_security import PASSWORD, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def _signed_in(world: dict[str, Any]) -> tuple[SignInService, dict[str, Any]]:  # noqa: F811
    signin: SignInService = world["service"]()
    challenge = signin.login("acme", "alice", PASSWORD, "10.0.0.1")["challenge_token"]
    token = signin.verify(challenge, pyotp.TOTP(world["secret"]).at(world["clock"]()), None, "10.0.0.1")
    return signin, token


def test_a_password_change_from_outside_the_allow_list_is_refused(world: dict[str, Any]) -> None:  # noqa: F811
    signin, token = _signed_in(world)
    with pytest.raises(DomainError) as refused:
        signin.change_password(token["access_token"], PASSWORD, "a brand new passphrase", "203.0.113.9")
    assert refused.value.status in (401, 403)
    # and nothing changed: the session signed in from inside the allow-list is still the only one
    live = SessionStore(world["ddb"], "sessions", "counters").list_live("acme", "alice")
    assert [s.session_id for s in live] == [token["session_id"]]


def test_a_session_older_than_a_tightened_timeout_cannot_mint_a_new_one(world: dict[str, Any]) -> None:  # noqa: F811
    signin, token = _signed_in(world)
    # the session began 10 minutes ago (its token, 15 minutes long, is still valid) ...
    world["ddb"].update_item(
        TableName="sessions",
        Key={"tenant_id": {"S": "acme"}, "session_id": {"S": token["session_id"]}},
        UpdateExpression="SET created_at = :c",
        ExpressionAttributeValues={":c": {"N": str(int(time.time()) - 600)}},
    )
    # ... and the tenant's policy now ends sessions after 5 minutes (authorizer and middleware
    # refuse this token from now on)
    tenants = signin.tenants
    tenants.record = replace(  # type: ignore[attr-defined]
        tenants.record,  # type: ignore[attr-defined]
        policies=parse_security_policies(
            {"access_control": {"ip_whitelist": ["10.0.0.0/8"], "session_timeout_minutes": 5}}
        ),
    )
    with pytest.raises(DomainError) as refused:
        signin.change_password(token["access_token"], PASSWORD, "a brand new passphrase", "10.0.0.1")
    assert refused.value.status == 401
