"""trim.lua: drops exactly the entries below the given id, records the greatest one dropped, and
leaves a stream with nothing below the id alone without walking it."""

from __future__ import annotations

import redis.asyncio as aredis
from loadtests.trim_cost import variants

from omnistock.redis.scripts import Library, Script
from omnistock.redis.store import StockStore


async def _revranges(redis: aredis.Redis) -> int:
    """XREVRANGE calls so far (commands a script runs are counted too)."""
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_xrevrange", {}).get("calls", 0))


async def _stream(redis: aredis.Redis, key: str) -> None:
    for ms in range(1000, 1010):
        await redis.xadd(key, {"n": str(ms)}, id=f"{ms}-0")
        await redis.xadd(key, {"n": f"{ms}b"}, id=f"{ms}-1")


async def test_trim_with_nothing_below_leaves_the_stream_alone_without_walking_it(
    store: StockStore, uid: str
) -> None:
    key = f"test:{uid}:ev"
    await _stream(store.client, key)
    before = await store.client.xinfo_stream(key)
    revranges = await _revranges(store.client)

    reply = await Script("trim", store.scripts.library)(store.hot, [key], ["1000-0"])

    assert int(reply.payload) == 0
    # The backward walk is what cost 36 ms on a 300k-entry stream: it must not run here.
    assert await _revranges(store.client) == revranges
    after = await store.client.xinfo_stream(key)
    assert after["length"] == 20
    assert after["max-deleted-entry-id"] == before["max-deleted-entry-id"] == b"0-0"


async def test_trim_drops_exactly_what_is_below_and_records_the_greatest(
    store: StockStore, uid: str
) -> None:
    key = f"test:{uid}:ev"
    await _stream(store.client, key)

    reply = await Script("trim", store.scripts.library)(store.hot, [key], ["1004-1"])

    assert int(reply.payload) == 9  # 1000-0 .. 1004-0
    entries = await store.client.xrange(key)
    assert [entry_id for entry_id, _ in entries][:2] == [b"1004-1", b"1005-0"]
    assert len(entries) == 11
    info = await store.client.xinfo_stream(key)
    assert info["max-deleted-entry-id"] == b"1004-0"
    assert info["last-generated-id"] == b"1009-1"
    # Again with the same id: nothing left below it.
    again = await Script("trim", store.scripts.library)(store.hot, [key], ["1004-1"])
    assert int(again.payload) == 0
    assert (await store.client.xinfo_stream(key))["max-deleted-entry-id"] == b"1004-0"


async def test_trim_cost_variants_apply_and_agree_when_something_is_below(
    store: StockStore, uid: str
) -> None:
    """loadtests/trim_cost.py rebuilds the script before the probe from trim.lua's text: a stale
    cut would compare the shipped script with itself."""
    library = store.scripts.library
    built = variants(library.bodies["trim"])
    assert built["trim.lua as shipped"] == library.bodies["trim"]
    assert built["before the forward probe"] != library.bodies["trim"]
    for n, body in enumerate(built.values()):
        variant = Library(library.lib, {"trim": body})
        await variant.load(store.client)
        key = f"test:{uid}:{n}:ev"
        await _stream(store.client, key)
        reply = await Script("trim", variant)(store.hot, [key], ["1004-1"])
        assert int(reply.payload) == 9
        assert (await store.client.xinfo_stream(key))["max-deleted-entry-id"] == b"1004-0"
        await store.client.function_delete(variant.name)
