"""A deleted key's WebSockets are closed with 4401 within 2 s on every instance, and the key can
neither connect nor subscribe again (defect 2: they used to live on and receive changes)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from omnistock.postgres import catalog
from omnistock.services import Services
from tests.e2e.conftest import AppServer, put_location
from tests.e2e.stream.client import StreamClient, change_of, fanout_of, set_on_hand, stream

REVOKED = 4401


async def make_key(admin: httpx.AsyncClient, role: str = "storefront") -> tuple[str, str]:
    made = await admin.post("/v1/keys", json={"name": f"rev-{role}", "role": role})
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


async def close_code(ws: StreamClient, within: float) -> int | None:
    """The close code the server sends within ``within`` seconds (changes read meanwhile)."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(within):
            while True:
                await ws.ws.recv()
    return ws.ws.close_code


@contextlib.asynccontextmanager
async def sockets(
    apps: list[AppServer], key: str, per_app: int, **subscribe: object
) -> AsyncIterator[list[StreamClient]]:
    """``per_app`` subscribed sockets of ``key`` on each app (half by header, half by query)."""
    async with contextlib.AsyncExitStack() as stack:
        found: list[StreamClient] = []
        for app in apps:
            for n in range(per_app):
                ws = await stack.enter_async_context(stream(app, key, query_key=n % 2 == 1))
                await ws.subscribe(f"s{n}", **subscribe)
                found.append(ws)
        yield found


async def test_deleted_key_is_closed_on_every_instance_within_2s(
    app: AppServer, other_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    doomed_id, doomed = await make_key(admin)
    _, kept = await make_key(admin)
    apps = [app, other_app]
    async with (
        sockets(apps, doomed, 4, locations=[uid]) as victims,
        sockets(apps, kept, 2, locations=[uid]) as others,
    ):
        await set_on_hand(admin, uid, "before", 1)  # everyone is live before the deletion
        for ws in victims + others:
            await ws.until(lambda m: change_of(m, m.get("sub", ""), "before"))
        started = time.monotonic()
        resp = await admin.delete(f"/v1/keys/{doomed_id}")
        assert resp.status_code == 204
        codes = await asyncio.gather(
            *(close_code(ws, 2.0 - (time.monotonic() - started)) for ws in victims)
        )
        assert codes == [REVOKED] * len(victims)
        assert time.monotonic() - started <= 2.0
        assert all(ws.ws.close_reason == "API key deleted" for ws in victims)
        for fanout in map(fanout_of, apps):
            assert doomed_id not in fanout.by_key
        # The other key's sockets on both instances are untouched and still served.
        await set_on_hand(admin, uid, "after", 1)
        for ws in others:
            await ws.until(lambda m: change_of(m, m["sub"], "after"))
    for target in apps:
        for query_key in (False, True):
            with pytest.raises(InvalidStatus) as refused:
                async with stream(target, doomed, query_key=query_key):
                    pass
            assert refused.value.response.status_code == 401


async def test_many_keys_deleted_concurrently_each_loses_exactly_its_sockets(
    app: AppServer, other_app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    """Eight keys with sockets on both instances, four deleted at once: exactly those four's
    sockets close with 4401, the other four's keep streaming."""
    await put_location(admin, uid)
    made = [await make_key(admin) for _ in range(8)]
    apps = [app, other_app]
    async with contextlib.AsyncExitStack() as stack:
        held = [
            await stack.enter_async_context(sockets(apps, key, 2, locations=[uid]))
            for _, key in made
        ]
        doomed, kept = held[:4], held[4:]
        started = time.monotonic()
        deleted = await asyncio.gather(*(admin.delete(f"/v1/keys/{kid}") for kid, _ in made[:4]))
        assert [r.status_code for r in deleted] == [204] * 4
        victims = [ws for group in doomed for ws in group]
        codes = await asyncio.gather(
            *(close_code(ws, 2.0 - (time.monotonic() - started)) for ws in victims)
        )
        assert codes == [REVOKED] * len(victims)
        await set_on_hand(admin, uid, "after", 3)
        for ws in (ws for group in kept for ws in group):
            await ws.until(lambda m: change_of(m, m["sub"], "after"))
            assert ws.ws.close_code is None


async def test_a_deleted_key_cannot_subscribe_even_before_its_revocation_arrives(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    """A socket this instance was not told about (it connected as the deletion went by): its
    next subscribe checks the key and closes it."""
    key_id, key = await make_key(admin)
    services: Services = app.server.config.app.state.services
    async with stream(app, key) as ws:
        await ws.subscribe("first", skus=[uid])
        assert await catalog.revoke_key(services.db, key_id)  # deleted without the broadcast
        services.keys.clear()  # as any key change does
        await ws.send(op="subscribe", id="second", skus=[uid])
        assert await close_code(ws, 2.0) == REVOKED
    assert fanout_of(app).by_key.get(key_id) is None


async def test_after_a_gap_in_the_invalidation_channel_every_connected_key_is_rechecked(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    """A deletion missed while the channel was down is not named: the instance re-checks the
    keys of its open sockets and closes the deleted ones."""
    gone_id, gone = await make_key(admin)
    _, kept = await make_key(admin)
    services: Services = app.server.config.app.state.services
    async with stream(app, gone) as lost, stream(app, kept) as stays:
        await lost.subscribe("s", skus=[uid])
        await stays.subscribe("s", skus=[uid])
        assert await catalog.revoke_key(services.db, gone_id)
        services.keys.clear()
        fanout_of(app).keys_changed(None)  # what follow_invalidations does after a gap
        assert await close_code(lost, 2.0) == REVOKED
        await stays.subscribe("t", skus=[uid])
        assert stays.ws.close_code is None
