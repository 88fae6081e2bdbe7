"""`make demo` on the local cloud: the guided tour runs every step for real and says what it saw."""

from __future__ import annotations

from pathlib import Path

from tenant_security_tools.demo import Tour, main
from tests.support.cloud import RunningCloud
from tests.support.identity import Identity


def test_the_guided_tour_runs_every_step(
    platform_cloud: RunningCloud, platform_admin: Identity, tmp_path: Path
) -> None:
    lines: list[str] = []
    tour = Tour(platform_cloud.info, tmp_path, out=lines.append)
    result = tour.run()
    told = "\n".join(lines)

    assert tour.step_number == 9
    assert "$ tenant-security bootstrap-admin" in told
    assert result["audit"] == "VALID"
    assert result["sox"] in ("compliant", "non_compliant", "insufficient_evidence")
    acme, globex = result["tenants"]
    assert f"{acme}: ACTIVE" in told
    assert "ACTIVE" in told.split("tenant-security onboard", 1)[1]  # the CLI followed the event
    assert f"GET /tenants/{globex}/files → 403" in told
    assert "then 429 rate_limited" in told
    for tenant_id in (acme, globex):
        reply = platform_cloud.http("GET", f"/tenants/{tenant_id}", headers=platform_admin.headers)
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "ACTIVE"


def test_the_tour_says_how_to_start_the_local_cloud(tmp_path: Path) -> None:
    assert main(["--state-dir", str(tmp_path)]) == 2
