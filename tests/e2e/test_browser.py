"""The API in a real browser: Swagger UI at /docs and the MFA enrolment page at /mfa.

Headless Debian chromium (``make browser`` installs it; ``make test`` does so first), driven by
Playwright. The screenshots are kept in test-artifacts/ (swagger-ui.png, mfa-enrolment.png).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.support.cloud import ROOT, RunningCloud
from tests.support.identity import Identity, create_user, post, seed_tenant, seen

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
# As root and on a closed network: no sandbox, no background connections to Google.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.problems = []  # console errors (a CSP violation is one) and uncaught exceptions
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    yield page
    context.close()


def _screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000  # a real picture, not a blank page
    return path


def test_swagger_ui_shows_every_operation_of_the_api(platform_cloud: RunningCloud, page: Any) -> None:
    document = platform_cloud.http("GET", "/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())

    page.goto(f"{platform_cloud.api_url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)

    assert "DcisionAI Tenant Security API" in page.inner_text(".info .title")
    assert page.locator(".opblock").count() == operations
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/auth/login" in s for s in summaries)
    assert any("/tenants/{tenant_id}/records" in s.replace("\u200b", "") for s in summaries)
    # Routes behind the authorizer show the lock; the Authorize button takes a bearer token.
    assert page.locator(".btn.authorize").is_visible()
    # An operation opens with its schema and example (highlighted code: styles under the CSP).
    page.locator(".opblock-summary-path", has_text="/auth/login").first.click()
    page.wait_for_selector(".opblock-body .highlight-code, .opblock-body .model-example", timeout=10_000)
    page.locator(".opblock-summary-path", has_text="/auth/login").first.click()
    assert not page.problems, page.problems  # no CSP violation, no script error
    _screenshot(page, "swagger-ui.png")


def test_mfa_page_enrols_a_new_user_with_the_qr_code(
    platform_cloud: RunningCloud, platform_admin: Identity, page: Any
) -> None:
    seed_tenant(platform_cloud, "browsertour")
    one_time = create_user(platform_cloud, platform_admin, "browsertour", "carol", ["tenant-admin"])

    page.goto(f"{platform_cloud.api_url}/mfa")
    assert page.is_visible("text=Set up two-factor sign-in")
    page.fill("#tenant", "browsertour")
    page.fill("#username", "carol")
    page.fill("#password", one_time)
    page.click("#signin-form button")

    page.wait_for_selector("#step-enrol:not([hidden])", timeout=15_000)
    qr = page.locator("#qr")
    assert qr.is_visible()
    # The browser decoded the SVG into a square image a phone can scan.
    width, height = qr.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width > 100
    assert width == height
    box = qr.bounding_box()
    assert box["width"] >= 200
    assert box["height"] >= 200
    secret = page.inner_text("#secret").strip()
    seen(secret)
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    codes = page.locator("#backup-codes li").all_inner_texts()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    seen(*codes)
    _screenshot(page, "mfa-enrolment.png")

    code = pyotp.TOTP(secret).now()
    seen(code)
    page.fill("#code", code)
    page.click("#activate-form button")
    page.wait_for_selector("#step-password:not([hidden])", timeout=15_000)
    new_password = "Browser-" + pyotp.random_base32()[:16]
    seen(new_password)
    page.fill("#new-password", new_password)
    page.click("#password-form button")
    page.wait_for_selector("#step-done:not([hidden])", timeout=15_000)
    assert page.inner_text("#done-user") == "carol"
    assert not page.problems, page.problems

    # What the page did is real: the new password now leads to an MFA challenge.
    login = post(
        platform_cloud,
        "/auth/login",
        {"tenant_id": "browsertour", "username": "carol", "password": new_password},
    )
    assert login.status_code == 200
    assert login.json()["status"] == "MFA_REQUIRED"


def test_mfa_page_says_why_a_sign_in_failed(platform_cloud: RunningCloud, page: Any) -> None:
    page.goto(f"{platform_cloud.api_url}/mfa")
    page.fill("#tenant", "browsertour")
    page.fill("#username", "nobody")
    page.fill("#password", "not-the-password")
    page.click("#signin-form button")
    page.wait_for_selector("#message:not(:empty)", timeout=15_000)
    assert page.is_visible("#step-signin")
    assert not page.is_visible("#step-enrol")
    assert "invalid" in page.inner_text("#message").lower()


def test_pages_forbid_inline_script_and_framing(platform_cloud: RunningCloud) -> None:
    for path in ("/docs", "/mfa"):
        headers = platform_cloud.http("GET", path).headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"
    assert platform_cloud.http("GET", "/static/../app.py").status_code in (403, 404)
    assert platform_cloud.http("GET", "/static/openapi.json").status_code == 404
