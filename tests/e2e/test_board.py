"""The live stock board in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e.conftest import AppServer, KeyMaker, put_location, stock
from tests.e2e.stream.client import fanout_of

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium() -> str:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: ./scripts/test installs it (apt-get install chromium)")
    return str(CHROMIUM)


def artifact(name: str) -> str:
    """Where a screenshot goes (test-artifacts/ is not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        found = await pw.chromium.launch(
            executable_path=chromium(),
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield found
        await found.close()


async def sign_in(page: Page, app: AppServer, key: str, where: str) -> None:
    await page.goto(app.url + "/")
    await page.fill("#key", key)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator(f'#where option[value="{where}"]')).to_be_attached()
    await page.select_option("#where", where)


async def test_board_follows_changes_live(
    app: AppServer, admin: httpx.AsyncClient, client_for: KeyMaker, browser: Browser, uid: str
) -> None:
    await put_location(admin, uid, name="Harbour Street", limited_threshold=3, groups=[f"{uid}-g"])
    await stock(admin, uid, **{"JKT-RAIN-M": 12, "JKT-RAIN-L": 2, "BOOT-HIKE-42": 7})
    store = await client_for("store", locations=[uid])
    key = store.headers["authorization"].split()[1]
    page = await browser.new_page(viewport={"width": 1100, "height": 640})
    try:
        await sign_in(page, app, key, f"loc:{uid}")
        row = page.locator(f'tr[data-key="{uid}/JKT-RAIN-M"]')
        await expect(row.locator("td.on_hand")).to_have_text("12")
        await expect(row.locator(".status")).to_have_text("In stock")
        await expect(page.locator("#conn")).to_have_class("conn live")

        # A change through the HTTP API shows within a second, with a flash.
        resp = await admin.put(f"/v1/stock/{uid}/JKT-RAIN-M", json={"on_hand": 3})
        assert resp.status_code == 200
        await expect(row.locator("td.on_hand")).to_have_text("3", timeout=1000)
        await expect(row.locator("td.available")).to_have_text("3")
        await expect(row.locator(".status")).to_have_text("Limited")
        await expect(row).to_have_class("flash")
        # A sku new to the location appears as a row.
        await stock(admin, uid, **{"CAP-WOOL": 4})
        await expect(page.locator(f'tr[data-key="{uid}/CAP-WOOL"] td.on_hand')).to_have_text(
            "4", timeout=1000
        )
        await page.screenshot(path=artifact("board.png"), full_page=True)

        # Search narrows the table.
        await page.fill("#search", "jkt")
        await expect(page.locator("#stock tbody tr")).to_have_count(2)
        await page.fill("#search", "")

        # The connection drops; a change made meanwhile arrives after the automatic resume.
        for conn in list(fanout_of(app).connections):
            if any(sub.startswith("board-") for sub in conn.subs):
                conn.kill("test: network drop")
        await stock(admin, uid, **{"BOOT-HIKE-42": 1})
        await expect(page.locator(f'tr[data-key="{uid}/BOOT-HIKE-42"] td.on_hand')).to_have_text(
            "8", timeout=5000
        )
        await expect(page.locator("#conn")).to_have_class("conn live")
    finally:
        await page.close()


async def test_board_on_a_phone_and_with_a_bad_key(
    app: AppServer, admin: httpx.AsyncClient, browser: Browser, uid: str
) -> None:
    await put_location(admin, uid, name="Kiosk corner")
    await stock(admin, uid, **{"TEE-BASIC-S": 1, "TEE-BASIC-M": 9, "TEE-BASIC-L": 4})
    sold = {"adjustments": [{"sku": "TEE-BASIC-S", "location": uid, "delta": -1, "reason": "sale"}]}
    assert (await admin.post("/v1/adjustments", json=sold)).status_code == 200
    page = await browser.new_page(viewport={"width": 390, "height": 740}, device_scale_factor=2)
    try:
        await page.goto(app.url + "/")
        await page.fill("#key", "wrong-key")
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#login-error")).to_have_text("That key was not accepted.")
        created = await admin.post("/v1/keys", json={"name": "kiosk", "role": "storefront"})
        await sign_in(page, app, created.json()["key"], f"loc:{uid}")
        await expect(page.locator(f'tr[data-key="{uid}/TEE-BASIC-M"] td.on_hand')).to_have_text("9")
        await page.screenshot(path=artifact("board-phone.png"), full_page=True)
    finally:
        await page.close()
