"""reserve, commit, release, extend and expire scripts on a real Valkey."""

from __future__ import annotations

import asyncio

import pytest

from omnistock.domain.commands import Adjustment, Idempotency, idempotency_digest
from omnistock.domain.errors import NotActive, NotFound, Shortage, ValidationFailed
from omnistock.domain.ids import new_reservation_id
from omnistock.redis import keys
from omnistock.redis.scripts import NO_RESERVATION, NOT_ACTIVE, NOT_DUE, SHORTAGE
from omnistock.redis.store import StockStore
from tests.lua.conftest import Probe, doc_of


async def stocked(store: StockStore, probe: Probe, loc: str, **skus: int) -> None:
    await probe.location(loc)
    await store.adjust(
        [Adjustment(loc, sku, qty, "receipt") for sku, qty in skus.items()], "erp", None
    )
    await probe.mark(loc)


async def reserve(
    store: StockStore, loc: str, lines: list[tuple[str, int]], *, ttl: int = 60, partial: bool = False,
    idem: Idempotency | None = None, ref: str | None = "cart-1",
) -> str:  # fmt: skip
    rid = new_reservation_id(store.partition(loc))
    doc, _ = await store.reserve(
        reservation_id=rid, location=loc, lines=lines, ttl_seconds=ttl, channel="web", ref=ref,
        allow_partial=partial, actor="shop", idem=idem,
    )  # fmt: skip
    assert doc.id == rid
    return rid


async def state(probe: Probe, loc: str, sku: str) -> tuple[int, int, int]:
    raw = await probe.position(loc, sku)
    return int(raw.get("oh", 0)), int(raw.get("r", 0)), int(raw.get("v", 0))


async def test_reserve_holds_all_lines_and_records_everything(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, a=5, b=3)
    rid = await reserve(store, uid, [("a", 2), ("b", 3)])
    doc = await store.get_reservation(rid)
    assert doc is not None
    assert (doc.status, doc.location, doc.channel, doc.ref, doc.actor) == (
        "active",
        uid,
        "web",
        "cart-1",
        "shop",
    )
    assert doc.lines == [("a", 2, 2, 0), ("b", 3, 3, 0)]
    assert doc.expires_at - doc.created_at == 60_000
    assert await state(probe, uid, "a") == (5, 2, 2)
    assert await state(probe, uid, "b") == (3, 3, 2)
    p = store.partition(uid)
    assert await store.client.zscore(keys.expiries(p), rid) == doc.expires_at
    events = await probe.events(uid)
    assert [(e["t"], e.get("sku"), e["kind"], e.get("dr"), e.get("a"), e.get("st"), e["rid"]) for e in events] == [
        ("p", "a", "reserve", "2", "3", "in_stock", rid),
        ("p", "b", "reserve", "3", "0", "out_of_stock", rid),
        ("r", None, "reserve", None, None, "active", rid),
    ]  # fmt: skip
    assert events[2]["st"] == "active"


async def test_reserve_all_or_nothing_shortage(store: StockStore, probe: Probe, uid: str) -> None:
    await stocked(store, probe, uid, a=5, b=1)
    with pytest.raises(Shortage) as err:
        await reserve(store, uid, [("a", 2), ("b", 3), ("c", 1)])
    assert [(s.sku, s.requested, s.available) for s in err.value.extra["shortages"]] == [
        ("b", 3, 1), ("c", 1, 0),
    ]  # fmt: skip
    assert await state(probe, uid, "a") == (5, 0, 1)
    assert await probe.events(uid) == []
    p = store.partition(uid)
    raw = await store.scripts.reserve(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p), keys.reservation(p, "x"), keys.expiries(p),
         keys.location_meta(p, uid), keys.sku_index(p, uid), keys.position(p, uid, "b")],
        ["shop", "", 1000, "", "x", uid, 1000, "", "", "0", "", "", "b", 2],
    )  # fmt: skip
    assert (raw.code, raw.payload) == (SHORTAGE, b'[["b",2,1]]')


