"""The per-client outbox: conflation, order, safe cursors, the bound."""

from __future__ import annotations

import asyncio

from omnistock.domain.events import PositionEvent
from omnistock.domain.roles import Principal, Role
from omnistock.stream import cursor
from omnistock.stream.connection import Connection, Subscription
from omnistock.stream.events import Change

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
    conn.push_heartbeat(vec(1, 1), now=1)
    conn.push_change(sub, change("L", "a", 1, vec(2, 1)))
    conn.push_heartbeat(vec(2, 1), now=2)
    sent = await drain(conn)
    assert (
        len(sent) == 2
        and sent[1] == f'{{"type":"heartbeat","cursor":"{cursor.encode(vec(2, 1))}"}}'
    )


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
