"""Position events read from the partition streams, and the messages sent for them."""

from __future__ import annotations

import msgspec

from omnistock.domain.clock import rfc3339
from omnistock.domain.events import PositionEvent
from omnistock.stream import cursor

_encode = msgspec.json.Encoder().encode


class Change:
    """One position event, as subscribers see it.

    ``vector`` is the reader's position in every partition just after this event: the cursor
    of a message about it. The JSON body and the cursor are rendered once, on first use, and
    shared by every subscriber that receives the event.
    """

    __slots__ = (
        "_body",
        "_cursor",
        "available",
        "incoming",
        "location",
        "on_hand",
        "position",
        "prev_status",
        "reason",
        "reserved",
        "safety_stock",
        "sku",
        "status",
        "ts",
        "unsellable",
        "vector",
        "version",
    )

    def __init__(self, event: PositionEvent, vector: tuple[int, ...]) -> None:
        self.location = event.location
        self.sku = event.sku
        self.on_hand = event.on_hand
        self.reserved = event.reserved
        self.safety_stock = event.safety_stock
        self.available = event.available
        self.status = event.status
        self.prev_status = event.prev_status
        self.version = event.version
        self.reason = event.reason
        self.ts = event.ts
        self.unsellable = event.unsellable
        self.incoming = event.incoming
        self.vector = vector
        self._body: str | None = None
        self._cursor: str | None = None

    @property
    def status_changed(self) -> bool:
        return self.status != self.prev_status

    def cursor(self) -> str:
        if self._cursor is None:
            self._cursor = cursor.encode(self.vector)
        return self._cursor

    def message(self, sub_json: str, vector: tuple[int, ...] | None = None) -> str:
        """The ``change`` message for subscription ``sub_json`` (already JSON-encoded); with
        ``vector``, under that cursor instead of the event's own."""
        if self._body is None:
            self._body = (
                _encode(
                    {
                        "sku": self.sku,
                        "location": self.location,
                        "on_hand": self.on_hand,
                        "reserved": self.reserved,
                        "safety_stock": self.safety_stock,
                        "available": self.available,
                        "unsellable": self.unsellable,
                        "incoming": self.incoming,
                        "status": self.status,
                        "version": self.version,
                        "reason": self.reason,
                        "ts": rfc3339(self.ts),
                    }
                )
                .decode()
                .removeprefix("{")
            )
        token = self.cursor() if vector is None else cursor.encode(vector)
        return f'{{"type":"change","sub":{sub_json},"cursor":"{token}",{self._body}'


class Heartbeat:
    """A heartbeat at reader position ``vector``. The clock makes one per tick and queues it to
    every connection due then, so its message (a cursor of every partition) is rendered once,
    like a change's, not once per client."""

    __slots__ = ("_text", "vector")

    def __init__(self, vector: tuple[int, ...]) -> None:
        self.vector = vector
        self._text: str | None = None

    def message(self) -> str:
        if self._text is None:
            self._text = control("heartbeat", cursor=cursor.encode(self.vector))
        return self._text


def json_string(value: str) -> str:
    return _encode(value).decode()


def control(kind: str, **fields: object) -> str:
    """A non-change message: ``subscribed``, ``heartbeat``, ``resync``, ``error``."""
    return _encode({"type": kind, **fields}).decode()