async def test_reserve_respects_safety_stock(store: StockStore, probe: Probe, uid: str) -> None:
    await probe.location(uid, safety_stock=2)
    await store.adjust([Adjustment(uid, "a", 5, "receipt")], "erp", None)
    with pytest.raises(Shortage):
        await reserve(store, uid, [("a", 4)])
    await reserve(store, uid, [("a", 3)])
    assert await state(probe, uid, "a") == (5, 3, 2)


async def test_reserve_partial_holds_what_there_is(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, a=5, b=1)
    rid = await reserve(store, uid, [("a", 2), ("b", 3), ("c", 1)], partial=True)
    doc = await store.get_reservation(rid)
    assert doc is not None and doc.lines == [("a", 2, 2, 0), ("b", 3, 1, 0), ("c", 1, 0, 0)]
    assert [(e.get("sku"), e["kind"]) for e in await probe.events(uid)] == [
        ("a", "reserve"), ("b", "reserve"), (None, "reserve"),
    ]  # fmt: skip
    with pytest.raises(Shortage):
        await reserve(store, uid, [("b", 1), ("c", 1)], partial=True)


async def test_reserve_unknown_location(store: StockStore, uid: str) -> None:
    with pytest.raises(NotFound):
        await reserve(store, f"{uid}-nowhere", [("a", 1)])


async def test_reserve_idempotent_replay(store: StockStore, probe: Probe, uid: str) -> None:
    await stocked(store, probe, uid, a=5)
    key = Idempotency(key=uid, digest=idempotency_digest("k", uid), body_hash="h")
    p = store.partition(uid)
    first, again = [
        await store.reserve(
            reservation_id=new_reservation_id(p),
            location=uid,
            lines=[("a", 2)],
            ttl_seconds=60,
            channel=None,
            ref=None,
            allow_partial=False,
            actor="shop",
            idem=key,
        )
        for _ in range(2)
    ]
    assert first[0] == again[0] and (first[1], again[1]) == (False, True)
    assert await state(probe, uid, "a") == (5, 2, 2)


async def test_commit_all(store: StockStore, probe: Probe, uid: str) -> None:
    await stocked(store, probe, uid, a=5, b=3)
    rid = await reserve(store, uid, [("a", 2), ("b", 1)])
    await probe.mark(uid)
    doc, _ = await store.commit(await doc_of(store, rid), None, "till", None)
    assert doc.status == "committed" and doc.finished_at is not None
    assert doc.lines == [("a", 2, 2, 2), ("b", 1, 1, 1)]
    assert await state(probe, uid, "a") == (3, 0, 3)
    assert await state(probe, uid, "b") == (2, 0, 3)
    # (a reservation event names no actor: the ledger rows of its positions do)
    assert [(e.get("sku"), e["kind"], e.get("doh"), e.get("dr"), e.get("actor")) for e in await probe.events(uid)] == [
        ("a", "commit", "-2", "-2", "till"), ("b", "commit", "-1", "-1", "till"), (None, "commit", None, None, None),
    ]  # fmt: skip
    p = store.partition(uid)
    assert await store.client.zscore(keys.expiries(p), rid) is None
    assert 0 < await store.client.ttl(keys.reservation(p, rid)) <= 3600
    with pytest.raises(NotActive) as err:
        await store.commit(await doc_of(store, rid), None, "till", None)
    assert err.value.extra["reservation_status"] == "committed"


async def test_commit_partial_releases_the_rest(store: StockStore, probe: Probe, uid: str) -> None:
    await stocked(store, probe, uid, a=5, b=3)
    rid = await reserve(store, uid, [("a", 3), ("b", 2)])
    doc, _ = await store.commit(await doc_of(store, rid), [("a", 1)], "till", None)
    assert doc.lines == [("a", 3, 3, 1), ("b", 2, 2, 0)]
    assert await state(probe, uid, "a") == (4, 0, 3)
    assert await state(probe, uid, "b") == (3, 0, 3)


