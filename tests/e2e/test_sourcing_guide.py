"""docs/sourcing.md's plan examples, run for real against a demo server (``omnistock serve
--demo``), in the guide's order: every ``why`` the guide quotes is one the server gives for the
example it is shown under, each example's best option is quoted, and the channel fence and the
422s answer as shown. The guide cannot drift from the planner without this failing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_readme_tour import REPO, DemoServer

GUIDE = REPO / "docs" / "sourcing.md"
LOOP = {"lat": 41.8827, "lon": -87.6278}
ORDER = [
    {"sku": "HOODIE-NVY-M", "qty": 2},
    {"sku": "JEANS-BLK-32", "qty": 1},
    {"sku": "BOOT-TAN-10", "qty": 1},
]
ORDER_BODY: dict[str, Any] = {"lines": ORDER, "fulfillment": "ship"}
# The plan examples, in the guide's order ("priority" marks where the warehouses get priority 10).
EXAMPLES: list[dict[str, Any] | str] = [
    {"lines": ORDER, "fulfillment": "ship", "near": LOOP, "limit": 3},
    "priority",
    {"lines": ORDER, "fulfillment": "ship", "near": LOOP, "limit": 3},
    {
        "lines": ORDER,
        "fulfillment": "ship",
        "locations": ["chi-hydepark", "chi-wickerpark", "evanston", "naperville"],
        "limit": 3,
    },
    {
        "lines": [{"sku": "HOODIE-NVY-M", "qty": 1}, {"sku": "CAP-BLK-OS", "qty": 1}],
        "fulfillment": "pickup",
        "near": LOOP,
        "radius_km": 10,
        "limit": 3,
    },
    {
        "lines": [{"sku": "HOODIE-NVY-M", "qty": 1}],
        "fulfillment": "pickup",
        "near": LOOP,
        "limit": 3,
    },
    {
        "lines": [{"sku": "HOODIE-NVY-M", "qty": 1}],
        "fulfillment": "pickup",
        "group": "pickup",
        "limit": 2,
    },
    {
        "lines": [{"sku": "HOODIE-NVY-M", "qty": 2}, {"sku": "CAP-BLK-OS", "qty": 1}],
        "fulfillment": "ship",
        "near": LOOP,
        "limit": 3,
    },
]
_WHY = re.compile(r'"why":\s*"([^"]+)"')


def _quoted_whys() -> list[str]:
    text = GUIDE.read_text()
    return [m.group(1) for block in text.split("```")[1::2] for m in _WHY.finditer(block)]


async def _put_location(c: httpx.AsyncClient, loc_id: str, **changes: Any) -> None:
    body = (await c.get(f"/v1/locations/{loc_id}")).json()
    for name in ("id", "created_at", "updated_at"):
        body.pop(name, None)
    body.update(changes)
    assert (await c.put(f"/v1/locations/{loc_id}", json=body)).status_code == 200


async def _plan(c: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await c.post("/v1/sourcing/plans", json=body)
    assert answer.status_code == 200, answer.text
    plan: dict[str, Any] = answer.json()
    return plan


@pytest.mark.slow
async def test_the_guides_plan_examples_answer_as_it_shows(tmp_path: Path) -> None:
    server = DemoServer(tmp_path / "demo")
    try:
        found = await server.start(["--demo"], re.compile(r"demo admin key: (osk_\S+)"))
        headers = {"Authorization": f"Bearer {found.group(1)}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as c:
            produced: list[list[str]] = []
            for example in EXAMPLES:
                if example == "priority":
                    for wh in ("wh-joliet", "wh-elkgrove"):
                        await _put_location(c, wh, priority=10)
                    continue
                assert isinstance(example, dict)
                produced.append([o["why"] for o in (await _plan(c, example))["options"]])
            # No option is not an error.
            assert (await _plan(c, {**ORDER_BODY, "max_locations": 1}))["options"] == []
            # The fence: South Loop keeps 5 units of every sku from web orders.
            await _put_location(c, "chi-southloop", channel_safety_stock={"web": 5})
            web = await c.get(
                "/v1/availability/HOODIE-NVY-M",
                params={"location": "chi-southloop", "channel": "web"},
            )
            assert web.json()["locations"][0]["available"] == 0
            near_south = {"lat": 41.8580, "lon": -87.6246}
            fenced = {
                "lines": [{"sku": "HOODIE-NVY-M", "qty": 1}],
                "fulfillment": "pickup",
                "near": near_south,
                "radius_km": 3,
            }
            assert await _plan(c, {**fenced, "channel": "web"}) == {"options": [], "considered": 2}
            store = await _plan(c, {**fenced, "channel": "store"})
            produced.append([o["why"] for o in store["options"]])
            # The 422s the guide quotes.
            too_many = await c.post("/v1/sourcing/plans", json={**ORDER_BODY, "max_locations": 11})
            lonely = await c.post(
                "/v1/sourcing/plans", json={**ORDER_BODY, "fulfillment": "pickup", "radius_km": 5}
            )
    finally:
        await server.stop()
    quoted = _quoted_whys()
    every = {why for whys in produced for why in whys}
    assert len(quoted) >= 15
    assert [why for why in quoted if why not in every] == []
    assert [whys[0] for whys in produced if whys[0] not in quoted] == []
    guide = GUIDE.read_text()
    for answer in (too_many, lonely):
        assert answer.status_code == 422
        assert f'"detail":"{answer.json()["detail"]}"' in guide
