"""The per-client outbox: conflation, order, safe cursors, the bound."""

from __future__ import annotations

import asyncio
from collections import Counter

from omnistock.domain.events import PositionEvent
from omnistock.domain.roles import Principal, Role
from omnistock.metrics import Metrics
from omnistock.settings import Settings
from omnistock.stream import cursor
from omnistock.stream.connection import Connection, Subscription
from omnistock.stream.events import Change, Heartbeat
from omnistock.stream.fanout import Fanout
from omnistock.usecases.caches import LocationCache

WHO = Principal(id="k", name="k", role=Role.ADMIN)


def change(loc: str, sku: str, version: int, vector: tuple[int, ...]) -> Change:
    event = PositionEvent(
        location=loc, sku=sku, kind="adjust", reason="receipt", ref="", actor="erp",
        idempotency_key="", reservation_id="", delta_on_hand=1, delta_reserved=0,
        on_hand=version, reserved=0, safety_stock=0, own_safety_stock=-1, version=version,
        available=version, status="in_stock", prev_status="limited", ts=1795000000000,
    )  # fmt: skip
    return Change(event, vector)


def vec(*ms: int) -> tuple[int, ...]:
    return tuple(cursor.pack(m, 0) for m in ms)


async def drain(conn: Connection) -> list[str]:
    out = []
    while len(conn):
        message = await conn.next_message()
        assert message is not None
        out.append(message)
    return out


async def test_newer_state_replaces_older_and_moves_to_the_end() -> None:
    conn = Connection(WHO, limit=100, now=0)
    sub = Subscription(conn, "s", None, ["L"], None, False)
    conn.push_change(sub, change("L", "a", 1, vec(1, 0)))
    conn.push_change(sub, change("L", "b", 1, vec(2, 0)))
    conn.push_change(sub, change("L", "a", 2, vec(3, 0)))
    assert (len(conn), conn.conflated, conn.peak) == (2, 1, 2)
    sent = await drain(conn)
    assert ['"sku":"b"' in sent[0], '"sku":"a"' in sent[1], '"version":2' in sent[1]] == [True] * 3
    # Cursors leave in increasing order: b's (2) before a's newest (3).
    assert f'"cursor":"{cursor.encode(vec(2, 0))}"' in sent[0]
    assert f'"cursor":"{cursor.encode(vec(3, 0))}"' in sent[1]


async def test_cursor_is_lowered_while_another_subscription_catches_up() -> None:
    conn = Connection(WHO, limit=100, now=0)
    live = Subscription(conn, "live", None, ["L"], None, False)
    behind = Subscription(conn, "behind", None, ["M"], None, False)
    behind.progress = list(vec(5, 1))
    conn.catching_up.add(behind)
    conn.push_change(live, change("L", "a", 1, vec(9, 9)))
    conn.push_subscribed("x", vec(9, 9))
    (msg, subscribed) = await drain(conn)
    assert f'"cursor":"{cursor.encode(vec(5, 1))}"' in msg
    assert cursor.encode(vec(5, 1)) in subscribed


async def test_over_the_bound_the_client_is_dropped_and_memory_freed() -> None:
    conn = Connection(WHO, limit=3, now=0)
    sub = Subscription(conn, "s", None, ["L"], None, False)
    for n in range(3):
        conn.push_change(sub, change("L", f"k{n}", 1, vec(n, 0)))
    assert conn.close_reason is None
    conn.push_change(sub, change("L", "k3", 1, vec(4, 0)))
    assert conn.close_reason is not None and conn.close_reason.startswith("too slow")
    assert len(conn) == 0 and conn.closed.is_set()
    assert await conn.next_message() is None
    conn.push_control("error", detail="ignored once closed")
    assert len(conn) == 0


async def test_heartbeat_is_single_and_last() -> None:
    conn = Connection(WHO, limit=10, now=0)
    sub = Subscription(conn, "s", None, ["L"], None, False)
    conn.push_heartbeat(Heartbeat(vec(1, 1)), now=1)
    conn.push_change(sub, change("L", "a", 1, vec(2, 1)))
    conn.push_heartbeat(Heartbeat(vec(2, 1)), now=2)
    sent = await drain(conn)
    assert (
        len(sent) == 2
        and sent[1] == f'{{"type":"heartbeat","cursor":"{cursor.encode(vec(2, 1))}"}}'
    )


async def test_a_heartbeat_is_rendered_once_for_every_client_but_one_catching_up() -> None:
    beat = Heartbeat(vec(5, 5))
    live, other, behind_conn = (Connection(WHO, limit=10, now=0) for _ in range(3))
    behind = Subscription(behind_conn, "behind", None, ["M"], None, False)
    behind.progress = list(vec(3, 4))
    behind_conn.catching_up.add(behind)
    for conn in (live, other, behind_conn):
        conn.push_heartbeat(beat, now=1)
    (a,), (b,), (c,) = [await drain(conn) for conn in (live, other, behind_conn)]
    assert a is b is beat.message()
    assert a == f'{{"type":"heartbeat","cursor":"{cursor.encode(vec(5, 5))}"}}'
    assert c == f'{{"type":"heartbeat","cursor":"{cursor.encode(vec(3, 4))}"}}'


async def test_clients_that_connect_together_are_not_all_due_a_heartbeat_together() -> None:
    """Their heartbeats are spread over the interval: a thousand due in the same clock tick
    would be sent in one burst, in front of every change."""
    interval = 10.0
    fanout = Fanout(Settings(heartbeat_seconds=interval), None, LocationCache(None), Metrics())
    now = asyncio.get_running_loop().time()
    conns = [fanout.connect(WHO) for _ in range(1000)]
    due_in = [conn.last_heartbeat + interval - now for conn in conns]
    assert all(0 < t <= interval + 1 for t in due_in)  # the first heartbeat early, never late
    per_quarter_second = Counter(int(t / 0.25) for t in due_in)
    assert max(per_quarter_second.values()) <= 30  # evenly: 1000 over 40 ticks is 25 each


async def test_unsubscribe_drops_pending_changes_and_room_for_waits() -> None:
    conn = Connection(WHO, limit=10, now=0)
    a = Subscription(conn, "a", None, ["L"], None, False)
    b = Subscription(conn, "b", None, ["L"], None, False)
    conn.push_change(a, change("L", "x", 1, vec(1, 0)))
    conn.push_change(b, change("L", "x", 1, vec(1, 0)))
    conn.drop_subscription(a)
    assert len(conn) == 1
    waiting = asyncio.create_task(conn.room_for("b", "L", "x"))
    await asyncio.sleep(0)
    assert not waiting.done()  # b's change of L/x is still pending
    assert '"sub":"b"' in (await conn.next_message() or "")
    await asyncio.wait_for(waiting, 1)


def test_filters() -> None:
    conn = Connection(WHO, limit=10, now=0)
    sub = Subscription(conn, "s", ["x"], ["L"], ["g"], False)
    assert sub.wants("L", "x", []) and sub.wants("M", "x", ["g"])
    assert not sub.wants("M", "x", ["h"]) and not sub.wants("L", "y", ["g"])
    assert Subscription(conn, "f", [], None, [], False).firehose
    assert Subscription(conn, "k", ["x"], None, None, False).wants("anywhere", "x", [])