async def test_commit_bad_lines_change_nothing(store: StockStore, probe: Probe, uid: str) -> None:
    await stocked(store, probe, uid, a=5)
    rid = await reserve(store, uid, [("a", 2)])
    with pytest.raises(ValidationFailed, match="holds 2"):
        await store.commit(await doc_of(store, rid), [("a", 3)], "till", None)
    with pytest.raises(ValidationFailed, match="not held"):
        await store.commit(await doc_of(store, rid), [("zz", 1)], "till", None)
    assert await state(probe, uid, "a") == (5, 2, 2)
    assert (await store.get_reservation(rid)).status == "active"  # type: ignore[union-attr]


async def test_release_gives_back(store: StockStore, probe: Probe, uid: str) -> None:
    await stocked(store, probe, uid, a=5)
    rid = await reserve(store, uid, [("a", 4)])
    doc, _ = await store.release(await doc_of(store, rid), "shop", None)
    assert doc.status == "released"
    assert await state(probe, uid, "a") == (5, 0, 3)
    with pytest.raises(NotActive):
        await store.release(await doc_of(store, rid), "shop", None)
    assert await store.get_reservation(f"r{store.partition(uid)}-bbbbbbbbbbbbbbbbbbbb") is None
    with pytest.raises(NotFound):
        await store.get_reservation("not-an-id")
    p = store.partition(uid)
    reply = await store.scripts.release(
        store.client,
        [keys.stream(p), keys.unused_idempotency_record(p), keys.reservation(p, "gone"),
         keys.expiries(p), keys.location_meta(p, uid), keys.sku_index(p, uid)],
        ["shop", "", 1000, "", 3600_000],
    )  # fmt: skip
    assert reply.code == NO_RESERVATION


async def test_extend_moves_expiry(store: StockStore, probe: Probe, uid: str) -> None:
    await stocked(store, probe, uid, a=5)
    rid = await reserve(store, uid, [("a", 1)], ttl=5)
    before = await store.get_reservation(rid)
    doc, _ = await store.extend(await doc_of(store, rid), 3600, "shop", None)
    assert before is not None and doc.expires_at - before.created_at >= 3_600_000
    p = store.partition(uid)
    assert await store.client.zscore(keys.expiries(p), rid) == doc.expires_at
    events = await probe.events(uid)
    assert [(e["t"], e["kind"]) for e in events] == [
        ("p", "reserve"),
        ("r", "reserve"),
        ("r", "extend"),
    ]


async def test_expire_only_when_due_and_only_once(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, a=5)
    rid = await reserve(store, uid, [("a", 2)], ttl=1)
    p = store.partition(uid)
    doc = await store.get_reservation(rid)
    assert doc is not None
    lines_keys = [keys.position(p, uid, "a")]
    base = [keys.stream(p), keys.unused_idempotency_record(p), keys.reservation(p, rid), keys.expiries(p),
            keys.location_meta(p, uid), keys.sku_index(p, uid), *lines_keys]  # fmt: skip
    reply = await store.scripts.expire(store.client, base, ["sweeper", "", 1000, "", 3600_000])
    assert reply.code == NOT_DUE
    await asyncio.sleep(1.05)
    results = await asyncio.gather(*(store.expire(rid) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert (await store.get_reservation(rid)).status == "expired"  # type: ignore[union-attr]
    assert await state(probe, uid, "a") == (5, 0, 3)
    reply = await store.scripts.expire(store.client, base, ["sweeper", "", 1000, "", 3600_000])
    assert (reply.code, reply.payload) == (NOT_ACTIVE, b"expired")
    kinds = [(e["t"], e["kind"]) for e in await probe.events(uid)]
    assert kinds == [("p", "reserve"), ("r", "reserve"), ("p", "expire"), ("r", "expire")]


async def test_commit_of_overdue_reservation_expires_it(
    store: StockStore, probe: Probe, uid: str
) -> None:
    await stocked(store, probe, uid, a=5)
    rid = await reserve(store, uid, [("a", 2)], ttl=1)
    await asyncio.sleep(1.05)
    with pytest.raises(NotActive) as err:
        await store.commit(await doc_of(store, rid), None, "till", None)
    assert err.value.extra["reservation_status"] == "expired"
    assert await state(probe, uid, "a") == (5, 0, 3)
