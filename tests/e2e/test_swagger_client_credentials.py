"""Swagger UI's Authorize button with an API client (issue 19): the OpenAPI document declares the
OAuth 2.0 ``clientCredentials`` scheme, so a tenant's API client id and secret typed into /docs get
a token from POST /oauth2/token (Swagger UI sends the request itself, ``client_secret_basic`` and
no scope), and "Try it out" then calls the API with that token.

Headless Debian chromium driven by Playwright, as tests/e2e/test_browser.py; the screenshot is
test-artifacts/swagger-client-credentials.png.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs

from tests.e2e.test_browser import _screenshot, browser, page  # noqa: F401 - the browser fixtures
from tests.support.clients import new_client, onboarded_admin
from tests.support.cloud import RunningCloud
from tests.support.identity import Identity, seen

TENANT = "swag-mach"
FILES_OPERATION = "#operations-data-list_files_tenants__tenant_id__files_get"


def test_swagger_ui_authorizes_with_client_credentials_and_calls_the_api(
    platform_cloud: RunningCloud,
    platform_admin: Identity,
    page: Any,  # noqa: F811 - the fixture imported above
) -> None:
    admin = onboarded_admin(platform_cloud, platform_admin, TENANT, "sally")
    client = new_client(platform_cloud, admin.headers, TENANT, ["viewer"], name="swagger")
    document = platform_cloud.http("GET", "/openapi.json").json()
    assert document["paths"]["/tenants/{tenant_id}/files"]["get"]["security"] == [
        {"bearerToken": []},
        {"clientCredentials": []},
    ]
    requests_seen: list[Any] = []
    # a lambda: Playwright cannot wrap a builtin method as a handler
    page.on("request", lambda request: requests_seen.append(request))  # noqa: PLW0108

    page.goto(f"{platform_cloud.api_url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    page.locator(".auth-wrapper .btn.authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.wait_for(timeout=10_000)
    scheme = dialog.locator(".auth-container", has=page.locator("h4", has_text="clientCredentials"))
    assert scheme.count() == 1
    scheme.locator("input[id^='client_id_']").fill(client["client_id"])
    scheme.locator("input[id^='client_secret_']").fill(client["client_secret"])
    with page.expect_response(lambda r: r.url.endswith("/oauth2/token"), timeout=30_000) as token_reply:
        scheme.locator("button.authorize").click()
    token_response = token_reply.value
    assert token_response.status == 200, token_response.text()
    token = token_response.json()
    seen(token["access_token"])
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "viewer"  # the empty scope Swagger UI sends: every role of the client

    # What Swagger UI sent: client_secret_basic, the grant and an empty scope, to this API's endpoint.
    sent = token_response.request
    assert sent.method == "POST"
    assert sent.url == f"{platform_cloud.api_url}/oauth2/token"
    basic = sent.headers["authorization"]
    assert basic.startswith("Basic ")
    assert (
        base64.b64decode(basic[len("Basic ") :]).decode()
        == f"{client['client_id']}:{client['client_secret']}"
    )
    form = parse_qs(sent.post_data or "", keep_blank_values=True)
    assert form.pop("grant_type") == ["client_credentials"]
    assert form.pop("scope", [""]) == [""]  # no scope chosen (this bundle leaves the empty one out)
    assert not form  # neither client_id nor client_secret in the body: Basic alone

    # The dialog says the scheme is authorized, and shows no error.
    scheme.locator("h6", has_text="Authorized").wait_for(timeout=10_000)
    assert scheme.locator(".errors").count() == 0
    assert scheme.locator("button", has_text="Logout").is_visible()
    scheme.locator("button.btn-done").click()
    dialog.wait_for(state="detached", timeout=10_000)

    # "Try it out" on GET /tenants/{tenant_id}/files: the call carries the client's token.
    operation = page.locator(FILES_OPERATION)
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator("input[placeholder='tenant_id']").fill(TENANT)
    files_url = f"{platform_cloud.api_url}/tenants/{TENANT}/files"
    with page.expect_response(lambda r: r.url.startswith(files_url), timeout=30_000) as listing_reply:
        operation.locator(".btn.execute").click()
    listing = listing_reply.value
    assert listing.status == 200, listing.text()
    assert listing.request.headers["authorization"] == f"Bearer {token['access_token']}"
    assert "items" in listing.json()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=10_000)
    assert status.inner_text().strip() == "200"

    # The browser went nowhere but this API, and the token request was made once.
    assert all(r.url.startswith(platform_cloud.api_url) for r in requests_seen)
    assert sum(r.url.endswith("/oauth2/token") for r in requests_seen) == 1
    assert not page.problems, page.problems  # no CSP violation, no script error
    _screenshot(page, "swagger-client-credentials.png")
