"""Stock states in the change stream: moves, unsellable returns and supply steps each reach a
subscriber at once, with unsellable, incoming and the available net of unsellable."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import AppServer, put_location, stock
from tests.e2e.stream.client import stream


def states(msg: dict[str, object]) -> tuple[object, ...]:
    return (msg["sku"], msg["reason"], msg["on_hand"], msg["unsellable"], msg["incoming"],
            msg["available"], msg["version"])  # fmt: skip


async def test_every_state_change_is_streamed(
    app: AppServer, admin: httpx.AsyncClient, uid: str
) -> None:
    await put_location(admin, uid)
    await stock(admin, uid, s=5)
    async with stream(app) as ws:
        await ws.subscribe("states", locations=[uid])
        move = {"sku": "s", "location": uid, "qty": 2, "to": "unsellable", "reason": "damaged"}
        assert (await admin.post("/v1/moves", json={"moves": [move]})).status_code == 200
        ret = {"sku": "r", "location": uid, "delta": 1, "reason": "return", "state": "unsellable"}
        assert (await admin.post("/v1/adjustments", json={"adjustments": [ret]})).status_code == 200
        made = await admin.post(
            "/v1/supply",
            json={
                "location": uid,
                "eta": "2026-12-01T09:00:00Z",
                "lines": [{"sku": "s", "qty": 4}],
            },
        )
        assert made.status_code == 201
        sid = made.json()["id"]
        resp = await admin.post(
            f"/v1/supply/{sid}/receive", json={"lines": [{"sku": "s", "qty": 3}]}
        )
        assert resp.status_code == 200
        assert (await admin.post(f"/v1/supply/{sid}/cancel")).status_code == 200
        got = [states(await ws.next()) for _ in range(5)]
    assert got == [
        ("s", "damaged", 5, 2, 0, 3, 2),
        ("r", "return", 1, 1, 0, 0, 1),
        ("s", "supply_created", 5, 2, 4, 3, 3),
        ("s", "supply_received", 8, 2, 1, 6, 4),
        ("s", "supply_cancelled", 8, 2, 0, 6, 5),
    ]
