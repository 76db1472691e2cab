"""The change stream's glue: a WebSocket client connects, subscribes within its limits, leaves.
The fan-out (stream/) reads the streams and delivers; the handler (api/stream.py) parses."""

from __future__ import annotations

from redis.exceptions import RedisError

from omnistock.domain.errors import Forbidden
from omnistock.domain.roles import Principal, require_stream
from omnistock.settings import Settings
from omnistock.stream import cursor
from omnistock.stream.connection import Connection, Subscription
from omnistock.stream.fanout import Fanout

__all__ = ["Connection", "Refused", "Stream"]


class Refused(Exception):
    """A subscribe that cannot be accepted; the message is the client's error detail."""


class Stream:
    """The change-stream capability of one process."""

    def __init__(
        self,
        fanout: Fanout,
        settings: Settings,
        key_check_errors: tuple[type[BaseException], ...],
    ) -> None:
        self._fanout = fanout
        self.settings = settings
        self._key_check_errors = key_check_errors

    def refusal(self, who: Principal) -> tuple[int, str] | None:
        """The close code and reason when this process takes no more connections for ``who``."""
        return self._fanout.refusal(who)

    def connect(self, who: Principal, secret: str) -> Connection:
        """Register a new connection (its outbox, its place in the limits)."""
        return self._fanout.connect(who, secret)

    def disconnect(self, conn: Connection) -> None:
        """Forget the connection and its subscriptions."""
        self._fanout.disconnect(conn)

    def unsubscribe(self, conn: Connection, sub_id: str) -> bool:
        """Drop one subscription; False when the connection has none by that id."""
        return self._fanout.unsubscribe(conn, sub_id)

    async def subscribe(
        self,
        conn: Connection,
        sub_id: str,
        skus: list[str] | None,
        locations: list[str] | None,
        groups: list[str] | None,
        status_only: bool,
        since: str | None,
    ) -> None:
        """Subscribe within the limits (``Refused`` with the client's detail otherwise); a
        deleted key may not subscribe (its connection is closed instead)."""
        try:  # a deleted key may not subscribe (even before its revocation reached this process)
            if not await self._fanout.authorized(conn):
                return
        except self._key_check_errors:
            raise Refused("cannot check the API key now; retry") from None
        # No await from here until the subscription is counted: the limits hold exactly.
        decoded = self._accept(conn, sub_id, skus, locations, groups, since)
        sub = Subscription(conn, sub_id, skus, locations, groups, status_only)
        try:
            await self._fanout.subscribe(sub, decoded)
        except (RedisError, OSError) as exc:
            self._fanout.unsubscribe(conn, sub_id)
            raise Refused(f"the stream is unavailable: {exc}") from None

    def _accept(
        self,
        conn: Connection,
        sub_id: str,
        skus: list[str] | None,
        locations: list[str] | None,
        groups: list[str] | None,
        since: str | None,
    ) -> list[int] | None:
        """Check a subscribe against the connection's limits and the key's role; its decoded
        ``since``."""
        settings, fanout = self.settings, self._fanout
        if sub_id in conn.subs:
            raise Refused(f"subscription id {sub_id!r} is already in use on this connection")
        most = settings.ws_max_subscriptions
        if len(conn.subs) >= most:
            raise Refused(f"too many subscriptions: at most {most} per connection")
        entries = len(skus or ()) + len(locations or ()) + len(groups or ())
        most = settings.ws_max_filter_entries
        if entries > most:
            raise Refused(
                f"too many filter entries: {entries} skus, locations and groups; "
                f"at most {most} per subscription"
            )
        most = settings.ws_max_connection_filter_entries
        if conn.filter_entries + entries > most:
            raise Refused(
                f"too many filter entries: this connection holds {conn.filter_entries}, "
                f"{entries} more would pass the limit of {most} per connection"
            )
        most = settings.ws_max_key_filter_entries
        held = fanout.key_entries.get(conn.principal.id, 0)
        if held + entries > most:
            raise Refused(
                f"too many filter entries: this API key holds {held} on this server process, "
                f"{entries} more would pass the limit of {most}"
            )
        try:
            require_stream(conn.principal, not (skus or locations or groups))
        except Forbidden as exc:
            raise Refused(exc.detail) from None
        if since is None:
            return None
        try:
            return cursor.decode(since, fanout.partitions)
        except cursor.CursorError as exc:
            raise Refused(f"since: {exc}") from None
