"""Bulk import (imports.import_stream -> set.lua) on a real Valkey: rows of a position land in file
order across batches and partitions, every change gets its event, lines are numbered and rejected
as written, and a re-import changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

from omnistock.domain.ids import new_reservation_id
from omnistock.redis import keys
from omnistock.redis.store import StockStore
from omnistock.usecases.imports import BATCH, ImportResult, import_stream
from tests.lua.conftest import Probe


async def chunked(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def run_import(store: StockStore, body: bytes, locations: set[str]) -> ImportResult:
    return await import_stream(
        chunked(body, 61),  # lines split across chunks
        "csv",
        store,
        "erp",
        allowed=lambda loc: None if loc in locations else f"unknown location {loc!r}",
    )


async def test_rows_of_a_position_apply_in_file_order_across_batches(
    store: StockStore, probe: Probe, uid: str
) -> None:
    locs = [f"{uid}-{n}" for n in range(3)]
    for loc in locs:
        await probe.location(loc)
    rows = 7 * BATCH + 17  # several batches per partition, in flight together
    lines = ["location,sku,on_hand"]
    expected: dict[tuple[str, str], list[int]] = {}
    for k in range(rows):
        loc, sku = locs[k % 3], f"s{k % 5}"
        lines.append(f"{loc},{sku},{k + 1}")
        expected.setdefault((loc, sku), []).append(k + 1)
    body = ("\r\n".join(lines) + "\r\n").encode()

    result = await run_import(store, body, set(locs))

    assert (result.rows, result.rejected_total) == (rows, 0)
    for loc in locs:
        events = await probe.events(loc)
        for sku in {s for (at, s) in expected if at == loc}:
            values = expected[(loc, sku)]
            mine = [(e["oh"], e["v"]) for e in events if e["sku"] == sku]
            assert mine == [(str(v), str(n)) for n, v in enumerate(values, 1)]
            raw = await probe.position(loc, sku)
            assert (raw["oh"], raw["v"]) == (str(values[-1]), str(len(values)))
        assert {e["kind"] for e in events} == {"import"}


async def test_import_events_match_other_writes(store: StockStore, probe: Probe, uid: str) -> None:
    await probe.location(uid, safety_stock=2, limited=3)
    await run_import(store, b"location,sku,on_hand\n" + f"{uid},held,10\n".encode(), {uid})
    await store.reserve(
        reservation_id=new_reservation_id(store.partition(uid)), location=uid,
        lines=[("held", 4)], ttl_seconds=60, channel=None, ref=None, allow_partial=False,
        actor="shop", idem=None,
    )  # fmt: skip
    body = f"location,sku,safety_stock,on_hand\n{uid},held,,7\n{uid},own,1,5\n{uid},own,-,5\n"
    result = await run_import(store, body.encode(), {uid})
    assert [(r.line, r.error) for r in result.rejected] == [
        (4, "safety_stock must be a whole number >= 0, got '-'"),
    ]  # fmt: skip
    positions = [e for e in await probe.events(uid) if e["t"] == "p"]
    held = [e for e in positions if e["sku"] == "held"]
    own = [e for e in positions if e["sku"] == "own"]
    assert [(e["kind"], e["doh"], e["dr"], e["oh"], e["r"], e["v"], e["a"], e["st"], e["pst"])
            for e in held] == [
        ("import", "10", "0", "10", "0", "1", "8", "in_stock", "out_of_stock"),
        ("reserve", "0", "4", "10", "4", "2", "4", "in_stock", "in_stock"),
        ("import", "-3", "0", "7", "4", "3", "1", "limited", "in_stock"),
    ]  # fmt: skip
    (ev,) = own
    assert {k: ev[k] for k in ("kind", "reason", "ref", "actor", "idem", "rid", "doh", "oh", "ss",
                                "oss", "v", "a", "st", "pst")} == {
        "kind": "import", "reason": "import", "ref": "", "actor": "erp", "idem": "", "rid": "",
        "doh": "5", "oh": "5", "ss": "1", "oss": "1", "v": "1", "a": "4", "st": "in_stock",
        "pst": "out_of_stock",
    }  # fmt: skip
    assert (await probe.position(uid, "own"))["ss"] == "1"


async def test_lines_are_numbered_and_rejected_as_written(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    body = "\n".join([
        "",
        "sku,on_hand,location",
        f"a,1,{uid}",
        f"b, 2 ,{uid}",
        f'"c","3","{uid}"',
        f"d,x,{uid}",
        "",
        f"e,4,{uid}-nowhere",
        f"bad sku,5,{uid}",
        f"f,1000000000000,{uid}",
        f"g,1000000000001,{uid}",
        f"h,6,{uid},extra",
        f"i,7,{uid}\r",
        f"j,8,{uid}",  # no newline at the end
    ]).encode()  # fmt: skip

    result = await run_import(store, body, {uid})

    assert result.rows == 6
    assert [(r.line, r.error.split(" ")[0]) for r in result.rejected] == [
        (6, "on_hand"), (8, "unknown"), (9, "sku"), (11, "on_hand"), (12, "expected"),
    ]  # fmt: skip
    found = {sku: (await probe.position(uid, sku)).get("oh") for sku in "abcdfij"}
    assert found == {"a": "1", "b": "2", "c": "3", "d": None, "f": "1000000000000", "i": "7",
                     "j": "8"}  # fmt: skip


async def test_reimport_changes_nothing(store: StockStore, probe: Probe, uid: str) -> None:
    locs = {f"{uid}-{n}" for n in range(4)}
    for loc in locs:
        await probe.location(loc)
    body = ("location,sku,on_hand,safety_stock\n" + "".join(
        f"{loc},s{k},{k + 1},{k % 3 or ''}\n" for loc in sorted(locs) for k in range(300)
    )).encode()  # fmt: skip
    first = await run_import(store, body, locs)
    lengths = {p: await store.client.xlen(keys.stream(p)) for p in map(store.partition, locs)}
    again = await run_import(store, body, locs)
    assert first.rows == again.rows == 1200
    assert {p: await store.client.xlen(keys.stream(p)) for p in lengths} == lengths
    for loc in locs:
        assert len(await probe.events(loc)) == 300
        index = keys.sku_index(store.partition(loc), loc)
        assert len(await store.client.smembers(index)) == 300
