"""The ``redis+cluster://`` URL (settings validate it; redis/cluster.py and redis/client.py
connect with it)."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote, unquote

SCHEMES = ("redis+cluster", "rediss+cluster")


class ClusterURL(NamedTuple):
    """A parsed ``redis+cluster://[user:password@]host:port[,host:port...]``."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    tls: bool

    def node_url(self, host: str, port: int) -> str:
        """A standalone URL for one node (what a per-node connection opens)."""
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.password is not None:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        return f"{scheme}://{auth}{host_part(host)}:{port}/0"


def host_part(host: str) -> str:
    """``host`` as it stands before ``:port`` (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


def is_cluster_url(url: str | None) -> bool:
    """True when ``url`` selects Redis Cluster."""
    return url is not None and url.split("://", 1)[0].lower() in SCHEMES


def parse_cluster_url(url: str) -> ClusterURL:
    """Parse a cluster URL; ValueError says what is wrong with it."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError("a cluster URL starts with redis+cluster:// or rediss+cluster://")
    netloc, _, path = rest.partition("/")
    netloc = netloc.split("?", 1)[0]
    if path.split("?", 1)[0] not in ("", "0"):
        raise ValueError("Redis Cluster has only database 0")
    username = password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
        if not colon:  # ``redis://secret@host`` means a password, as redis-py reads it
            username, password = None, unquote(user)
    nodes: list[tuple[str, int]] = []
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            raise ValueError("an empty host in the node list")
        if part.startswith("["):
            host, _, tail = part[1:].partition("]")
            port_text = tail[1:] if tail.startswith(":") else ""
        else:
            host, _, port_text = part.partition(":")
        if not host:
            raise ValueError(f"no host in {part!r}")
        try:
            port = int(port_text) if port_text else 6379
        except ValueError:
            raise ValueError(f"port of {part!r} is not a number") from None
        if not 1 <= port <= 65535:
            raise ValueError(f"port of {part!r} is out of range")
        nodes.append((host, port))
    return ClusterURL(tuple(nodes), username, password, scheme.lower() == "rediss+cluster")
