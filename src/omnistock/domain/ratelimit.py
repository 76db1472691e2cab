"""Rate-limit policies per role: the defaults, ``OMNISTOCK_RATE_LIMITS`` parsing, and the IETF
``RateLimit-Policy`` / ``RateLimit`` header values (draft-ietf-httpapi-ratelimit-headers-10,
structured fields).

A policy ``N/Ss`` is a GCRA (a token bucket measured in time): a key may spend all ``N`` requests
at once, and gets them back at a steady ``N`` per ``S`` seconds, so over any ``D`` seconds it is
accepted at most ``N + N * D / S`` times.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import msgspec

from omnistock.domain.roles import Role

MAX_REQUESTS = 10**9
MAX_SECONDS = 86_400
# An instance may take a few requests of a busy key's quota from Redis at once and count them
# down locally (see redis/ratelimit.py): at most 1% of the quota, at most what the key earns in
# 10 ms, at most LEASE_MAX; a key of a low rate is counted in Redis request by request.
LEASE_MAX = 100
LEASE_SECONDS = 0.1  # how long an instance may hold what it took (or a refusal) before asking again


class Decision(NamedTuple):
    """What the limiter said: whether the request passes, how many more would pass now, and
    microseconds until the bucket is full again and (when refused) until one would pass."""

    allowed: bool
    remaining: int
    reset_us: int
    retry_us: int


class Policy(msgspec.Struct, frozen=True):
    """``requests`` per ``seconds`` for every key of one role."""

    requests: int
    seconds: int

    @property
    def interval_us(self) -> int:
        """The GCRA emission interval: microseconds one request uses up (at least 1)."""
        return max(1, self.seconds * 1_000_000 // self.requests)

    @property
    def burst_us(self) -> int:
        """How far ahead of now the bucket may be spent: the whole window."""
        return self.seconds * 1_000_000

    @property
    def lease(self) -> int:
        """How many requests an instance takes from Redis at once (see ``LEASE_MAX``)."""
        return max(1, min(self.requests // 100, self.requests // (self.seconds * 100), LEASE_MAX))

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds}s"


# What a deployment wants when it says nothing: people and systems that run the business get
# room (bulk syncs, back-office tools), a storefront key serves a whole site's traffic, a store
# key its tills, and a feed key (a marketplace pulling exports) is kept modest.
DEFAULT_POLICIES: dict[Role, Policy] = {
    Role.ADMIN: Policy(10_000, 1),
    Role.INTEGRATION: Policy(10_000, 1),
    Role.STOREFRONT: Policy(2_000, 1),
    Role.STORE: Policy(1_000, 1),
    Role.FEED: Policy(100, 1),
}

OFF = "off"
_PAIR = re.compile(r"([a-z_]+)\s*=\s*([0-9]{1,10})/([0-9]{1,6})s")


def parse_policies(text: str) -> dict[Role, Policy] | None:
    """``role=N/Ss`` pairs, comma-separated, over the defaults; ``off`` disables limiting (None).

    Raises ValueError naming what is wrong: unknown role, a role twice, N outside 1..10^9, S
    outside 1..86400, anything else malformed."""
    policies = dict(DEFAULT_POLICIES)
    text = text.strip()
    if text.lower() == OFF:
        return None
    if not text:
        return policies
    seen: set[Role] = set()
    for item in text.split(","):
        pair = item.strip()
        match = _PAIR.fullmatch(pair)
        if match is None:
            raise ValueError(f"{pair!r} is not role=N/Ss (e.g. storefront=2000/1s)")
        name, requests, seconds = match.group(1), int(match.group(2)), int(match.group(3))
        try:
            role = Role(name)
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise ValueError(f"unknown role {name!r} in {pair!r}; roles: {roles}") from None
        if role in seen:
            raise ValueError(f"role {name!r} is given twice")
        if not 1 <= requests <= MAX_REQUESTS:
            raise ValueError(f"{pair!r}: N must be between 1 and {MAX_REQUESTS}")
        if not 1 <= seconds <= MAX_SECONDS:
            raise ValueError(f"{pair!r}: S must be between 1 and {MAX_SECONDS} seconds")
        seen.add(role)
        policies[role] = Policy(requests, seconds)
    return policies


def policy_header(role: Role, policy: Policy) -> str:
    """``RateLimit-Policy``: the quota ``q`` per window ``w`` (seconds), named after the role."""
    return f'"{role.value}";q={policy.requests};w={policy.seconds}'


def state_header(role: Role, remaining: int, reset_us: int) -> str:
    """``RateLimit``: ``r`` requests left now, ``t`` seconds until the quota is whole again."""
    if remaining < 0:
        remaining = 0
    seconds = -(-reset_us // 1_000_000) if reset_us > 0 else 0
    return f'"{role}";r={remaining};t={seconds}'


def retry_after_seconds(retry_us: int) -> int:
    """``Retry-After`` for a refused request: whole seconds until one would pass, at least 1."""
    return max(1, -(-retry_us // 1_000_000))
