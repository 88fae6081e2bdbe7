"""The session-scoped admin's token renewal (tests/support/identity.py): parallel requests of one
test share one sign-in, and a throttled sign-in waits the Retry-After it was given."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.support import identity as identity_module
from tests.support.identity import Identity, RenewingIdentity


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


class _SignIn:
    """The two sign-in steps, counting the logins; the first ``throttled`` logins get a 429."""

    def __init__(self, throttled: int = 0) -> None:
        self.logins = 0
        self.throttled = throttled
        self.lock = threading.Lock()

    def __call__(
        self, cloud: Any, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> requests.Response:
        if path == "/auth/login":
            with self.lock:
                self.logins += 1
                number = self.logins
            time.sleep(0.05)  # long enough for parallel readers to overlap
            if number <= self.throttled:
                return _reply(429, {"error": "too_many_attempts"}, {"Retry-After": "0"})
            return _reply(200, {"challenge_token": f"challenge-{number}"})
        return _reply(200, {"access_token": f"token-after-{self.logins}", "expires_in": 900})


def _expired_admin() -> RenewingIdentity:
    admin = RenewingIdentity.of(
        None,  # type: ignore[arg-type]  # the stubbed post never uses it
        Identity("platform", "admin", "pw", "old", backup_codes=[f"code-{n}" for n in range(8)]),
    )
    admin._expires_at = time.time()  # within RENEW_BEFORE: the next read renews
    return admin


def test_parallel_reads_of_an_expiring_token_sign_in_once(monkeypatch: pytest.MonkeyPatch) -> None:
    sign_in = _SignIn()
    monkeypatch.setattr(identity_module, "post", sign_in)
    admin = _expired_admin()
    with ThreadPoolExecutor(max_workers=8) as pool:
        tokens = list(pool.map(lambda _: admin.token, range(16)))
    assert sign_in.logins == 1
    assert set(tokens) == {"token-after-1"}
    assert len(admin.backup_codes) == 7  # one code spent


def test_a_throttled_renewal_tries_again_with_the_next_code(monkeypatch: pytest.MonkeyPatch) -> None:
    sign_in = _SignIn(throttled=2)
    monkeypatch.setattr(identity_module, "post", sign_in)
    admin = _expired_admin()
    assert admin.token == "token-after-3"
    assert sign_in.logins == 3
