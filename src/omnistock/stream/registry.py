"""The connections of one process: the limits on them (per process, per API key), the filter
entries each key's subscriptions hold, and the revocation of a deleted key's connections (closed
with 4401 on every instance, told by the invalidation channel)."""

from __future__ import annotations

import asyncio
import itertools
import logging

from omnistock.domain.ports import KeyLookup
from omnistock.domain.roles import Principal
from omnistock.settings import Settings
from omnistock.stream.connection import Connection
from omnistock.stream.index import SubscriptionIndex

log = logging.getLogger("omnistock.stream")

_GOLDEN = 0.6180339887498949  # spaces the connections' heartbeat phases evenly, in any number

REVOKED = 4401  # close code: the connection's API key was deleted (API.md, "Roles (additions)")
TOO_MANY_FOR_KEY = 4429  # close code: the API key has its maximum of connections here
TRY_AGAIN_LATER = 1013  # close code (RFC 6455): this process has its maximum of connections


class ConnectionRegistry:
    """The clients of one process's fan-out."""

    def __init__(
        self,
        settings: Settings,
        index: SubscriptionIndex,
        api_keys: KeyLookup | None,
        lookup_errors: tuple[type[BaseException], ...],
    ) -> None:
        self._api_keys = api_keys
        self._lookup_errors = lookup_errors  # what a key look-up may raise
        self._max_connections = settings.ws_max_connections
        self._max_per_key = settings.ws_max_connections_per_key
        self._heartbeat = settings.heartbeat_seconds
        self._outbox_limit = settings.ws_outbox_limit
        self._index = index
        self.connections: set[Connection] = set()
        self.by_key: dict[str, set[Connection]] = {}  # API key id -> its connections here
        self.key_entries: dict[str, int] = {}  # API key id -> filter entries its subs hold
        self._rechecks: set[asyncio.Task[None]] = set()
        self._joined = itertools.count()

    def refusal(self, principal: Principal) -> tuple[int, str] | None:
        """The close code and reason for a new connection of ``principal`` past the limits of
        this process (connections in all, connections of its key); None when it may stay."""
        if len(self.connections) >= self._max_connections:
            return TRY_AGAIN_LATER, (
                f"too many connections: at most {self._max_connections} per server process"
            )
        if len(self.by_key.get(principal.id, ())) >= self._max_per_key:
            return TOO_MANY_FOR_KEY, (
                f"too many connections: at most {self._max_per_key} per API key and process"
            )
        return None

    def connect(self, principal: Principal, secret: str = "") -> Connection:
        """A new client. Each connection beats at its own phase of the heartbeat interval (the
        first heartbeat comes early, never late): clients that connected together (a restart,
        a deploy, a benchmark) would otherwise all be due in the same tick for as long as they
        stay, and a thousand heartbeats sent at once hold the loop for 100 ms or more, in
        front of every change."""
        now = asyncio.get_running_loop().time()
        conn = Connection(principal, self._outbox_limit, now, secret)
        conn.last_heartbeat = now - (next(self._joined) * _GOLDEN % 1.0) * self._heartbeat
        self.connections.add(conn)
        self.by_key.setdefault(principal.id, set()).add(conn)
        return conn

    def disconnect(self, conn: Connection) -> None:
        self.connections.discard(conn)
        of_key = self.by_key.get(conn.principal.id)
        if of_key is not None:
            of_key.discard(conn)
            if not of_key:
                del self.by_key[conn.principal.id]
        for task in conn.tasks.values():
            task.cancel()
        for sub in conn.subs.values():
            self._index.remove(sub)
            self.hold(conn, -sub.entries)
        conn.subs.clear()
        conn.catching_up.clear()
        conn.kill("disconnected")

    # -- revocation -----------------------------------------------------------------------------

    def revoke(self, key_id: str) -> int:
        """Close every connection of the deleted key ``key_id`` (code 4401); how many."""
        conns = list(self.by_key.get(key_id, ()))
        for conn in conns:
            conn.kill("API key deleted", REVOKED)
        return len(conns)

    def keys_changed(self, key_id: str | None) -> None:
        """Told by the invalidation channel (``usecases.caches.follow_invalidations``):
        ``key_id`` was deleted, or (None) any key may have been, so every connected key is
        checked again."""
        if key_id is not None:
            if self.revoke(key_id):
                log.info("closed the streams of deleted API key %s", key_id)
            return
        if self.connections and self._api_keys is not None:
            task = asyncio.get_running_loop().create_task(self._recheck_all())
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)

    async def authorized(self, conn: Connection) -> bool:
        """Whether ``conn``'s API key still exists (the key cache, Postgres after a change);
        when it does not, the connection is closed with 4401. Database errors propagate."""
        if self._api_keys is None or not conn.secret:
            return True
        if await self._api_keys.principal(conn.secret) is not None:
            return True
        conn.kill("API key deleted", REVOKED)
        return False

    async def _recheck_all(self) -> None:
        one_per_key: dict[str, Connection] = {}
        for conn in list(self.connections):
            one_per_key.setdefault(conn.secret, conn)
        try:
            for conn in one_per_key.values():
                if not await self.authorized(conn):
                    self.revoke(conn.principal.id)
        except self._lookup_errors as exc:  # subscribe checks again; the next gap too
            log.warning("cannot re-check the API keys of open streams (%s)", exc)

    def hold(self, conn: Connection, entries: int) -> None:
        """Count filter entries taken (or given back) by a subscription of ``conn``."""
        conn.filter_entries += entries
        key = conn.principal.id
        held = self.key_entries.get(key, 0) + entries
        if held:
            self.key_entries[key] = held
        else:
            self.key_entries.pop(key, None)
