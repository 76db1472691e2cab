"""The board's "find it nearby" view in a real headless Chromium: pickup options nearest first with
distances, channel availability and `why`, kept live by the board's WebSocket (a store that runs
out leaves, one that gets stock joins, without a reload), the channel fence, "this store", the
empty answer and a refused plan."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from playwright.async_api import Browser, Page, Route, expect

from tests.e2e.conftest import AppServer, KeyMaker, put_location, stock
from tests.e2e.test_board import artifact, browser, sign_in
from tests.e2e.test_pages_csp import violations, watched_page

__all__ = ["browser"]  # the module-scoped Chromium of the board test

# Somewhere no other test puts locations; 1 km north is 1/111.195 degrees of latitude.
LAT, LON = -41.29, 174.78
KM = 1 / 111.195


async def place(admin: httpx.AsyncClient, loc: str, km_north: float, **fields: Any) -> None:
    await put_location(admin, loc, lat=LAT + km_north * KM, lon=LON, **fields)


async def adjust(admin: httpx.AsyncClient, loc: str, sku: str, delta: int, reason: str) -> None:
    body = {"adjustments": [{"sku": sku, "location": loc, "delta": delta, "reason": reason}]}
    resp = await admin.post("/v1/adjustments", json=body)
    assert resp.status_code == 200, resp.text


async def shown(page: Page, *locations: str) -> None:
    """Wait until the options list shows exactly ``locations``, in this order (a fair deadline:
    a re-plan is 300 ms after the change, plus two reads, on a loaded machine)."""
    await page.wait_for_function(
        """(want) => [...document.querySelectorAll('#nearby-list li.option')]
             .map((li) => li.dataset.location).join(',') === want""",
        arg=",".join(locations),
        timeout=10_000,
    )


def option(page: Page, loc: str) -> Any:
    return page.locator(f'#nearby-list li.option[data-location="{loc}"]')


async def find(
    page: Page,
    sku: str,
    *,
    qty: int = 1,
    at: tuple[float, float] | None = None,
    channel: str = "",
    radius: str = "",
) -> None:
    """Fill the form (``at`` = typed coordinates, else "this store") and submit by keyboard."""
    await page.fill("#nb-sku", sku)
    await page.fill("#nb-qty", str(qty))
    if at is None:
        await page.check("#nb-here")
    else:
        await page.fill("#nb-lat", str(at[0]))
        await page.fill("#nb-lon", str(at[1]))
        await expect(page.locator("#nb-point")).to_be_checked()  # typing picks "coordinates"
    await page.select_option("#nb-channel", channel)
    await page.fill("#nb-radius", radius)
    await page.press("#nb-sku", "Enter")


async def open_nearby(page: Page) -> None:
    """Reach the view by keyboard: focus the stock tab, arrow right."""
    await page.focus("#tab-stock")
    await page.keyboard.press("ArrowRight")
    await expect(page.locator("#tab-nearby")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#view-nearby")).to_be_visible()
    await expect(page.locator("#view-stock")).to_be_hidden()


async def test_nearby_lists_pickup_options_live(
    app: AppServer, admin: httpx.AsyncClient, client_for: KeyMaker, browser: Browser, uid: str
) -> None:
    near, mid, far = f"{uid}-near", f"{uid}-mid", f"{uid}-far"
    depot, away = f"{uid}-depot", f"{uid}-away"
    sku = f"BOOT-{uid}"
    await place(admin, near, 1, name="Harbour Street", pickup=True, limited_threshold=3)
    await place(admin, mid, 3, name="Cuba Mall", pickup=True, channel_safety_stock={"web": 4})
    await place(admin, far, 8, name="Petone", pickup=True, limited_threshold=1)
    await place(admin, depot, 0.5, name="Depot", kind="warehouse", pickup=False)
    await place(admin, away, 70, name="Masterton", pickup=True)
    await stock(admin, near, **{sku: 3})
    await stock(admin, mid, **{sku: 5})
    await stock(admin, depot, **{sku: 50})  # no pickup there: never an option
    await stock(admin, away, **{sku: 50})  # past the 50 km default radius
    shopper = await client_for("storefront")
    key = shopper.headers["authorization"].split()[1]
    page, console = await watched_page(browser)  # the view stays inside the page's CSP
    try:
        await sign_in(page, app, key, f"loc:{mid}")
        await open_nearby(page)
        await page.evaluate("window.__sameDocument = true")

        # Typed coordinates (at the origin): pickup options nearest first, with distance,
        # availability, status and why; the warehouse and the far-away store are not there.
        await find(page, sku, at=(LAT, LON))
        await shown(page, near, mid)
        first = option(page, near)
        await expect(first.locator(".opt-name")).to_have_text(f"Harbour Street · {near}")
        await expect(first.locator(".opt-km")).to_have_text("1.0 km")
        await expect(first.locator(".opt-available")).to_have_text("3 available")
        await expect(first.locator(".status")).to_have_text("Limited")
        await expect(option(page, mid).locator(".opt-km")).to_have_text("3.0 km")
        await expect(option(page, mid).locator(".opt-available")).to_have_text("5 available")
        await expect(option(page, mid).locator(".status")).to_have_text("In stock")
        body = {
            "lines": [{"sku": sku, "qty": 1}],
            "fulfillment": "pickup",
            "near": {"lat": LAT, "lon": LON},
            "radius_km": 50,
        }
        planned = (await shopper.post("/v1/sourcing/plans", json=body)).json()["options"]
        whys = [o["why"] for o in planned]
        assert len(whys) == 2 and all(whys)
        await expect(page.locator("#nearby-list .opt-why")).to_have_text(whys)
        await expect(page.locator("#nearby-status")).to_contain_text("2 pickup options")
        await page.screenshot(path=artifact("board-nearby.png"), full_page=True)

        # A sale at a listed store shows at once, from the stream, before any re-plan answers
        # (plans are held back meanwhile); emptying the nearest one then removes it, live.
        held = asyncio.Event()

        async def hold(route: Route) -> None:
            await held.wait()
            await route.continue_()

        await page.route("**/v1/sourcing/plans", hold)
        await adjust(admin, mid, sku, -1, "sale")
        await expect(option(page, mid).locator(".opt-available")).to_have_text(
            "4 available", timeout=5000
        )
        await expect(option(page, mid)).to_have_class("option flash")
        held.set()
        await page.unroute("**/v1/sourcing/plans", hold)
        await adjust(admin, near, sku, -3, "sale")
        await shown(page, mid)
        # A receipt at a store that had none makes it join, in distance order.
        await adjust(admin, far, sku, 2, "receipt")
        await shown(page, mid, far)
        await expect(option(page, far).locator(".opt-km")).to_have_text("8.0 km")
        await expect(option(page, far).locator(".status")).to_have_text("In stock")
        assert await page.evaluate("window.__sameDocument") is True  # no reload happened

        # The web channel may not take Cuba Mall's 4 fenced units: only Petone is left for web.
        await find(page, sku, at=(LAT, LON), channel="web")
        await shown(page, far)
        await expect(option(page, far).locator(".opt-available")).to_have_text("2 available")
        # A walk-in (store channel) still sees Cuba Mall; a live change at Petone shows at once
        # with its status from the location's own threshold.
        await find(page, sku, at=(LAT, LON), channel="store")
        await shown(page, mid, far)
        await adjust(admin, far, sku, -1, "sale")
        await expect(option(page, far).locator(".opt-available")).to_have_text(
            "1 available", timeout=5000
        )
        await expect(option(page, far).locator(".status")).to_have_text("Limited")

        # "This store" measures from the board's selected location (Cuba Mall, 3 km north).
        await find(page, sku)
        await expect(page.locator("#nb-here-name")).to_have_text("(Cuba Mall)")
        await shown(page, mid, far)
        await expect(option(page, mid).locator(".opt-km")).to_have_text("0.0 km")
        await expect(option(page, far).locator(".opt-km")).to_have_text("5.0 km")
        # Choosing another store above re-plans from there.
        await page.select_option("#where", f"loc:{far}")
        await expect(page.locator("#nb-here-name")).to_have_text("(Petone)")
        await expect(option(page, far).locator(".opt-km")).to_have_text("0.0 km")
        await shown(page, far, mid)

        # Nothing within the radius: a clear message, no list.
        await find(page, sku, qty=40, radius="10")
        await shown(page)
        await expect(page.locator("#nearby-empty")).to_be_visible()
        await expect(page.locator("#nearby-empty")).to_have_text(
            f"Nowhere within 10 km of Petone has 40 \u00d7 {sku} for pickup."
        )
        await expect(page.locator("#nearby-notice")).to_be_hidden()
        assert await violations(page, console) == []
    finally:
        await page.close()


async def test_nearby_converges_under_concurrent_changes(
    app: AppServer, admin: httpx.AsyncClient, client_for: KeyMaker, browser: Browser, uid: str
) -> None:
    """Many clients change the listed stores at once: the view ends on exactly the final stock
    (who is listed, in order, and how much each has); a burst of changes at many stores is
    planned a few times, not once per change message."""
    locs = [f"{uid}-{n}" for n in range(1, 5)]
    extra = [f"{uid}-x{n:02}" for n in range(30)]
    sku = f"TENT-{uid}"
    for n, loc in enumerate(locs, start=1):
        await place(admin, loc, n, name=f"Store {n}", pickup=True, limited_threshold=0)
    for n, loc in enumerate(extra):
        await place(admin, loc, 10 + n, pickup=True, limited_threshold=0)
    for loc in locs[:3]:
        await stock(admin, loc, **{sku: 10})
    shopper = await client_for("storefront")
    key = shopper.headers["authorization"].split()[1]
    page = await browser.new_page(viewport={"width": 1100, "height": 760})
    plans: list[str] = []
    page.on("request", lambda r: plans.append(r.url) if "/v1/sourcing/plans" in r.url else None)
    changes_seen: list[str] = []
    all_seen = asyncio.Event()  # every change message of the burst has arrived

    def on_frame(payload: str | bytes) -> None:
        if isinstance(payload, str) and '"type":"change"' in payload.replace(" ", ""):
            changes_seen.append(payload)
            if len(changes_seen) >= len(extra):
                all_seen.set()

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    try:
        await sign_in(page, app, key, f"loc:{locs[0]}")
        await page.click("#tab-nearby")
        await find(page, sku)
        await shown(page, *locs[:3])

        # 10 sales empty store 1, 5 take half of store 2, 3 receipts top up store 3 and 2 stock
        # store 4, all at once from 20 clients.
        changes = (
            [(locs[0], -1, "sale")] * 10
            + [(locs[1], -1, "sale")] * 5
            + [(locs[2], 1, "receipt")] * 3
            + [(locs[3], 1, "receipt")] * 2
        )
        await asyncio.gather(*(adjust(admin, loc, sku, d, why) for loc, d, why in changes))
        await shown(page, *locs[1:])
        for loc, left in zip(locs[1:], (5, 13, 2), strict=True):
            await expect(option(page, loc).locator(".opt-available")).to_have_text(
                f"{left} available"
            )

        # One request stocks 30 farther stores: 30 positions change, so at least 30 change
        # messages arrive (the stream keeps the latest per position), yet only a few plans run.
        await page.wait_for_timeout(700)  # let the re-plans of the first burst finish
        plans.clear()
        changes_seen.clear()
        all_seen.clear()
        burst = [{"sku": sku, "location": loc, "delta": 1, "reason": "receipt"} for loc in extra]
        resp = await admin.post("/v1/adjustments", json={"adjustments": burst})
        assert resp.status_code == 200, resp.text
        # The 10 nearest with stock (the view asks for 10 options): stores 2-4, then 7 of them.
        await shown(page, *locs[1:], *extra[:7])
        await asyncio.wait_for(all_seen.wait(), 10)
        await page.wait_for_timeout(700)  # a trailing re-plan would have been sent by now
        assert 1 <= len(plans) <= 10, plans

        # A store opened after the board read its locations joins with its name.
        new = f"{uid}-new"
        await place(admin, new, 0.5, name="Newtown", pickup=True)
        await stock(admin, new, **{sku: 1})
        await shown(page, new, *locs[1:], *extra[:6])
        await expect(option(page, new).locator(".opt-name")).to_have_text(f"Newtown · {new}")
        await expect(option(page, new).locator(".opt-km")).to_have_text("0.5 km")
    finally:
        await page.close()


async def test_nearby_shows_refusals_as_the_board_does(
    app: AppServer, admin: httpx.AsyncClient, client_for: KeyMaker, browser: Browser, uid: str
) -> None:
    await put_location(admin, uid, name="No coordinates", groups=[f"{uid}-g"])
    await stock(admin, uid, **{f"CAP-{uid}": 2})
    feed = await client_for("feed")  # may read, may not plan where to reserve
    key = feed.headers["authorization"].split()[1]
    page = await browser.new_page(viewport={"width": 390, "height": 740}, device_scale_factor=2)
    try:
        await sign_in(page, app, key, f"loc:{uid}")
        await page.click("#tab-nearby")
        # "This store" without coordinates: said so, nothing asked of the server.
        await find(page, f"CAP-{uid}")
        await expect(page.locator("#nearby-notice")).to_have_text(
            "No coordinates has no coordinates: enter a latitude and longitude instead."
        )
        # A group is not a store.
        await page.select_option("#where", f"group:{uid}-g")
        await find(page, f"CAP-{uid}")
        await expect(page.locator("#nearby-notice")).to_contain_text("needs one location")
        # The server's 403 problem detail, shown in the view's notice.
        await find(page, f"CAP-{uid}", at=(10, 20))
        await expect(page.locator("#nearby-notice")).to_have_text(
            "Could not find pickup options: role feed may not reserve stock"
        )
        await expect(page.locator("#nearby-list li")).to_have_count(0)
        await page.screenshot(path=artifact("board-nearby-phone.png"), full_page=True)
        # What the contract refuses is refused in the form already (the browser says why).
        await page.fill("#nb-sku", "no spaces!")
        assert await page.evaluate("document.getElementById('nb-sku').validity.patternMismatch")
        await page.fill("#nb-sku", f"CAP-{uid}")
        await page.fill("#nb-qty", "0")
        assert await page.evaluate("document.getElementById('nb-qty').validity.rangeUnderflow")
        assert not await page.evaluate("document.getElementById('nearby-form').checkValidity()")
    finally:
        await page.close()
