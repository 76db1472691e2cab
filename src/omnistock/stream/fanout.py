"""The change stream of one process: one reader over every partition stream, fanned out to this
process's WebSocket clients through an index (location, group, sku) -> subscriptions.

Every instance runs its own reader, so a change made through any instance reaches the clients
of all. The reader never waits for a client: it only appends to their outboxes (see
``connection.py``); a clock task sends heartbeats and drops clients stalled in a send.

The subscription index is ``index.py``, the replay of a subscription with ``since``
``catchup.py``, the connections with their limits and revocation ``registry.py``. This module
keeps the reader, the clock and the subscribe/unsubscribe steps that join them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
from redis.exceptions import RedisError, ResponseError

from omnistock.domain.events import POSITION, decode_position
from omnistock.domain.ports import KeyLookup, LocationLookup
from omnistock.metrics import Metrics
from omnistock.redis import keys
from omnistock.redis.client import is_cluster, reader_client
from omnistock.settings import Settings
from omnistock.stream.activity import ReaderActivity
from omnistock.stream.catchup import CatchUp
from omnistock.stream.connection import Connection, Subscription
from omnistock.stream.cursor import encode, format_id, parse_id
from omnistock.stream.events import Change, Heartbeat
from omnistock.stream.index import SubscriptionIndex
from omnistock.stream.registry import ConnectionRegistry

log = logging.getLogger("omnistock.stream")

_BLOCK_MS = 5000
_READ_COUNT = 1000
_DELETIONS_EVERY = 2.0  # seconds between checks for rebuilt or trimmed-past streams
_CLOCK_TICK = 0.25  # seconds: heartbeats go out in small groups, a few each tick


class Fanout:
    """Reader, subscription index and client registry of one process."""

    def __init__(
        self,
        settings: Settings,
        redis: Any,
        locations: LocationLookup,
        metrics: Metrics,
        api_keys: KeyLookup | None = None,
        lookup_errors: tuple[type[BaseException], ...] = (OSError,),
    ) -> None:
        self.partitions = settings.partitions
        self._lookup_errors = lookup_errors  # what a location or key look-up may raise
        self._max_replay = settings.ws_max_replay_entries
        self._redis_url = settings.redis_url
        self._stall = settings.ws_stall_seconds
        self._heartbeat = settings.heartbeat_seconds
        self._redis = redis
        self._locations = locations
        self._streams = [keys.stream(p) for p in range(self.partitions)]
        self._partition_of = {name.encode(): p for p, name in enumerate(self._streams)}
        self.positions = [0] * self.partitions
        # Idle when no subscription of this process needs the streams: then nothing reads them
        # (see stream/activity.py); the first subscription refreshes the positions first.
        self._coalesce = settings.stream_cluster_coalesce_ms / 1000
        self.activity = ReaderActivity(self._busy, self._refresh_positions)
        self._index = SubscriptionIndex()
        self.registry = ConnectionRegistry(settings, self._index, api_keys, lookup_errors)
        # The registry's state and operations, as the fan-out's own (one set, one dict each).
        self.connections = self.registry.connections
        self.by_key = self.registry.by_key
        self.key_entries = self.registry.key_entries
        self.refusal = self.registry.refusal
        self.connect = self.registry.connect
        self.disconnect = self.registry.disconnect
        self.revoke = self.registry.revoke
        self.keys_changed = self.registry.keys_changed
        self.authorized = self.registry.authorized
        self._catchup = CatchUp(
            redis, self._streams, locations, self._index, lambda: self.positions, self._groups_of
        )
        metrics.gauge(
            "omnistock_stream_connections",
            "WebSocket stream clients of this process",
            lambda: len(self.connections),
        )
        metrics.gauge(
            "omnistock_stream_filter_entries",
            "Filter entries (skus, locations, groups) held by this process's stream clients",
            lambda: sum(self.key_entries.values()),
        )
        metrics.gauge(
            "omnistock_stream_pending_messages",
            "Messages waiting in the outboxes of this process's stream clients",
            lambda: sum(len(c) for c in self.connections),
        )
        metrics.gauge(
            "omnistock_stream_reader_active",
            "1 while this process reads the change streams (it has a subscription), 0 when idle",
            lambda: 1.0 if self.activity.active else 0.0,
        )
        metrics.gauge(
            "omnistock_stream_reader_starts",
            "Times this process's stream reader went from idle to reading (a first subscription)",
            lambda: float(self.activity.starts),
        )

    # -- reader ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin at the end of every stream: clients see changes made from now on."""
        await self._refresh_positions()

    async def _refresh_positions(self) -> None:
        """Move every position to its stream's end (never back): what an idle reader skipped
        had no subscriber here to tell."""
        infos = await self._stream_infos()
        ends = [parse_id(i["last-generated-id"]) if i else 0 for i in infos]
        self.positions = list(map(max, self.positions, ends))

    def _busy(self) -> bool:
        """True while a subscription of this process (live or catching up) needs the reader."""
        return bool(self._index) or any(c.subs for c in self.connections)

    def cursor(self) -> str:
        """The cursor of everything this process has read so far (current only while the
        reader is active: use :meth:`current_cursor` for a cursor of now)."""
        return encode(self.positions)

    async def current_cursor(self) -> str:
        """A cursor of now: every change after it is in the streams after it."""
        if not self.activity.active:
            await self._refresh_positions()
        return encode(self.positions)

    def loops(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """The fan-out's background loops by name, each run (and restarted) by the supervisor:
        the stream reader, the clock (heartbeats, stalled clients) and the deletion watch."""
        return {
            "stream": self.run,
            "stream-clock": self._clock,
            "stream-deletions": self._watch_deletions,
        }

    async def run(self) -> None:
        """Read the streams forever on a dedicated connection, reconnecting after Redis errors
        (anything else reaches the supervisor, which restarts this from the same positions)."""
        assert self._redis_url is not None
        while True:
            # No read timeout: XREAD blocks up to _BLOCK_MS by itself.
            client = reader_client(self._redis_url, len(self._streams))
            try:
                await self._read(client)
            except (RedisError, OSError) as exc:
                log.warning("stream reader lost redis (%s); reconnecting", exc)
            finally:
                await client.aclose()
            await asyncio.sleep(0.5)

    async def _read(self, client: Any) -> None:
        await self.activity.wait()  # no subscription here: no stream reads at all
        if is_cluster(client):
            # One XREAD names keys of one slot only: a blocking reader per partition stream, so
            # a change reaches subscribers as soon as on standalone.
            # The slot map first, once: redis-py's cluster client, first used by many tasks at
            # once, closes connections under some of them.
            await client.initialize()
            try:
                async with asyncio.TaskGroup() as readers:
                    for p in range(len(self._streams)):
                        readers.create_task(self._read_partition(client, p))
            except* (RedisError, OSError) as lost:  # the first loss stops them all: reconnect
                raise lost.exceptions[0] from None
            return
        while True:
            await self.activity.wait()
            streams: dict[Any, Any] = {
                name: format_id(pos)
                for name, pos in zip(self._streams, self.positions, strict=True)
            }
            reply: list[Any] = await client.xread(streams, count=_READ_COUNT, block=_BLOCK_MS)
            if reply:
                await self._take(reply)

    async def _read_partition(self, client: Any, p: int) -> None:
        name = self._streams[p]
        while True:
            await self.activity.wait()
            reply = await client.xread(
                {name: format_id(self.positions[p])}, count=_READ_COUNT, block=_BLOCK_MS
            )
            if reply:
                await self._take(reply)
                # A busy stream is read in batches: wait a moment for more entries instead of
                # waking on every one. After a quiet spell the blocking read returns at once.
                if self._coalesce:
                    await asyncio.sleep(self._coalesce)

    async def _take(self, reply: list[Any]) -> None:
        """Dispatch what one XREAD returned."""
        reply = self._after_positions(reply)
        if not self._index:
            # Nobody to tell on this instance: only keep the cursor current.
            for name, entries in reply:
                self.positions[self._partition_of[name]] = parse_id(entries[-1][0])
            return
        if self._index.by_group:
            await self._learn_locations(reply)
        for name, entries in reply:
            p = self._partition_of[name]
            for entry_id, fields in entries:
                try:
                    self._dispatch(p, entry_id, fields)
                except (
                    KeyError,
                    ValueError,
                    msgspec.DecodeError,
                ):  # one bad entry must not stop the stream
                    log.exception("skipping malformed stream entry %s of %s", entry_id, name)

    def _after_positions(self, reply: list[Any]) -> list[Any]:
        """Drop entries at or before the reader's position: a read issued before an idle spell
        may return after the first new subscription has moved the positions to the streams'
        ends, and what it holds was before that subscription's cursor."""
        fresh: list[Any] = []
        for name, entries in reply:
            pos = self.positions[self._partition_of[name]]
            if not entries or parse_id(entries[-1][0]) <= pos:
                continue
            if parse_id(entries[0][0]) <= pos:  # rare: only just after a restart from idle
                entries = [e for e in entries if parse_id(e[0]) > pos]
            fresh.append((name, entries))
        return fresh

    async def _learn_locations(self, reply: list[Any]) -> None:
        """Group subscriptions need each location's groups: look up locations this instance has
        not heard of yet (made on another instance a moment ago)."""
        unknown: set[str] = set()
        for _, entries in reply:
            for _, fields in entries:
                with contextlib.suppress(msgspec.DecodeError):
                    if POSITION in fields:
                        unknown.add(decode_position(fields[POSITION]).location)
        unknown -= self._locations.by_id.keys()
        try:
            for location in unknown:
                await self._locations.get(location)
        except self._lookup_errors as exc:
            log.warning("stream reader cannot look up new locations (%s)", exc)

    def _dispatch(self, p: int, entry_id: bytes, fields: Mapping[bytes, bytes]) -> None:
        self.positions[p] = parse_id(entry_id)
        raw = fields.get(POSITION)
        if raw is None:
            return  # reservation and idempotency events are not position changes
        event = decode_position(raw)
        subs = self._index.matching(event.location, event.sku, self._groups_of)
        if not subs:
            return
        change = Change(event, tuple(self.positions))
        for sub in subs:
            if sub.accepts(change):
                sub.conn.push_change(sub, change)

    def _groups_of(self, location: str) -> list[str]:
        loc = self._locations.by_id.get(location)
        return loc.groups if loc is not None else []

    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(_CLOCK_TICK, self._heartbeat / 2, self._stall / 4)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            beat = Heartbeat(tuple(self.positions))  # one message for every client due now
            for conn in list(self.connections):
                if conn.sending_since and now - conn.sending_since > self._stall:
                    conn.kill(f"stalled: nothing read for {self._stall:g}s; resume with since")
                elif now - conn.last_heartbeat >= self._heartbeat:
                    conn.push_heartbeat(beat, now)

    # -- retention ------------------------------------------------------------------------------

    async def _stream_infos(self) -> list[dict[str, Any] | None]:
        """XINFO STREAM of every partition (None where the stream does not exist yet)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in self._streams:
                pipe.xinfo_stream(name)
            replies = await pipe.execute(raise_on_error=False)
        infos: list[dict[str, Any] | None] = []
        for reply in replies:
            if isinstance(reply, ResponseError) and "no such key" in str(reply).lower():
                infos.append(None)
            elif isinstance(reply, Exception):
                raise reply
            else:
                infos.append(reply)
        return infos

    async def trimmed_past(self, positions: Sequence[int]) -> dict[int, int]:
        """Partitions whose stream has lost entries after the given position, each with the
        lowest position that is safe to resume from again. Entries are lost to retention
        (XTRIM; omnistock's trimmer also records the last one dropped as max-deleted-entry-id)
        and to a rebuild (XSETID ... MAXDELETEDID: what Redis no longer holds)."""
        lost: dict[int, int] = {}
        infos = await self._stream_infos()
        for p, (pos, info) in enumerate(zip(positions, infos, strict=True)):
            if info is None:
                continue
            floor = parse_id(info.get("max-deleted-entry-id") or b"0-0")
            added = info.get("entries-added")
            if added is None or added > info["length"]:  # trimmed: the first entry tells
                first = info["first-entry"][0] if info["length"] else None
                floor = max(
                    floor, parse_id(first) - 1 if first else parse_id(info["last-generated-id"])
                )
            if pos < floor:
                lost[p] = floor
        return lost

    async def _watch_deletions(self) -> None:
        """Every few seconds: if a stream lost entries past the reader's position (a rebuild, or
        a reader away longer than the retention), move the reader past the gap and tell every
        subscription to resync; otherwise the cursors it hands out would all look too old."""
        while True:
            await asyncio.sleep(_DELETIONS_EVERY)
            if not self.activity.active:
                continue  # idle: the next start moves every position to its stream's end
            try:
                lost = await self.trimmed_past(self.positions)
            except (RedisError, OSError) as exc:
                log.warning("stream deletion watch: %s", exc)
                continue
            if not lost:
                continue
            log.warning("stream entries of partitions %s are gone; sending resync", sorted(lost))
            for p, floor in lost.items():
                self.positions[p] = max(self.positions[p], floor)
            for conn in self.connections:
                for sub in conn.subs.values():
                    conn.push_control("resync", sub=sub.id)

    async def subscribe(self, sub: Subscription, since: list[int] | None) -> None:
        """Register ``sub`` (already validated) and queue its ``subscribed``; with ``since``,
        replay from there first, or send ``resync`` when retention has dropped what it needs."""
        conn = sub.conn
        conn.subs[sub.id] = sub
        self.registry.hold(conn, sub.entries)
        # Registered first, then the reader started: it cannot go idle from here on, and the
        # positions the reply names are the streams' ends or later (nothing before them is lost
        # to the live flow: catch-up or the client's snapshot has it).
        await self.activity.start()
        resync = since is not None and bool(await self.trimmed_past(since))
        if resync:
            since = None
        if conn not in self.connections or conn.subs.get(sub.id) is not sub:
            return  # gone while we looked
        if since is None:
            self._index.add(sub)
            conn.push_subscribed(sub.id, tuple(self.positions))
            if resync:
                conn.push_control("resync", sub=sub.id)
            return
        sub.progress = list(map(min, since, self.positions))
        sub.replay_left = self._max_replay
        conn.catching_up.add(sub)
        conn.push_subscribed(sub.id, tuple(self.positions))
        conn.tasks[sub.id] = asyncio.create_task(self._catchup.run(sub), name=f"catch-up {sub.id}")

    def unsubscribe(self, conn: Connection, sub_id: str) -> bool:
        sub = conn.subs.pop(sub_id, None)
        if sub is None:
            return False
        self.registry.hold(conn, -sub.entries)
        task = conn.tasks.pop(sub_id, None)
        if task is not None:
            task.cancel()
        conn.catching_up.discard(sub)
        self._index.remove(sub)
        conn.drop_subscription(sub)
        return True
