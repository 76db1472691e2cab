"""Reservation limits in the scripts: extend never moves expires_at past created_at + 7 days
(checked by extend.lua against the Redis clock), and reserve.lua records who owns a reservation."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from omnistock.domain.clock import rfc3339
from omnistock.domain.commands import Idempotency
from omnistock.domain.errors import ValidationFailed
from omnistock.domain.ids import new_reservation_id
from omnistock.domain.reservations import MAX_LIFETIME_SECONDS
from omnistock.redis import keys
from omnistock.redis.scripts import OK, TOO_LONG
from omnistock.redis.store import StockStore
from tests.lua.conftest import Probe, doc_of
from tests.lua.test_reservation_scripts import reserve, stocked

WEEK_MS = MAX_LIFETIME_SECONDS * 1000


async def redis_now(store: StockStore) -> int:
    seconds, micros = await store.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def aged(store: StockStore, probe: Probe, uid: str, left_ms: int) -> tuple[str, int]:
    """A reservation created so long ago that ``left_ms`` remain until created_at + 7 days.
    Returns its id and that latest allowed expires_at."""
    await stocked(store, probe, uid, a=5)
    rid = await reserve(store, uid, [("a", 1)], ttl=30)
    key = keys.reservation(store.partition(uid), rid)
    doc = json.loads(await store.client.hget(key, "doc"))
    doc["created_at"] = await redis_now(store) - WEEK_MS + left_ms
    await store.client.hset(key, "doc", json.dumps(doc))
    await probe.mark(uid)
    return rid, doc["created_at"] + WEEK_MS


async def test_extend_up_to_the_ceiling_but_not_past_it(
    store: StockStore, probe: Probe, uid: str
) -> None:
    rid, latest = await aged(store, probe, uid, left_ms=100_500)
    doc, _ = await store.extend(await doc_of(store, rid), 100, "shop", None)
    assert doc.expires_at <= latest
    assert latest - doc.expires_at < 1_000
    p = store.partition(uid)
    assert await store.client.zscore(keys.expiries(p), rid) == doc.expires_at
    marked = len(await probe.events(uid))

    with pytest.raises(ValidationFailed) as err:
        await store.extend(doc, 102, "shop", None)
    assert err.value.field == "ttl_seconds"
    assert err.value.extra["latest_expires_at"] == rfc3339(latest)
    assert "created_at + 7 days" in err.value.detail
    # Refused: nothing changed, nothing emitted.
    assert await doc_of(store, rid) == doc
    assert await store.client.zscore(keys.expiries(p), rid) == doc.expires_at
    assert len(await probe.events(uid)) == marked


async def test_extend_script_answers_too_long_with_the_latest_expiry(
    store: StockStore, probe: Probe, uid: str
) -> None:
    rid, latest = await aged(store, probe, uid, left_ms=10_000)
    doc = await doc_of(store, rid)
    p = store.partition(uid)
    script_keys = [keys.stream(p), keys.unused_idempotency_record(p), keys.reservation(p, rid),
                   keys.expiries(p), keys.location_meta(p, uid), keys.sku_index(p, uid),
                   keys.position(p, uid, "a")]  # fmt: skip
    reply = await store.scripts.extend(
        store.client, script_keys, ["shop", "", 1000, "", 3600_000, 60_000, WEEK_MS]
    )
    assert reply.code == TOO_LONG
    latest_ms, left_ms = json.loads(reply.payload)
    assert latest_ms == latest and 0 < left_ms <= 10_000
    # The ceiling is the caller's argument: a longer one lets the same extension through.
    reply = await store.scripts.extend(
        store.client, script_keys, ["shop", "", 1000, "", 3600_000, 60_000, WEEK_MS + 60_000]
    )
    assert reply.code == OK
    assert json.loads(reply.payload)["expires_at"] > doc.expires_at


async def test_a_refused_extension_replays_as_refused(
    store: StockStore, probe: Probe, uid: str
) -> None:
    rid, _ = await aged(store, probe, uid, left_ms=5_000)
    idem = Idempotency(key="ext-1", digest=f"d-{uid}", body_hash="h1")
    doc = await doc_of(store, rid)
    for replay in (False, True):
        with pytest.raises(ValidationFailed) as err:
            await store.extend(doc, 60, "shop", idem)
        assert (err.value.field, err.value.replayed) == ("ttl_seconds", replay)
    assert await doc_of(store, rid) == doc


async def test_concurrent_extensions_never_pass_the_ceiling(
    store: StockStore, probe: Probe, uid: str
) -> None:
    """Fifty extensions race: those well inside what is left all apply, those well past it are
    all refused, and the reservation ends within created_at + 7 days."""
    rid, latest = await aged(store, probe, uid, left_ms=150_000)
    doc = await doc_of(store, rid)
    rng = random.Random(7)
    ttls = [rng.choice([rng.randint(30, 140), rng.randint(160, 600_000)]) for _ in range(50)]

    async def extend(ttl: int) -> tuple[int, str]:
        try:
            got, _ = await store.extend(doc, ttl, "shop", None)
        except ValidationFailed as exc:
            return ttl, exc.field
        assert got.expires_at <= latest
        return ttl, "ok"

    outcomes = await asyncio.gather(*(extend(ttl) for ttl in ttls))
    assert outcomes == [(ttl, "ok" if ttl <= 140 else "ttl_seconds") for ttl in ttls]
    final = await doc_of(store, rid)
    assert final.status == "active" and final.expires_at <= latest
    extends = [e for e in await probe.events(uid) if e["kind"] == "extend"]
    assert len(extends) == sum(1 for ttl in ttls if ttl <= 140)


async def test_reserve_records_the_owner(store: StockStore, probe: Probe, uid: str) -> None:
    await stocked(store, probe, uid, a=5)
    rid = await reserve(store, uid, [("a", 1)])
    doc = await doc_of(store, rid)
    assert (doc.owner, doc.owner_role) == (None, None)  # none given: none recorded
    owned = new_reservation_id(store.partition(uid))
    made, _ = await store.reserve(
        reservation_id=owned, location=uid, lines=[("a", 1)], ttl_seconds=60, channel=None,
        ref=None, allow_partial=False, actor="web", idem=None, owner="key-abc",
        owner_role="storefront",
    )  # fmt: skip
    assert (made.owner, made.owner_role) == ("key-abc", "storefront")
    # It survives every later change of the document.
    extended, _ = await store.extend(made, 120, "web", None)
    committed, _ = await store.commit(extended, None, "web", None)
    assert (committed.owner, committed.owner_role, committed.status) == (
        "key-abc",
        "storefront",
        "committed",
    )
