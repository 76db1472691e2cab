"""adjust.lua and set.lua on a real Valkey: codes, exact state and exact events after."""

from __future__ import annotations

import pytest
from msgspec import msgpack

from omnistock.domain.commands import Adjustment, Count, Idempotency, idempotency_digest
from omnistock.domain.errors import IdempotencyMismatch, NotFound, PreconditionFailed
from omnistock.redis import keys
from omnistock.redis.scripts import IDEMPOTENCY, NO_LOCATION, VERSION, Library, Script
from omnistock.redis.store import StockStore
from tests.lua.conftest import Probe

EVENT_FIELDS = ("t", "sku", "kind", "reason", "ref", "actor", "doh", "dr", "oh", "r", "ss", "oss",
                "v", "a", "st", "pst", "rid")  # fmt: skip


def idem(name: str, body: str = "b1") -> Idempotency:
    return Idempotency(key=name, digest=idempotency_digest("k1", name), body_hash=body)


def fields(ev: dict[str, str]) -> dict[str, str]:
    return {k: ev[k] for k in EVENT_FIELDS}


async def test_adjust_creates_position_and_emits_one_event(
    store: StockStore, probe: Probe, uid: str
) -> None:
    loc = await probe.location(uid, safety_stock=1, limited=3)
    positions, replayed = await store.adjust(
        [Adjustment(uid, "sku1", 10, "receipt", "PO-1")], "erp", None
    )
    assert not replayed
    (pos,) = positions
    assert (pos.on_hand, pos.reserved, pos.safety_stock, pos.available, pos.status, pos.version) == (
        10, 0, 1, 9, "in_stock", 1,
    )  # fmt: skip
    raw = await probe.position(uid, "sku1")
    assert raw == {"oh": "10", "r": "0", "v": "1", "ts": raw["ts"]}
    (ev,) = await probe.events(uid)
    assert fields(ev) == {
        "t": "p", "sku": "sku1", "kind": "adjust", "reason": "receipt", "ref": "PO-1",
        "actor": "erp", "doh": "10", "dr": "0", "oh": "10", "r": "0", "ss": "1", "oss": "",
        "v": "1", "a": "9", "st": "in_stock", "pst": "out_of_stock", "rid": "",
    }  # fmt: skip
    assert ev["ts"] == raw["ts"]
    assert await store.skus_at(loc) == ["sku1"]


async def test_adjust_may_take_on_hand_below_reserved_and_zero(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    await store.adjust([Adjustment(uid, "s", 3, "receipt")], "erp", None)
    await store.reserve(
        reservation_id=f"r{store.partition(uid)}-aaaaaaaaaaaaaaaaaaaa", location=uid, lines=[("s", 2)],
        ttl_seconds=60, channel=None, ref=None, allow_partial=False, actor="web", idem=None,
    )  # fmt: skip
    positions, _ = await store.adjust([Adjustment(uid, "s", -5, "sale", "till-9")], "pos", None)
    (pos,) = positions
    assert (pos.on_hand, pos.reserved, pos.available, pos.status, pos.version) == (
        -2,
        2,
        0,
        "out_of_stock",
        3,
    )


async def test_adjust_many_items_across_partitions_in_input_order(
    store: StockStore, probe: Probe, uid: str
) -> None:
    locs = [f"{uid}-{i}" for i in range(6)]
    for loc in locs:
        await probe.location(loc)
    assert len({store.partition(x) for x in locs}) > 1
    items = [Adjustment(loc, f"sku{i}", i + 1, "receipt") for i, loc in enumerate(locs)]
    items.append(Adjustment(locs[0], "sku0", 5, "receipt"))
    positions, _ = await store.adjust(items, "erp", None)
    assert [(p.location, p.sku, p.on_hand, p.version) for p in positions] == [
        *((loc, f"sku{i}", i + 1, 1) for i, loc in enumerate(locs)),
        (locs[0], "sku0", 6, 2),
    ]
    assert [e["v"] for e in await probe.events(locs[0])] == ["1", "2"]


async def test_adjust_unknown_location_changes_nothing(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    p = store.partition(uid)
    ghost = f"{uid}-ghost"
    reply = await store.scripts.adjust(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p),
         keys.position(p, uid, "a"), keys.sku_index(p, uid), keys.location_meta(p, uid),
         keys.position(p, ghost, "a"), keys.sku_index(p, ghost), keys.location_meta(p, ghost)],
        ["erp", "", 1000, "", uid, "a", 5, "receipt", "", ghost, "a", 5, "receipt", ""],
    )  # fmt: skip
    assert (reply.code, reply.payload) == (NO_LOCATION, ghost.encode())
    assert await probe.position(uid, "a") == {}
    assert await probe.events(uid) == []
    with pytest.raises(NotFound, match="ghost"):
        await store.adjust([Adjustment(ghost, "a", 1, "receipt")], "erp", None)


