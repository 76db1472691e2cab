"""One WebSocket client: its subscriptions and its bounded, conflating outbox.

The outbox is an ordered map. A change is keyed by (subscription, location, sku): a newer change
of a position still waiting replaces it and moves to the end (conflation), so a slow client is
sent the latest state of each position and the outbox never holds more entries than there are
distinct positions (and control messages) pending. Past ``limit`` entries the client is dropped.

Cursors stay safe under conflation because entries leave in the order of their newest event:
when a message with cursor ``c`` is delivered, every matching event up to ``c`` was delivered
before it or is superseded by a newer event of the same position still pending.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Iterable

from omnistock.domain.roles import Principal
from omnistock.stream import cursor
from omnistock.stream.events import Change, Heartbeat, control, json_string

_HEARTBEAT = "heartbeat"
POLICY_VIOLATION = 1008  # close code of a client dropped for its own behaviour (too slow)


class Subscription:
    """What one ``subscribe`` asked for. ``progress`` is set while it catches up from ``since``:
    its position per partition, and it is not in the live index until it has caught up."""

    def __init__(
        self,
        conn: Connection,
        sub_id: str,
        skus: Iterable[str] | None,
        locations: Iterable[str] | None,
        groups: Iterable[str] | None,
        status_only: bool,
    ) -> None:
        self.conn = conn
        self.id = sub_id
        self.json_id = json_string(sub_id)
        self.skus = frozenset(skus) if skus else None
        self.locations = frozenset(locations) if locations else None
        self.groups = frozenset(groups) if groups else None
        self.status_only = status_only
        self.progress: list[int] | None = None
        self.replay_left = 0  # stream entries a catch-up may still scan
        # Filter entries held (what the per-connection limit counts).
        self.entries = sum(len(f) for f in (self.skus, self.locations, self.groups) if f)

    @property
    def firehose(self) -> bool:
        return self.skus is None and self.locations is None and self.groups is None

    def wants(self, location: str, sku: str, location_groups: Iterable[str]) -> bool:
        """True when a change of ``sku`` at ``location`` (a member of ``location_groups``)
        matches: skus AND (locations OR groups), each filter only when given."""
        if self.skus is not None and sku not in self.skus:
            return False
        if self.locations is None and self.groups is None:
            return True
        if self.locations is not None and location in self.locations:
            return True
        return self.groups is not None and not self.groups.isdisjoint(location_groups)

    def accepts(self, change: Change) -> bool:
        return not self.status_only or change.status_changed


class _Pending:
    """A queued change; ``vector`` overrides the event's cursor when lowered for a catch-up."""

    __slots__ = ("change", "sub", "vector")

    def __init__(self, sub: Subscription, change: Change, vector: tuple[int, ...] | None) -> None:
        self.sub, self.change, self.vector = sub, change, vector


_Entry = str | _Pending | Heartbeat


class Connection:
    """A client's state, shared by its handler (reads ``next_message``) and the reader (pushes)."""

    def __init__(self, principal: Principal, limit: int, now: float, secret: str = "") -> None:
        self.principal = principal
        self.secret = secret  # the API key it came with, to re-check it (never logged)
        self.limit = limit
        self.subs: dict[str, Subscription] = {}
        self.filter_entries = 0  # skus + locations + groups over all its subscriptions
        self.catching_up: set[Subscription] = set()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._outbox: OrderedDict[object, _Entry] = OrderedDict()
        self._keys = itertools.count()
        self._wake = asyncio.Event()
        self._popped = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.close_code = POLICY_VIOLATION
        self.sending_since = 0.0  # loop time a send started; 0 while not sending
        self.last_heartbeat = now
        self.peak = 0  # most entries ever pending: the memory this client held
        self.conflated = 0  # changes replaced by a newer state before they were sent
        self.sent = 0

    def __len__(self) -> int:
        return len(self._outbox)

    # -- producing ------------------------------------------------------------------------------

    def safe_vector(self, vector: tuple[int, ...]) -> tuple[int, ...]:
        """``vector`` lowered to where subscriptions still catching up have got: a cursor given
        now must be safe to resume every subscription of this connection from."""
        for sub in self.catching_up:
            assert sub.progress is not None
            vector = tuple(map(min, vector, sub.progress))
        return vector

    def push_change(self, sub: Subscription, change: Change) -> None:
        if self.close_reason is not None:
            return
        vector = self.safe_vector(change.vector) if self.catching_up else None
        key = (sub.id, change.location, change.sku)
        if self._outbox.pop(key, None) is not None:
            self.conflated += 1
        self._put(key, _Pending(sub, change, vector))

    def push_control(self, kind: str, **fields: object) -> None:
        if self.close_reason is None:
            self._put(next(self._keys), control(kind, **fields))

    def push_subscribed(self, sub_id: str, reader_vector: tuple[int, ...]) -> None:
        self.push_control(
            "subscribed", id=sub_id, cursor=cursor.encode(self.safe_vector(reader_vector))
        )

    def push_heartbeat(self, beat: Heartbeat, now: float) -> None:
        """Queue the (single, newest) heartbeat behind everything pending. ``beat`` is shared
        with the other connections beaten in the same tick; while a subscription catches up,
        this connection gets one of its own, at its lowered cursor."""
        self.last_heartbeat = now
        if self.close_reason is None:
            if self.catching_up:
                beat = Heartbeat(self.safe_vector(beat.vector))
            self._outbox.pop(_HEARTBEAT, None)
            self._put(_HEARTBEAT, beat)

    def _put(self, key: object, entry: _Entry) -> None:
        self._outbox[key] = entry
        size = len(self._outbox)
        if size > self.peak:
            self.peak = size
            if size > self.limit:
                self.kill(f"too slow: more than {self.limit} messages pending; resume with since")
                return
        self._wake.set()

    def drop_subscription(self, sub: Subscription) -> None:
        """Forget pending changes of an unsubscribed subscription."""
        stale = [k for k, e in self._outbox.items() if isinstance(e, _Pending) and e.sub is sub]
        for key in stale:
            del self._outbox[key]

    async def room_for(self, sub_id: str, location: str, sku: str) -> None:
        """Wait until a change of this position can be queued without conflating an older one,
        and the outbox is at most half full: a catch-up replays every change, at the client's
        pace."""
        key = (sub_id, location, sku)
        while self.close_reason is None and (
            key in self._outbox or len(self._outbox) >= max(1, self.limit // 2)
        ):
            self._popped.clear()
            await self._popped.wait()

    def kill(self, reason: str, code: int = POLICY_VIOLATION) -> None:
        """Drop the client: free its outbox at once; its handler closes the socket with
        ``code`` and ``reason``."""
        if self.close_reason is None:
            self.close_reason = reason
            self.close_code = code
            self._outbox.clear()
            self._wake.set()
            self._popped.set()
            self.closed.set()

    # -- consuming ------------------------------------------------------------------------------

    async def next_message(self) -> str | None:
        """The next message to send, waiting for one; None once the connection is killed."""
        while not self._outbox:
            if self.close_reason is not None:
                return None
            self._wake.clear()
            await self._wake.wait()
        _, entry = self._outbox.popitem(last=False)
        self._popped.set()
        if isinstance(entry, str):
            return entry
        if isinstance(entry, Heartbeat):
            return entry.message()
        return entry.change.message(entry.sub.json_id, entry.vector)
