"""Hostile input answered cleanly (issue 10, defects 3, 4 and 10): import lines and headers have
limits and cost linear time, malformed If-Match / page / before tokens are 4xx, quantities are
capped at 10^12 through every write, and /healthz answers while a hostile import runs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx

from omnistock.domain.stock import MAX_QUANTITY
from omnistock.usecases.imports import MAX_ERROR_CHARS, MAX_LINE_BYTES
from tests.e2e.conftest import AppServer, assert_problem, put_location, stock
from tests.e2e.helpers import snapshot

CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}
TOO_LONG = f"line longer than {MAX_LINE_BYTES} bytes"


async def imported(admin: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> Any:
    resp = await admin.post("/v1/stock:import", content=body, headers=headers)
    assert resp.status_code == 200, resp.text[:500]
    return resp.json()


async def on_hand(admin: httpx.AsyncClient, loc: str, sku: str) -> int:
    resp = await admin.get(f"/v1/stock/{loc}/{sku}")
    assert resp.status_code == 200, resp.text
    return int(resp.json()["on_hand"])


# -- defect 4: malformed tokens -------------------------------------------------------------------


async def test_malformed_if_match_is_a_4xx_and_changes_nothing(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=3)
    before = await snapshot(admin, [(uid, "s")])
    path = f"/v1/stock/{uid}/s"
    # Not ASCII digits (as Latin-1 or UTF-8 bytes on the wire): 422 naming the header.
    for value in (b"\xb2", b"1\xb2", "²".encode(), "٣".encode(), b"0x1", b"1 2", b"-0"):
        resp = await admin.put(path, json={"on_hand": 9}, headers={"If-Match": value})
        assert_problem(resp, 422, "If-Match")
    # Well-formed numbers no version can be at: the precondition fails (412), nothing is tried.
    for value in ("1" * 5000, "18446744073709551616", '"18446744073709551616"', "9" * 16):
        resp = await admin.put(path, json={"on_hand": 9}, headers={"If-Match": value})
        body = assert_problem(resp, 412)
        assert body["current_version"] == 1
    assert await snapshot(admin, [(uid, "s")]) == before
    # Leading zeros are still the same version.
    resp = await admin.put(path, json={"on_hand": 9}, headers={"If-Match": '"0001"'})
    assert resp.status_code == 200 and resp.json()["version"] == 2


async def test_page_token_past_64_bits_is_a_422(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, a=1, b=2)
    for page in ("99999999999999999999", "18446744073709551616"):
        resp = await admin.get(f"/v1/stock/{uid}", params={"page": page})
        assert_problem(resp, 422, "page")
    resp = await admin.get(f"/v1/stock/{uid}", params={"page": "18446744073709551615"})
    assert resp.status_code == 200, resp.text  # a cursor Redis takes: whatever page it is


async def test_history_before_must_be_an_event_id(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=1)
    path = f"/v1/stock/{uid}/s/history"
    for before in ("x", "a\x00b", "1:2", "1:99999999999999999999999-1", "é:1-1", "1" * 64):
        assert_problem(await admin.get(path, params={"before": before}), 422, "before")
    resp = await admin.get(path, params={"before": "0:1-0"})  # well-formed, not in the ledger
    assert_problem(resp, 422, "before")


# -- defect 3: import limits ----------------------------------------------------------------------


async def test_long_import_line_is_rejected_and_reading_resumes_after_it(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    long_line = f"{uid},long,{'9' * (MAX_LINE_BYTES * 3)}".encode()
    body = b"\n".join([
        b"location,sku,on_hand",
        f"{uid},a,1".encode(),
        long_line,
        f"{uid},b,2".encode(),
        f"{uid},c,{'x' * (MAX_LINE_BYTES - 20)}".encode(),  # long, but within the limit
        b"z" * (MAX_LINE_BYTES + 1),  # the last line, with no newline
    ])  # fmt: skip
    out = await imported(admin, body, CSV)
    assert out["rows"] == 2
    assert [(r["line"], r["error"][:43]) for r in out["rejected"]] == [
        (3, TOO_LONG),
        (5, "on_hand must be a whole number >= 0, got 'x"),
        (6, TOO_LONG),
    ]
    assert all(len(r["error"]) <= MAX_ERROR_CHARS for r in out["rejected"])
    assert (await on_hand(admin, uid, "a"), await on_hand(admin, uid, "b")) == (1, 2)

    ndjson = b"\n".join([
        json.dumps({"location": uid, "sku": "d", "on_hand": 4}).encode(),
        b'{"location": "' + b"y" * (MAX_LINE_BYTES * 2) + b'"}',
        json.dumps({"location": uid, "sku": "e", "on_hand": 5}).encode(),
    ])  # fmt: skip
    out = await imported(admin, ndjson, NDJSON)
    assert out["rows"] == 2 and [(r["line"], r["error"]) for r in out["rejected"]] == [
        (2, TOO_LONG)
    ]


async def test_csv_header_past_the_line_limit_is_a_413(admin: httpx.AsyncClient) -> None:
    body = b"location,sku,on_hand" + b"," * (MAX_LINE_BYTES * 2) + b"\nx,y,1\n"
    resp = await admin.post("/v1/stock:import", content=body, headers=CSV)
    assert_problem(resp, 413)


async def test_csv_header_that_is_not_utf8_is_a_422(admin: httpx.AsyncClient, uid: str) -> None:
    for header in (b"location,sku,on_hand\xff", b"\xfe\xff,sku,on_hand", b"\xc3"):
        body = header + f"\n{uid},a,1\n".encode()
        resp = await admin.post("/v1/stock:import", content=body, headers=CSV)
        assert_problem(resp, 422, "body")


async def test_deep_and_odd_ndjson_lines_are_rejected_not_a_5xx(
    admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    lines = [
        b"[" * (MAX_LINE_BYTES - 1),
        b'{"a":' * 10_000,
        b"\xff\xfe{}",
        json.dumps({"location": uid, "sku": "s", "on_hand": 1}).encode(),
        b'{"location":"' + uid.encode() + b'","sku":"t","on_hand":' + b"9" * 5000 + b"}",
        json.dumps({"location": uid, "sku": "u", "on_hand": MAX_QUANTITY + 1}).encode(),
    ]
    out = await imported(admin, b"\n".join(lines), NDJSON)
    assert out["rows"] == 1
    assert [r["line"] for r in out["rejected"]] == [1, 2, 3, 5, 6]
    assert all(len(r["error"]) <= MAX_ERROR_CHARS for r in out["rejected"])


async def test_rejections_do_not_echo_whole_fields(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    big = "q" * (MAX_LINE_BYTES - 200)
    body = "\n".join([
        "location,sku,on_hand,safety_stock",
        f"{uid},a,{big},",
        f"{uid},b,1,{big}",
        f'"{uid}","c","{big}",""',
        f"{uid},d,{'7' * 5000},",
        f"{uid},e,²,",
    ]).encode()  # fmt: skip
    out = await imported(admin, body, CSV)
    assert out["rows"] == 0 and [r["line"] for r in out["rejected"]] == [2, 3, 4, 5, 6]
    assert all(len(r["error"]) <= MAX_ERROR_CHARS for r in out["rejected"]), out


async def test_csv_header_with_too_many_columns_is_refused_at_once(
    app: AppServer, admin: httpx.AsyncClient
) -> None:
    """An 80,000-column header blocked /healthz for 2 s (a regex compiled for it on the loop):
    past the line limit it is a 413, within it a 422 counted before anything is parsed."""
    for columns, status in [(80_000, 413), (30_000, 422)]:
        header = "location,sku,on_hand" + ",c" * (columns - 3)

        async def hostile(header: str = header) -> httpx.Response:
            body = header + "\nx,y,1\n"
            return await admin.post("/v1/stock:import", content=body, headers=CSV)

        resp, worst = await while_polling_healthz(app, hostile())
        body = assert_problem(resp, status, "body")
        assert ("columns" if status == 422 else "longer") in body["detail"]
        assert worst < 1.0, f"/healthz took {worst:.2f}s while the header was refused"
    # The widest header allowed is read as usual.
    ok = "location,sku,on_hand," + ",".join(f"c{i}" for i in range(61))
    assert (await admin.post("/v1/stock:import", content=ok + "\n", headers=CSV)).status_code == 200


async def test_healthz_answers_while_a_line_without_end_streams_in(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    """64 MB with no newline: dropped as it arrives (linear time, bounded memory); before, the
    buffer was copied on every chunk (quadratic) without limit."""
    await put_location(admin, uid)
    chunk = b"9" * (1 << 20)

    async def body() -> AsyncIterator[bytes]:
        yield f"location,sku,on_hand\n{uid},a,1\n{uid},b,".encode()
        for _ in range(64):
            yield chunk
        yield f"\n{uid},c,3\n".encode()

    async def hostile() -> httpx.Response:
        return await admin.post("/v1/stock:import", content=body(), headers=CSV, timeout=60)

    started = time.perf_counter()
    resp, worst = await while_polling_healthz(app, hostile())
    took = time.perf_counter() - started
    assert resp.status_code == 200, resp.text[:300]
    out = resp.json()
    assert out["rows"] == 2 and [(r["line"], r["error"]) for r in out["rejected"]] == [
        (3, TOO_LONG)
    ]
    assert worst < 1.0, f"/healthz took {worst:.2f}s during the import"
    assert took < 30, f"64 MB took {took:.1f}s"


async def while_polling_healthz(
    app: AppServer, request: Awaitable[httpx.Response]
) -> tuple[httpx.Response, float]:
    """``request``'s response, and the slowest /healthz answer seen while it ran (on its own
    connection)."""
    worst = 0.0
    done = asyncio.Event()

    async def poll() -> None:
        nonlocal worst
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert (await client.get("/healthz")).status_code == 200
                worst = max(worst, time.perf_counter() - started)
                await asyncio.sleep(0.02)

    poller = asyncio.create_task(poll())
    await asyncio.sleep(0.05)
    try:
        resp = await request
    finally:
        done.set()
        await poller
    return resp, worst


# -- defect 10: quantities capped at 10^12 --------------------------------------------------------


async def test_quantities_are_capped_through_http(admin: httpx.AsyncClient, uid: str) -> None:
    await put_location(admin, uid)
    path = f"/v1/stock/{uid}/s"
    assert (await admin.put(path, json={"on_hand": MAX_QUANTITY})).status_code == 200
    before = await snapshot(admin, [(uid, "s"), (uid, "t")])
    adj = {"sku": "s", "location": uid, "delta": 1, "reason": "receipt"}
    other = {"sku": "t", "location": uid, "delta": 5, "reason": "receipt"}
    resp = await admin.post("/v1/adjustments", json={"adjustments": [other, adj]})
    body = assert_problem(resp, 422, "adjustments[1].delta")
    assert "1,000,000,000,000" in body["detail"]
    for put, field in [
        ({"on_hand": MAX_QUANTITY + 1}, "on_hand"),
        ({"on_hand": 1, "safety_stock": MAX_QUANTITY + 1}, "safety_stock"),
        ({"on_hand": 10**15}, "on_hand"),
    ]:
        assert_problem(await admin.put(path, json=put), 422, field)
    loc = {"name": "x", "kind": "store", "safety_stock": MAX_QUANTITY + 1}
    assert_problem(await admin.put(f"/v1/locations/{uid}", json=loc), 422, "safety_stock")
    csv = f"location,sku,on_hand\n{uid},s,{MAX_QUANTITY + 1}\n{uid},t,{10**14}\n".encode()
    out = await imported(admin, csv, CSV)
    assert out["rows"] == 0 and [r["line"] for r in out["rejected"]] == [2, 3]
    assert await snapshot(admin, [(uid, "s"), (uid, "t")]) == before
    # Right up to the cap, replies stay exact integers.
    resp = await admin.post("/v1/adjustments", json={"adjustments": [{**adj, "delta": -1}]})
    assert resp.status_code == 200 and resp.json()["results"][0]["on_hand"] == MAX_QUANTITY - 1
    assert b"e+" not in resp.content


async def test_healthz_answers_while_millions_of_bad_lines_stream_in(
    app: AppServer, admin: httpx.AsyncClient
) -> None:
    """Rejected lines queue nothing, so the import must give the loop a turn by lines read too."""
    chunk = b"a\n" * (1 << 19)  # 1 MB of one-column lines, every one rejected

    async def body() -> AsyncIterator[bytes]:
        yield b"location,sku,on_hand\n"
        for _ in range(8):
            yield chunk

    async def hostile() -> httpx.Response:
        return await admin.post("/v1/stock:import", content=body(), headers=CSV, timeout=60)

    resp, worst = await while_polling_healthz(app, hostile())
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["rejected_total"] == 8 << 19
    assert worst < 0.5, f"/healthz took {worst:.2f}s during the import"
