"""The board's stock states in a real headless Chromium: the unsellable and incoming columns follow
the change stream, and "due" (the next delivery's units and ETA, from `?by=`) follows supply as it
is created, partly received and rescheduled; a late ETA is flagged; one read covers many skus and
a group's locations; the due reads are bounded and paced; no CSP violation."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
from playwright.async_api import Browser, Page, Request, expect

from tests.e2e.conftest import AppServer, KeyMaker, put_location, stock
from tests.e2e.test_board import artifact, browser
from tests.e2e.test_pages_csp import violations, watched_page

__all__ = ["browser"]  # the module-scoped Chromium of the board test

# A live change reaches the board within a second; a due read follows it (one request, under a
# loaded machine): a fair deadline for both.
LIVE_MS = 5000
DUE_EVERY_S = 2  # the page's ?due_every=: how often shown due dates are read again
NOTHING = "\u2013"  # an en dash: nothing incoming, nothing due


def eta(days: float) -> tuple[str, str]:
    """An ETA ``days`` from now: as sent (whole seconds) and as the server answers it."""
    when = (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ"), when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def supply(admin: httpx.AsyncClient, loc: str, sku: str, qty: int, when: str) -> str:
    body = {"location": loc, "eta": when, "lines": [{"sku": sku, "qty": qty}]}
    resp = await admin.post("/v1/supply", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def open_board(
    page: Page, app: AppServer, key: str, where: str, every: int = DUE_EVERY_S
) -> None:
    """Sign in on a page opened at ``where`` (``loc:<id>`` or ``group:<name>``) from the start."""
    kind, name = where.split(":", 1)
    query = {"loc": "location", "group": "group"}[kind]
    await page.goto(f"{app.url}/?{query}={name}&due_every={every}")
    await page.fill("#key", key)
    await page.press("#key", "Enter")
    await expect(page.locator("#where")).to_have_value(where)
    await expect(page.locator("#conn")).to_have_class("conn live")


Read = tuple[list[str], list[str]]  # the skus and locations of one due read


def due_reads(page: Page) -> list[Read]:
    """Every due read (availability with `by`) the page sends, as it sends it."""
    seen: list[Read] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/v1/availability"):
            body = json.loads(request.post_data or "{}")
            if "by" in body:
                seen.append((body["skus"], body["locations"]))
        elif "/v1/availability/" in request.url and "by=" in request.url:
            seen.append(([request.url], []))  # one sku across a group: no test here expects it

    page.on("request", on_request)
    return seen


async def read_starts(page: Page) -> list[float]:
    """When each availability read started (ms, the page's clock), in order."""
    starts = await page.evaluate(
        """() => performance.getEntriesByType('resource')
             .filter((e) => e.name.includes('/v1/availability'))
             .map((e) => e.startTime)"""
    )
    return sorted(starts)


async def fits(page: Page) -> None:
    """The stock table needs no sideways scrolling at the page's width."""
    width = (
        "[...document.querySelectorAll('.table-wrap')].map((w) => w.scrollWidth - w.clientWidth)"
    )
    assert await page.evaluate(width) == [0]


async def expect_numbers(row: Any, **numbers: str) -> None:
    for name, text in numbers.items():
        await expect(row.locator(f"td.{name}")).to_have_text(text, timeout=LIVE_MS)


async def expect_due(row: Any, units: str, when: str) -> None:
    await expect(row.locator("td.due .due-units")).to_have_text(units, timeout=LIVE_MS)
    await expect(row.locator("td.due time")).to_have_attribute("datetime", when, timeout=LIVE_MS)


async def test_board_shows_unsellable_incoming_and_due_live(
    app: AppServer, admin: httpx.AsyncClient, client_for: KeyMaker, browser: Browser, uid: str
) -> None:
    await put_location(admin, uid, name="State Street")
    await stock(admin, uid, **{"TEE-M": 10, "CAP-RED": 1})
    store = await client_for("store", locations=[uid])
    page, console = await watched_page(browser)
    reads = due_reads(page)
    try:
        await open_board(page, app, store.headers["authorization"].split()[1], f"loc:{uid}")
        row = page.locator(f'tr[data-key="{uid}/TEE-M"]')
        await expect_numbers(row, on_hand="10", unsellable="0", available="10", incoming="0")
        await expect(row.locator("td.due")).to_have_text(NOTHING)
        assert reads == []  # nothing incoming: nothing to read

        # A supply created: incoming and its due date, live.
        sent, first = eta(5)
        po = await supply(admin, uid, "TEE-M", 6, sent)
        await expect_numbers(row, incoming="6", on_hand="10", available="10")
        await expect_due(row, "6", first)
        await expect(row.locator("td.due .late-flag")).to_have_count(0)

        # A partial receipt: 2 of the 6 move from incoming to on hand, live.
        receipt = {"lines": [{"sku": "TEE-M", "qty": 2}]}
        assert (await admin.post(f"/v1/supply/{po}/receive", json=receipt)).status_code == 200
        await expect_numbers(row, on_hand="12", incoming="4", available="12")
        await expect_due(row, "4", first)

        # 3 damaged: unsellable, and available lower, live.
        move = {"sku": "TEE-M", "location": uid, "qty": 3, "to": "unsellable", "reason": "damaged"}
        assert (await admin.post("/v1/moves", json={"moves": [move]})).status_code == 200
        await expect_numbers(row, on_hand="12", unsellable="3", available="9", incoming="4")

        # A reschedule moves no position (no change message): the periodic re-read shows it.
        sent, later = eta(9)
        resp = await admin.post(f"/v1/supply/{po}/reschedule", json={"eta": sent})
        assert resp.status_code == 200
        await expect(row.locator("td.due time")).to_have_attribute(
            "datetime", later, timeout=DUE_EVERY_S * 1000 + 8000
        )
        await expect(row.locator("td.due .due-units")).to_have_text("4")

        # An earlier delivery that is already overdue becomes the next one, flagged late.
        sent, overdue = eta(-1)
        await supply(admin, uid, "TEE-M", 2, sent)
        await expect_numbers(row, incoming="6")
        await expect_due(row, "2", overdue)
        await expect(row.locator("td.due .late-flag")).to_have_text("late")
        await expect(page.locator(f'tr[data-key="{uid}/CAP-RED"] td.due')).to_have_text(NOTHING)
        await fits(page)  # a laptop: ten columns, no sideways scrolling
        await page.screenshot(path=artifact("board-states.png"), full_page=True)

        # Bounded: one row with units incoming is read about once per DUE_EVERY_S, no more.
        before = len(reads)
        await asyncio.sleep(3 * DUE_EVERY_S + 0.5)
        idle = reads[before:]
        assert 1 <= len(idle) <= 4, idle
        assert all(read == (["TEE-M"], [uid]) for read in idle), idle

        # The legend opens by keyboard.
        await page.focus("details.legend summary")
        await page.keyboard.press("Enter")
        await expect(page.locator("details.legend dl")).to_be_visible()
        await expect(page.locator("details.legend dt").nth(3)).to_have_text("Due")

        # A store screen in kiosk mode: big type, every column in view.
        await page.set_viewport_size({"width": 1920, "height": 1080})
        await page.click("#kiosk")
        await expect(page.locator("body")).to_have_class("kiosk")
        await fits(page)
        await page.screenshot(path=artifact("board-states-kiosk.png"))
        await page.click("#kiosk")

        # A phone: every number keeps its label, and nothing spills sideways.
        await page.set_viewport_size({"width": 390, "height": 800})
        for name, label in [("unsellable", "Unsellable"), ("incoming", "Incoming"), ("due", "Due")]:
            await expect(row.locator(f"td.{name}")).to_be_visible()
            await expect(row.locator(f"td.{name}")).to_have_attribute("data-label", label)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await page.screenshot(path=artifact("board-states-phone.png"), full_page=True)
        assert await violations(page, console) == []
    finally:
        await page.close()


async def test_group_board_reads_due_dates_of_all_its_locations_at_once(
    app: AppServer, admin: httpx.AsyncClient, browser: Browser, uid: str
) -> None:
    a, b, group = f"{uid}-a", f"{uid}-b", f"{uid}-g"
    await put_location(admin, a, groups=[group])
    await put_location(admin, b, groups=[group])
    await stock(admin, a, **{"BOOT-42": 1})
    sent_a, due_a = eta(2)
    sent_b, due_b = eta(4)
    await supply(admin, a, "BOOT-42", 5, sent_a)
    await supply(admin, b, "BOOT-42", 7, sent_b)
    page = await browser.new_page(viewport={"width": 1200, "height": 700})
    reads = due_reads(page)
    try:
        created = await admin.post("/v1/keys", json={"name": "wall", "role": "storefront"})
        await open_board(page, app, created.json()["key"], f"group:{group}")
        row_a = page.locator(f'tr[data-key="{a}/BOOT-42"]')
        row_b = page.locator(f'tr[data-key="{b}/BOOT-42"]')
        await expect_numbers(row_a, on_hand="1", incoming="5")
        await expect_numbers(row_b, on_hand="0", incoming="7")
        await expect_due(row_a, "5", due_a)
        await expect_due(row_b, "7", due_b)
        # One read for the whole group, not one per row.
        assert reads, reads
        assert all((skus, sorted(locs)) == (["BOOT-42"], [a, b]) for skus, locs in reads), reads

        # Receiving everything at b: its due empties without a read of its own.
        ids = (await admin.get("/v1/supply", params={"location": b, "status": "open"})).json()
        (sid,) = [s["id"] for s in ids["items"]]
        assert (await admin.post(f"/v1/supply/{sid}/receive", json={})).status_code == 200
        await expect_numbers(row_b, on_hand="7", incoming="0")
        await expect(row_b.locator("td.due")).to_have_text(NOTHING)
        await expect_due(row_a, "5", due_a)
    finally:
        await page.close()


async def test_a_burst_of_supply_is_read_once_per_sku_and_paced(
    app: AppServer, admin: httpx.AsyncClient, browser: Browser, uid: str
) -> None:
    """30 skus get supply at once: every row ends with its own due date, each sku is read exactly
    once (its one change), batched (fewer reads than skus), and the reads start at least
    DUE_GAP_MS (100 ms) apart."""
    n = 30
    skus = [f"SKU-{i:02d}" for i in range(n)]
    await put_location(admin, uid)
    await stock(admin, uid, **dict.fromkeys(skus, 1))
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    reads = due_reads(page)
    try:
        created = await admin.post("/v1/keys", json={"name": "burst", "role": "storefront"})
        await open_board(page, app, created.json()["key"], f"loc:{uid}", every=3600)
        await expect(page.locator("#stock tbody tr")).to_have_count(n)
        etas = [eta(1 + i / 4) for i in range(n)]
        await asyncio.gather(
            *(supply(admin, uid, sku, i + 1, etas[i][0]) for i, sku in enumerate(skus))
        )
        for i, sku in enumerate(skus):
            row = page.locator(f'tr[data-key="{uid}/{sku}"]')
            await expect(row.locator("td.incoming")).to_have_text(str(i + 1), timeout=LIVE_MS)
            # A few reads, one at a time at least 100 ms apart, on a loaded machine.
            await expect(row.locator("td.due time")).to_have_attribute(
                "datetime", etas[i][1], timeout=30_000
            )
            await expect(row.locator("td.due .due-units")).to_have_text(str(i + 1))
        assert sorted(sku for skus_read, _ in reads for sku in skus_read) == skus, reads
        assert all(locs == [uid] for _, locs in reads), reads
        assert 1 <= len(reads) < n, reads
        starts = await read_starts(page)
        assert len(starts) == len(reads)
        gaps = [b - a for a, b in pairwise(starts)]
        assert all(gap >= 99 for gap in gaps), gaps
    finally:
        await page.close()
