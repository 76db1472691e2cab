"""What every script reports for durability: event id spans, idempotency events, readiness; and
restore.lua (used by rebuild)."""

from __future__ import annotations

import zlib

import pytest
import redis.asyncio as aredis

from omnistock.domain.commands import Adjustment, Count, Idempotency, idempotency_digest
from omnistock.domain.errors import Unavailable
from omnistock.redis import keys
from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.scripts import NOT_READY, OK, Scripts
from omnistock.redis.store import StockStore
from omnistock.sync.rebuild import write_positions
from tests.events import event_fields
from tests.lua.conftest import PARTITIONS, Probe


async def test_reply_spans_the_events_appended(store: StockStore, probe: Probe, uid: str) -> None:
    await probe.location(uid)
    p = store.partition(uid)
    reply = await store.scripts.adjust(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p),
         keys.position(p, uid, "a"), keys.sku_index(p, uid), keys.location_meta(p, uid),
         keys.position(p, uid, "b"), keys.sku_index(p, uid), keys.location_meta(p, uid)],
        ["erp", "", 1000, "", uid, "a", 1, "receipt", "", uid, "b", 2, "receipt", ""],
    )  # fmt: skip
    assert reply.code == OK and not reply.replayed
    span = await store.client.xrange(keys.stream(p), min=reply.first_id, max=reply.last_id)
    assert [(e["sku"], e["v"]) for e in (event_fields(f) for _, f in span)] == [
        ("a", "1"),
        ("b", "1"),
    ]


async def test_idempotent_reply_is_appended_and_replayed_with_its_span(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    p = store.partition(uid)
    digest = idempotency_digest("k", uid)
    args = ["erp", "h1", 60_000, uid, uid, "a", 3, "receipt", "PO"]
    script_keys = [keys.stream(p), keys.idempotency_record(p, digest),
                   keys.position(p, uid, "a"), keys.sku_index(p, uid), keys.location_meta(p, uid)]  # fmt: skip
    first = await store.scripts.adjust(store.client, script_keys, args)
    again = await store.scripts.adjust(store.client, script_keys, args)
    assert (first.code, first.replayed, again.replayed) == (OK, False, True)
    assert (again.payload, again.first_id, again.last_id) == (
        first.payload,
        first.first_id,
        first.last_id,
    )
    span = await store.client.xrange(keys.stream(p), min=first.first_id, max=first.last_id)
    assert [event_fields(f)["t"] for _, f in span] == ["p", "i"]
    idem = event_fields(span[1][1])
    assert (idem["key"], idem["hash"], idem["code"], idem["payload"], idem["first"], idem["ttl"]) == (
        keys.idempotency_record(p, digest), "h1", "0", first.payload.decode(), first.first_id.decode(), "60000",
    )  # fmt: skip
    ttl = await store.client.pttl(keys.idempotency_record(p, digest))
    assert 0 < ttl <= 60_000


async def test_partition_without_stream_is_not_ready(
    redis: aredis.Redis, hot: Multiplexer, scripts: Scripts, uid: str
) -> None:
    # A store with one more partition than the session's: its last partition has no stream.
    store = StockStore(
        redis,
        hot,
        scripts,
        partitions=PARTITIONS + 1,
        idempotency_ttl_seconds=60,
        retention_seconds=60,
    )
    loc = next(
        f"{uid}-{i}"
        for i in range(10_000)
        if zlib.crc32(f"{uid}-{i}".encode()) % (PARTITIONS + 1) == PARTITIONS
    )
    p = PARTITIONS
    await redis.hset(keys.location_meta(p, loc), mapping={"ss": 0, "lt": 2})
    reply = await scripts.adjust(
        redis,
        [keys.stream(p), keys.unused_idempotency_record(p),
         keys.position(p, loc, "a"), keys.sku_index(p, loc), keys.location_meta(p, loc)],
        ["erp", "", 1000, "", loc, "a", 1, "receipt", ""],
    )  # fmt: skip
    assert reply.code == NOT_READY
    assert await redis.exists(keys.position(p, loc, "a"), keys.stream(p)) == 0
    with pytest.raises(Unavailable, match="rebuilt"):
        await store.adjust(
            [Adjustment(loc, "a", 1, "receipt")],
            "erp",
            Idempotency(key="x", digest="d", body_hash="h"),
        )
    await redis.delete(keys.location_meta(p, loc), keys.idempotency_claim("d"))


async def test_write_positions_restores_without_events(
    store: StockStore, probe: Probe, uid: str
) -> None:
    """What a rebuild (and reconcile --fix) writes: the record's values, no version bump, no event."""
    loc = await probe.location(uid, safety_stock=3)
    await store.set_counts([Count(uid, "b", 1, safety_stock=9)], "c", None)
    await probe.mark(uid)
    # (location, sku, on_hand, reserved, own safety stock, version, updated_at ms), as Postgres has them
    rows = [
        (uid, "a", 10, 2, None, 7, 1_700_000_000_000),
        (uid, "b", 5, 0, None, 2, 1_700_000_000_001),
    ]
    assert await write_positions(store.client, [rows], PARTITIONS, fresh=False) == 2
    a, b = await store.get_positions([(loc, "a"), (loc, "b")])
    assert (a.on_hand, a.reserved, a.safety_stock, a.available, a.version) == (10, 2, 3, 5, 7)
    assert (b.on_hand, b.safety_stock, b.available, b.version) == (5, 3, 2, 2)  # own ss cleared
    assert a.updated_at == "2023-11-14T22:13:20.000Z"
    assert await store.skus_at(loc) == ["a", "b"]
    assert await probe.events(uid) == []
    # The connection went back to the pool with replies on again.
    assert await store.client.ping()
