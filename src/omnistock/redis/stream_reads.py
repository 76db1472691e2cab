"""Reading several partition streams at once, standalone or on Redis Cluster.

Standalone, one XREAD/XREADGROUP names every stream and blocks on the server. On a cluster a
command may name keys of one slot only, and the partitions' streams are in different slots: each
stream is read by its own (non-blocking) command, pipelined per node by the cluster client, and
an empty round waits before the next (``poll_seconds``, doubling up to ``_POLL_MAX`` while the
streams stay empty: an idle reader costs a few rounds a second), until ``block_ms`` has passed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from omnistock.redis.client import is_cluster

_POLL_MAX = 0.2
StreamReply = list[Any]  # [[stream name, [(id, fields), ...]], ...]


async def read_streams(
    client: Any,
    streams: dict[Any, Any],
    *,
    count: int,
    block_ms: int | None,
    group: str | None = None,
    consumer: str | None = None,
    poll_seconds: float = 0.01,
) -> StreamReply:
    """XREAD (or XREADGROUP as ``consumer`` of ``group``) of ``streams`` (name -> id), up to
    ``count`` entries each, waiting up to ``block_ms`` for any (None: no wait)."""
    if not is_cluster(client):
        if group is not None:
            reply = await client.xreadgroup(group, consumer, streams, count=count, block=block_ms)
        else:
            reply = await client.xread(streams, count=count, block=block_ms)
        return list(reply or [])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (block_ms or 0) / 1000
    delay = poll_seconds
    while True:
        async with client.pipeline(transaction=False) as pipe:
            for name, position in streams.items():
                if group is not None:
                    pipe.xreadgroup(group, consumer, {name: position}, count=count)
                else:
                    pipe.xread({name: position}, count=count)
            replies = await pipe.execute()
        found = [item for reply in replies if reply for item in reply]
        if found or block_ms is None or loop.time() >= deadline:
            return found
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 2, _POLL_MAX)
