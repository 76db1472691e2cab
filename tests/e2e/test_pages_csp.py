"""The pages under their Content-Security-Policy in a real Chromium: Swagger UI at /docs loads the
schema and renders every operation, the board signs in and goes live, and neither page causes a
single CSP violation."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import AppServer, KeyMaker, put_location, stock
from tests.e2e.test_board import browser, sign_in

__all__ = ["browser"]  # the module-scoped Chromium of the board test

# Recorded from the first script on: every violation the page reports.
WATCH = """window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});"""


async def watched_page(browser: Browser) -> tuple[Page, list[str]]:
    page = await browser.new_page(viewport={"width": 1100, "height": 800})
    await page.add_init_script(WATCH)
    console: list[str] = []
    page.on(
        "console",
        lambda msg: console.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return page, console


async def violations(page: Page, console: list[str]) -> list[Any]:
    return [*await page.evaluate("window.__csp"), *console]


async def test_swagger_ui_loads_the_schema_under_the_policy(
    app: AppServer, browser: Browser
) -> None:
    page, console = await watched_page(browser)
    try:
        response = await page.goto(app.url + "/docs")
        assert response is not None and response.status == 200
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
            "omnistock", timeout=15000
        )
        operations = page.locator(".opblock")
        await expect(operations.first).to_be_visible()
        async with httpx.AsyncClient(timeout=30) as http:
            schema = (await http.get(app.url + "/schema/openapi.json")).json()
        count = sum(
            1
            for item in schema["paths"].values()
            for method in item
            if method in {"get", "put", "post", "delete", "patch"}
        )
        await expect(operations).to_have_count(count)
        # An operation opens (its parameters and responses render).
        await operations.first.locator(".opblock-summary").click()
        await expect(page.locator(".opblock-body").first).to_be_visible()
        assert await violations(page, console) == []
    finally:
        await page.close()


async def test_board_goes_live_under_the_policy(
    app: AppServer, admin: httpx.AsyncClient, client_for: KeyMaker, browser: Browser, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, **{"CSP-1": 4})
    store = await client_for("store", locations=[uid])
    key = store.headers["authorization"].split()[1]
    page, console = await watched_page(browser)
    try:
        await sign_in(page, app, key, f"loc:{uid}")
        await expect(page.locator(f'tr[data-key="{uid}/CSP-1"] td.on_hand')).to_have_text("4")
        await expect(page.locator("#conn")).to_have_class("conn live")  # the WebSocket is allowed
        assert await violations(page, console) == []
    finally:
        await page.close()
