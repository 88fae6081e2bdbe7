"""The session-scoped platform admin outlives its access token (15 minutes; the suite runs longer)."""

from __future__ import annotations

import time

from tests.support.cloud import RunningCloud
from tests.support.identity import Identity, RenewingIdentity


def test_the_platform_admin_signs_in_again_before_its_token_runs_out(
    platform_cloud: RunningCloud, platform_admin: Identity
) -> None:
    assert isinstance(platform_admin, RenewingIdentity)
    before, codes = platform_admin.token, len(platform_admin.backup_codes)
    assert platform_admin.token == before  # a fresh token is kept

    platform_admin._expires_at = time.time() + RenewingIdentity.RENEW_BEFORE - 1  # as 9 minutes later
    renewed = platform_admin.token

    assert renewed != before
    assert len(platform_admin.backup_codes) == codes - 1  # a backup code, never a TOTP code a test uses
    tenant = platform_admin.tenant_id
    reply = platform_cloud.http("GET", f"/tenants/{tenant}/users", headers=platform_admin.headers)
    assert reply.status_code == 200, reply.text
    assert platform_admin.token == renewed
