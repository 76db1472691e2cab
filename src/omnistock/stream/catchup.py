"""Catch-up: a subscription with ``since`` replays the streams from its cursor (XRANGE, at the
client's pace), then joins the live index in the same step as it sees it has reached the
reader's position, so there is no gap between the replay and the live flow. A replay is bounded
per subscription (``ws_max_replay_entries``): past it, the client is told to resync."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from omnistock.domain.events import POSITION, decode_position
from omnistock.domain.ports import LocationLookup
from omnistock.stream.connection import Subscription
from omnistock.stream.cursor import format_id, parse_id
from omnistock.stream.events import Change
from omnistock.stream.index import SubscriptionIndex

log = logging.getLogger("omnistock.stream")

_REPLAY_CHUNK = 500


class _ReplayCapped(Exception):
    """A catch-up has scanned its maximum of stream entries."""


class CatchUp:
    """Replays for the subscriptions of one process's fan-out."""

    def __init__(
        self,
        redis: Any,
        streams: list[str],
        locations: LocationLookup,
        index: SubscriptionIndex,
        positions: Callable[[], list[int]],
        groups_of: Callable[[str], list[str]],
    ) -> None:
        self._redis = redis
        self._streams = streams
        self._locations = locations
        self._index = index
        self._positions = positions  # the reader's current position per partition
        self._groups_of = groups_of

    async def run(self, sub: Subscription) -> None:
        """Replay until ``sub`` has reached the reader, then join the live index (a task per
        subscription; it ends when joined, or kills the connection on failure)."""
        conn = sub.conn
        try:
            while conn.close_reason is None:
                assert sub.progress is not None
                target = list(self._positions())
                if all(t <= v for t, v in zip(target, sub.progress, strict=True)):
                    # No await since the check: nothing read by the reader is missed.
                    sub.progress = None
                    conn.catching_up.discard(sub)
                    self._index.add(sub)
                    return
                for p, end in enumerate(target):
                    await self._replay(sub, p, end)
        except _ReplayCapped:
            # Too far behind to replay (ws_max_replay_entries): follow live from here, and
            # the client re-reads by HTTP.
            sub.progress = None
            conn.catching_up.discard(sub)
            self._index.add(sub)
            conn.push_control("resync", sub=sub.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("catch-up of subscription %r failed: %s", sub.id, exc)
            conn.kill("catch-up failed; reconnect with since")
        finally:
            if conn.tasks.get(sub.id) is asyncio.current_task():
                del conn.tasks[sub.id]

    async def _replay(self, sub: Subscription, p: int, end: int) -> None:
        """Queue ``sub``'s changes of partition ``p`` after its progress, up to ``end``."""
        conn, progress = sub.conn, sub.progress
        assert progress is not None
        while progress[p] < end:
            if sub.replay_left <= 0:
                raise _ReplayCapped
            count = min(_REPLAY_CHUNK, sub.replay_left)
            entries = await self._redis.xrange(
                self._streams[p],
                min=f"({format_id(progress[p])}",
                max=format_id(end),
                count=count,
            )
            sub.replay_left -= len(entries)
            for entry_id, fields in entries:
                pos = parse_id(entry_id)
                raw = fields.get(POSITION)
                if raw is not None:
                    event = decode_position(raw)
                    location, sku = event.location, event.sku
                    if sub.groups and location not in self._locations.by_id:
                        await self._locations.get(location)
                    if sub.wants(location, sku, self._groups_of(location)):
                        await conn.room_for(sub.id, location, sku)
                        if conn.close_reason is not None:
                            return
                        progress[p] = pos
                        change = Change(event, tuple(progress))
                        if sub.accepts(change):
                            conn.push_change(sub, change)
                        continue
                progress[p] = pos
            if len(entries) < count:
                progress[p] = end
