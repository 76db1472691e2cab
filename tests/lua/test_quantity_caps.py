"""Quantities are capped at 10^12 (API.md): the scripts check the RESULT of a change before writing
anything, and answer a code that the one error table maps to a 422 naming the field. The Lua
cap agrees with the Python one."""

from __future__ import annotations

import asyncio
import re
from importlib import resources

import pytest

from omnistock.domain.commands import Adjustment, Count
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.stock import MAX_QUANTITY
from omnistock.redis import keys, scripts
from omnistock.redis.store import StockStore
from tests.lua.conftest import Probe


def test_lua_cap_agrees_with_python() -> None:
    """The codes themselves are checked by tests/unit/test_return_codes.py."""
    lib = (resources.files("omnistock.redis") / "lua" / "_lib.lua").read_text()
    found = re.findall(r"^local MAX_QUANTITY = (\d+)$", lib, re.M)
    assert [int(v) for v in found] == [MAX_QUANTITY] == [10**12]
    assert scripts.QUANTITY in scripts.ERRORS


async def test_adjust_past_the_cap_is_refused_before_any_write(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    await store.set_counts([Count(uid, "big", MAX_QUANTITY - 5)], "erp", None)
    await probe.mark(uid)
    for items, field in [
        ([Adjustment(uid, "big", 6, "receipt")], "adjustments[0].delta"),
        # Items of one position count in order: the second passes the cap, the first is not kept.
        ([Adjustment(uid, "big", 3, "receipt"), Adjustment(uid, "big", 3, "receipt")],
         "adjustments[1].delta"),
        ([Adjustment(uid, "other", 1, "receipt"), Adjustment(uid, "big", 10**9, "receipt")],
         "adjustments[1].delta"),
    ]:  # fmt: skip
        with pytest.raises(ValidationFailed) as caught:
            await store.adjust(items, "erp", None)
        assert caught.value.field == field
        assert str(MAX_QUANTITY) in caught.value.detail.replace(",", "")
    # Far below zero is refused as well (a till sale recorded against nothing).
    await store.adjust([Adjustment(uid, "low", -(10**9), "sale")] * 1000, "erp", None)
    with pytest.raises(ValidationFailed) as caught:
        await store.adjust([Adjustment(uid, "low", -1, "sale")], "erp", None)
    assert caught.value.field == "adjustments[0].delta"
    assert (await probe.position(uid, "big"))["oh"] == str(MAX_QUANTITY - 5)
    assert (await probe.position(uid, "low"))["oh"] == str(-MAX_QUANTITY)
    assert await probe.position(uid, "other") == {}
    assert len(await probe.events(uid)) == 1000  # only the sales that stayed within the cap
    # Up to the cap exactly is fine, and the reply is exact.
    (pos,), _ = await store.adjust([Adjustment(uid, "big", 5, "receipt")], "erp", None)
    assert (pos.on_hand, pos.available) == (MAX_QUANTITY, MAX_QUANTITY)


async def test_adjust_cap_names_the_item_of_the_request_across_partitions(
    store: StockStore, probe: Probe, uid: str
) -> None:
    locs = [f"{uid}-{n}" for n in range(6)]
    for loc in locs:
        await probe.location(loc)
    await store.set_counts([Count(locs[4], "big", MAX_QUANTITY)], "erp", None)
    await probe.mark(locs[4])
    items = [Adjustment(loc, "s", 1, "receipt") for loc in locs]
    with pytest.raises(ValidationFailed) as caught:
        await store.adjust([*items, Adjustment(locs[4], "big", 1, "receipt")], "erp", None)
    assert caught.value.field == "adjustments[6].delta"
    for loc in locs:  # checked across partitions before any script ran: nothing applied
        assert await probe.position(loc, "s") == {}
        assert await probe.events(loc) == []


async def test_set_script_refuses_values_past_the_cap(
    store: StockStore, probe: Probe, uid: str
) -> None:
    """Python validates first; the script checks anyway (a second writer must not get past)."""
    await probe.location(uid)
    for count, field in [
        (Count(uid, "s", MAX_QUANTITY + 1), "on_hand"),
        (Count(uid, "s", 1, safety_stock=MAX_QUANTITY + 1), "safety_stock"),
    ]:
        with pytest.raises(ValidationFailed) as caught:
            await store.set_counts([count], "erp", None)
        assert caught.value.field == field
    p = store.partition(uid)
    reply = await store.scripts.adjust(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p),
         keys.position(p, uid, "s"), keys.sku_index(p, uid), keys.location_meta(p, uid)],
        ["erp", "", 1000, "", uid, "s", MAX_QUANTITY + 1, "receipt", ""],
    )  # fmt: skip
    assert reply.code == scripts.QUANTITY
    assert await probe.position(uid, "s") == {}
    assert await probe.events(uid) == []


async def test_concurrent_adjustments_never_pass_the_cap(
    store: StockStore, probe: Probe, uid: str
) -> None:
    """60 writers race to add 5 to a position 100 below the cap, each with an item at another
    location first (its own partition: the checks before the scripts and in them both count):
    exactly 20 get through, the position ends at the cap, every other is a 422 naming the item."""
    locs = [f"{uid}-{n}" for n in range(40)]
    other = next(loc for loc in locs[1:] if store.partition(loc) != store.partition(locs[0]))
    for loc in (locs[0], other):
        await probe.location(loc)
    await store.set_counts([Count(locs[0], "hot", MAX_QUANTITY - 100)], "erp", None)

    async def writer() -> str:
        items = [Adjustment(other, "side", 1, "receipt"), Adjustment(locs[0], "hot", 5, "receipt")]
        try:
            await store.adjust(items, "erp", None)
        except ValidationFailed as exc:
            return exc.field
        return "ok"

    outcomes = await asyncio.gather(*(writer() for _ in range(60)))
    assert outcomes.count("ok") == 20
    assert set(outcomes) == {"ok", "adjustments[1].delta"}
    assert (await probe.position(locs[0], "hot"))["oh"] == str(MAX_QUANTITY)