async def test_adjust_idempotent_replay_and_mismatch(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    key = idem(uid)
    first, replayed = await store.adjust([Adjustment(uid, "s", 4, "receipt")], "erp", key)
    again, replayed_again = await store.adjust([Adjustment(uid, "s", 4, "receipt")], "erp", key)
    assert (replayed, replayed_again) == (False, True)
    assert again == first
    assert len(await probe.events(uid)) == 1
    assert (await probe.position(uid, "s"))["oh"] == "4"
    with pytest.raises(IdempotencyMismatch):
        await store.adjust([Adjustment(uid, "s", 5, "receipt")], "erp", idem(uid, body="other"))
    # The record inside the partition refuses a different body even without the claim.
    p = store.partition(uid)
    reply = await store.scripts.adjust(
        store.client,
        [keys.stream(p), keys.idempotency_record(p, key.digest),
         keys.position(p, uid, "s"), keys.sku_index(p, uid), keys.location_meta(p, uid)],
        ["erp", "other", 1000, uid, uid, "s", 9, "receipt", ""],
    )  # fmt: skip
    assert reply.code == IDEMPOTENCY
    assert (await probe.position(uid, "s"))["oh"] == "4"
    assert len(await probe.events(uid)) == 1


async def test_set_absolute_and_unchanged_is_silent(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid, safety_stock=2)
    (pos,), _ = await store.set_counts([Count(uid, "s", 7)], "counter", None)
    assert (pos.on_hand, pos.safety_stock, pos.available, pos.version) == (7, 2, 5, 1)
    (same,), _ = await store.set_counts([Count(uid, "s", 7)], "counter", None)
    assert same == pos
    (ev,) = await probe.events(uid)
    assert fields(ev) | {"kind": ev["kind"]} == {
        "t": "p", "sku": "s", "kind": "set", "reason": "count", "ref": "", "actor": "counter",
        "doh": "7", "dr": "0", "oh": "7", "r": "0", "ss": "2", "oss": "", "v": "1", "a": "5",
        "st": "in_stock", "pst": "out_of_stock", "rid": "",
    }  # fmt: skip


async def test_set_own_safety_stock_then_clear(store: StockStore, probe: Probe, uid: str) -> None:
    await probe.location(uid, safety_stock=2)
    (pos,), _ = await store.set_counts([Count(uid, "s", 10, safety_stock=4)], "c", None)
    assert (pos.safety_stock, pos.available, pos.version) == (4, 6, 1)
    assert (await probe.position(uid, "s"))["ss"] == "4"
    (pos,), _ = await store.set_counts([Count(uid, "s", 10, safety_stock=-1)], "c", None)
    assert (pos.safety_stock, pos.available, pos.version) == (2, 8, 2)
    assert "ss" not in await probe.position(uid, "s")
    assert [(e["ss"], e["oss"], e["doh"]) for e in await probe.events(uid)] == [
        ("4", "4", "10"), ("2", "", "0"),
    ]  # fmt: skip


async def test_set_version_check(store: StockStore, probe: Probe, uid: str) -> None:
    await probe.location(uid)
    await store.set_counts([Count(uid, "s", 1, expected_version=0)], "c", None)
    with pytest.raises(PreconditionFailed) as err:
        await store.set_counts([Count(uid, "s", 2, expected_version=0)], "c", None)
    assert err.value.extra["current_version"] == 1
    p = store.partition(uid)
    reply = await store.scripts.set(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p),
         keys.location_meta(p, uid), keys.sku_index(p, uid), keys.position(p, uid, "s")],
        ["c", "", 1000, "", "set", "1", msgpack.encode([uid]),
         msgpack.encode([0, "s", 5, "", 7, "count", ""])],
    )  # fmt: skip
    assert reply.code == VERSION
    assert (await probe.position(uid, "s"))["oh"] == "1"
    (pos,), _ = await store.set_counts([Count(uid, "s", 2, expected_version=1)], "c", None)
    assert (pos.on_hand, pos.version) == (2, 2)
    assert len(await probe.events(uid)) == 2


async def test_set_same_position_twice_in_one_call(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    positions, _ = await store.set_counts(
        [Count(uid, "s", 3), Count(uid, "s", 5)], "import", None, kind="import"
    )
    assert [(p.on_hand, p.version) for p in positions] == [(3, 1), (5, 2)]
    assert [(e["kind"], e["v"], e["doh"]) for e in await probe.events(uid)] == [
        ("import", "1", "3"), ("import", "2", "2"),
    ]  # fmt: skip


async def test_library_reloads_after_function_flush(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await probe.location(uid)
    await store.client.function_flush()
    (pos,), _ = await store.adjust([Adjustment(uid, "s", 1, "receipt")], "erp", None)
    assert pos.version == 1
    assert len(await store.client.function_list(library=store.scripts.library.name)) == 1


async def test_library_versions_coexist(store: StockStore, probe: Probe, uid: str) -> None:
    """Another version of the code is another library: instances of both versions sharing one
    Redis each call their own functions."""
    library = store.scripts.library
    other = Library(library.lib, {**library.bodies, "trim": "do return {0, 'v2', 0, '', ''} end"})
    assert other.name != library.name
    await other.load(store.client)
    await library.load(store.client)
    v2 = await Script("trim", other)(store.hot, [keys.stream(0)], ["0-1"])
    assert v2.payload == b"v2"
    await probe.location(uid)
    (pos,), _ = await store.adjust([Adjustment(uid, "s", 2, "receipt")], "erp", None)
    assert pos.on_hand == 2
    await store.client.function_delete(other.name)
