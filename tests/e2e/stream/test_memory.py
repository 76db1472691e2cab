"""Memory stays bounded when a client opens the maximum of subscriptions and filters (defect 6:
one connection sending 100 subscriptions of 7,600 skus took a server from 111 to 476 MB).

A real ``omnistock serve`` with the default limits; its resident memory is measured from
outside. Documented bound (docs/operations.md, "Limits: WebSocket"): one API key at its filter
limit (``ws_max_key_filter_entries``, 100,000 entries) costs the process under 80 MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect

from omnistock.settings import Settings
from tests.conftest import Servers
from tests.e2e.conftest import ADMIN_KEY
from tests.e2e.stream.served import served

DEFAULTS = Settings()
BOUND_MB = 80  # the documented bound for one key at its limits (measured: about 40 MB)


async def subscribe_all(ws: ClientConnection, ops: list[dict[str, object]]) -> list[dict[str, str]]:
    """Send every op at once, then read one answer per op (heartbeats skipped)."""
    for op in ops:
        await ws.send(json.dumps(op))
    answers: list[dict[str, str]] = []
    async with asyncio.timeout(120):
        while len(answers) < len(ops):
            msg = json.loads(await ws.recv())
            if msg["type"] != "heartbeat":
                answers.append(msg)
    return answers


def sku_list(n: int, prefix: str) -> list[str]:
    return [f"{prefix}-SKU-{i:06d}" for i in range(n)]


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


@pytest.mark.slow
async def test_memory_is_bounded_at_the_subscription_and_filter_limits(
    servers: Servers, tmp_path: Path
) -> None:
    max_subs = DEFAULTS.ws_max_subscriptions
    per_sub = DEFAULTS.ws_max_filter_entries
    per_conn = DEFAULTS.ws_max_connection_filter_entries
    per_key = DEFAULTS.ws_max_key_filter_entries
    async with served(servers, tmp_path / "serve.log", log_level="warning") as app:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        # Warm up every code path once, then take the baseline.
        async with connect(app.ws_url, additional_headers=headers, max_size=None) as ws:
            ops = [{"op": "subscribe", "id": "w", "skus": sku_list(per_sub, "warm")}]
            assert (await subscribe_all(ws, ops))[0]["type"] == "subscribed"
        await asyncio.sleep(1.0)
        before = rss_mb(app.proc.pid)

        async with contextlib.AsyncExitStack() as stack:
            sockets = [
                await stack.enter_async_context(
                    connect(app.ws_url, additional_headers=headers, max_size=None)
                )
                for _ in range(per_key // per_conn + 1)
            ]
            # The defect's attack on one socket: 100 subscriptions of 7,600 skus.
            attack = [
                {"op": "subscribe", "id": f"a{n}", "skus": sku_list(7600, f"a{n}")}
                for n in range(100)
            ]
            answers = await subscribe_all(sockets[0], attack)
            admitted = [a for a in answers if a["type"] == "subscribed"]
            assert len(admitted) == per_conn // 7600  # 2: the connection's filter limit
            assert all("per connection" in a["detail"] for a in answers if a["type"] == "error")
            await sockets[0].send(json.dumps({"op": "unsubscribe", "id": "a0"}))
            await sockets[0].send(json.dumps({"op": "unsubscribe", "id": "a1"}))

            # Every socket of the key fills its connection to the limits (subscriptions and
            # filter entries) until the key's budget is spent: 5 sockets of 100 x 200 skus.
            each = per_conn // max_subs
            taken: list[int] = []
            for k, ws in enumerate(sockets):
                ops = [
                    {"op": "subscribe", "id": f"f{n}", "skus": sku_list(each, f"f{k}-{n}")}
                    for n in range(max_subs + 1)
                ]
                answers = await subscribe_all(ws, ops)
                taken.append(sum(a["type"] == "subscribed" for a in answers))
            assert taken == [max_subs] * (per_key // per_conn) + [0]
            spent = sum(taken) * each
            assert spent == per_key
            answers = await subscribe_all(
                sockets[-1], [{"op": "subscribe", "id": "x", "skus": ["one-more"]}]
            )
            assert answers[0]["type"] == "error"

            # An oversized subscription is refused before it is held.
            answers = await subscribe_all(
                sockets[-1], [{"op": "subscribe", "id": "y", "skus": sku_list(per_sub + 1, "y")}]
            )
            assert "per subscription" in answers[0]["detail"]
            await asyncio.sleep(1.0)
            during = rss_mb(app.proc.pid)
            grown = during - before
            assert grown < BOUND_MB, f"RSS grew {grown:.0f} MB ({before:.0f} -> {during:.0f})"
            print(f"RSS {before:.0f} -> {during:.0f} MB with {spent} filter entries held")
