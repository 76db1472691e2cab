"""Every Redis key name omnistock uses, and nothing else builds one.

Keys of a location (positions, its sku index, its meta), reservations and idempotency records of
that location's partition, and the partition's event stream and expiry set all share the hash
tag ``{p<N>}``, so one Lua script can touch them atomically, also on Redis Cluster. ``/`` is not
allowed in identifiers, so it separates a location from a sku without ambiguity.
"""

from __future__ import annotations

PREFIX = "os"
INVALIDATE_CHANNEL = f"{PREFIX}:invalidate"
META = f"{PREFIX}:meta"
PERSISTER_GROUP = "persister"


def invalidation_ack(nonce: str) -> str:
    """A list every instance pushes to once it has applied invalidation ``nonce``."""
    return f"{INVALIDATE_CHANNEL}:ack:{nonce}"


def position(partition: int, location: str, sku: str) -> str:
    return f"{PREFIX}:{{p{partition}}}:pos:{location}/{sku}"


def sku_index(partition: int, location: str) -> str:
    """Set of the skus that have a position at ``location``."""
    return f"{PREFIX}:{{p{partition}}}:skus:{location}"


SKU_INDEX_PATTERN = f"{PREFIX}:{{p*}}:skus:*"


def location_of_sku_index(key: str) -> str:
    """The location a sku index key belongs to (inverse of :func:`sku_index`)."""
    return key.split(":skus:", 1)[1]


def location_meta(partition: int, location: str) -> str:
    """Hash ``ss`` (safety stock), ``lt`` (limited threshold): what the scripts need of a location."""
    return f"{PREFIX}:{{p{partition}}}:loc:{location}"


def reservation(partition: int, reservation_id: str) -> str:
    return f"{PREFIX}:{{p{partition}}}:res:{reservation_id}"


def expiries(partition: int) -> str:
    """Sorted set of active reservation ids scored by ``expires_at`` (ms)."""
    return f"{PREFIX}:{{p{partition}}}:exp"


def stream(partition: int) -> str:
    """The partition's event stream: the outbox feeding Postgres and subscribers."""
    return f"{PREFIX}:{{p{partition}}}:ev"


def stream_aside(partition: int) -> str:
    """Where a rebuild sets a partition's stream while it reloads (see sync/rebuild.py)."""
    return f"{PREFIX}:{{p{partition}}}:ev:aside"


def idempotency_record(partition: int, digest: str) -> str:
    """The reply recorded by the script that acted (same partition as its effect)."""
    return f"{PREFIX}:{{p{partition}}}:idem:{digest}"


def idempotency_claim(digest: str) -> str:
    """Which request body a key was first used with, whatever partition it acted on."""
    return f"{PREFIX}:idem:{{{digest}}}"


def wait_mark(partition: int) -> str:
    """Written by wait_mark.lua so that a WAIT on the writing connection covers everything the
    partition's primary had before (OMNISTOCK_REDIS_WAIT_REPLICAS, a replayed reply)."""
    return f"{PREFIX}:{{p{partition}}}:waitmark"


def unused_idempotency_record(partition: int) -> str:
    """A same-slot placeholder passed when a request carries no Idempotency-Key."""
    return f"{PREFIX}:{{p{partition}}}:idem:-"


def sourcing_hold(partition: int, hold_id: str) -> str:
    """Hash ``doc`` (the operation document JSON, domain/sourcing_holds.py), ``st`` (its status):
    a cross-partition sourcing hold's record, in the partition its id names."""
    return f"{PREFIX}:{{p{partition}}}:src:{hold_id}"


def sourcing_pending(partition: int) -> str:
    """Sorted set of the partition's unfinished sourcing holds scored by their lease's end (ms):
    the courier finishes or undoes those whose lease has passed."""
    return f"{PREFIX}:{{p{partition}}}:srcq"


def sourcing_void(partition: int, reservation_id: str) -> str:
    """Marks a sourcing part's reservation id as undone before it was held, so a late hold of
    that part does nothing (same partition as the reservation)."""
    return f"{PREFIX}:{{p{partition}}}:void:{reservation_id}"


def supply(partition: int, supply_id: str) -> str:
    """Hash ``doc`` (the supply document JSON, domain/supply.py), ``st`` (its status), in the
    partition of the supply's location (which its id names)."""
    return f"{PREFIX}:{{p{partition}}}:sup:{supply_id}"


def supply_open(partition: int) -> str:
    """Set of the partition's open supply ids (open or partially received)."""
    return f"{PREFIX}:{{p{partition}}}:supq"


def incoming_schedule(partition: int, location: str, sku: str) -> str:
    """Sorted set of a position's incoming units by ETA (ms): members ``<kind>:<id>:<units>``
    (``y`` supply; transfers add theirs), so units due by a date are one ZRANGEBYSCORE."""
    return f"{PREFIX}:{{p{partition}}}:inc:{location}/{sku}"


INCOMING_SCHEDULE_PATTERN = f"{PREFIX}:{{p*}}:inc:*"
SUPPLY_PATTERN = f"{PREFIX}:{{p*}}:sup:*"


# Worker processes' loop health (redis/workers.py): one small hash per worker, with a TTL, and an
# index of worker ids by last report time. One hash tag, so a report is one transaction on Redis
# Cluster as well.
WORKERS = f"{PREFIX}:{{workers}}:index"


def worker_report(worker_id: str) -> str:
    """What worker ``worker_id`` last reported: alive at, failing loops, restart counts."""
    return f"{PREFIX}:{{workers}}:w:{worker_id}"


def rate_limit(principal_id: str) -> str:
    """An API key's rate-limit state (its GCRA time); the key id is the hash tag, so keys spread
    over a cluster's slots and the script touches one slot."""
    return f"{PREFIX}:rl:{{{principal_id}}}"


# Transfers (domain/transfers.py): the record in the partition of `from` (its id names it), the
# shadow in the partition of `to`, keyed by the same id.
def transfer(partition: int, transfer_id: str) -> str:
    """Hash ``doc`` (the transfer record JSON), ``st`` (its status): the ``from`` side."""
    return f"{PREFIX}:{{p{partition}}}:tr:{transfer_id}"


def transfer_shadow(partition: int, transfer_id: str) -> str:
    """Hash ``doc`` (the shadow JSON: received counts), ``st``: the ``to`` side of a transfer."""
    return f"{PREFIX}:{{p{partition}}}:trto:{transfer_id}"


def transfer_pending(partition: int) -> str:
    """Sorted set of the partition's transfer records whose ``to`` side is not settled (arrival
    or cancel under way), scored by their lease's end (ms): the courier finishes them."""
    return f"{PREFIX}:{{p{partition}}}:trq"


TRANSFER_PATTERN = f"{PREFIX}:{{p*}}:tr:*"
TRANSFER_SHADOW_PATTERN = f"{PREFIX}:{{p*}}:trto:*"
