"""Loading the Lua scripts (one atomic operation each) and mapping their return codes to errors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, NamedTuple

import msgspec
from redis.exceptions import ResponseError

from omnistock.domain.clock import rfc3339
from omnistock.domain.errors import (
    Conflict,
    DomainError,
    IdempotencyMismatch,
    NotActive,
    NotFound,
    PreconditionFailed,
    RateLimited,
    Shortage,
    SupplyFinished,
    TransferConflict,
    Unavailable,
    ValidationFailed,
)
from omnistock.domain.reservations import MAX_LIFETIME_SECONDS, shortage
from omnistock.domain.stock import MAX_QUANTITY

OK, SHORTAGE, VERSION, NO_RESERVATION, NOT_ACTIVE = 0, 1, 2, 3, 4
IDEMPOTENCY, NO_LOCATION, BAD_COMMIT, STALE, NOT_DUE = 5, 6, 7, 8, 9
NOT_READY, QUANTITY = 10, 11
TOO_LONG = 20  # reservation limits
LIMITED = 30  # rate limits (ratelimit.lua; its reply has its own shape: redis/ratelimit.py)
VOID, HOLD_STATE, NO_HOLD = 40, 41, 42  # sourcing holds (redis/sourcing_holds.py)
NOT_ENOUGH, NO_SUPPLY, SUPPLY_DONE, NOT_IN_SUPPLY = 50, 51, 52, 53  # stock states, supply
NO_TRANSFER, TRANSFER_DONE, TRANSFER_STATE, NOT_IN_TRANSFER = 60, 61, 62, 63  # transfers

SCRIPT_NAMES = (
    "adjust",
    "set",
    "reserve",
    "commit",
    "release",
    "extend",
    "expire",
    "trim",
    "worker_report",
    "worker_withdraw",
    "sourcing_begin",
    "sourcing_hold",
    "sourcing_finish",
    "sourcing_abort",
    "sourcing_undo",
    "sourcing_replan",
    "sourcing_fail",
    "sourcing_claim",
    "sourcing_release",
    "moves",
    "supply_create",
    "supply_receive",
    "supply_reschedule",
    "supply_cancel",
    "transfer_create",
    "transfer_arrive",
    "transfer_confirm",
    "transfer_receive",
    "transfer_cancel",
    "transfer_withdraw",
    "transfer_cancelled",
    "transfer_claim",
    "wait_mark",  # OMNISTOCK_REDIS_WAIT_REPLICAS (redis/replicated.py)
)
# Functions of the library with replies of their own shape (not a Reply): called by their adapter.
EXTRA_FUNCTIONS = ("ratelimit",)

_decode_list = msgspec.json.Decoder(list[Any]).decode


class Reply(NamedTuple):
    """What a script answered: its code and payload, whether it replayed a recorded reply, and the
    ids of the first and last events it appended (empty when none)."""

    code: int
    payload: bytes
    replayed: bool
    first_id: bytes
    last_id: bytes


class Library:
    """The scripts as one Valkey/Redis function library: ``_lib.lua``'s helpers are defined once
    when the library loads instead of on every call (about 6 us of each EVALSHA), and each
    operation is a function called with FCALL. Names carry a hash of the code, so instances
    running different versions against one Redis each call their own."""

    def __init__(self, lib: str, bodies: dict[str, str]) -> None:
        self.lib, self.bodies = lib, bodies
        digest = hashlib.sha1(lib.encode())
        for name, body in bodies.items():
            digest.update(f"\0{name}\0{body}".encode())
        self.tag = digest.hexdigest()[:12]
        self.name = f"omnistock_{self.tag}"
        # Each body becomes a function whose parameters carry the names scripts use for them.
        functions = "".join(
            f"redis.register_function('{self.function(name)}', function(KEYS, ARGV)\n{body}\nend)\n"
            for name, body in bodies.items()
        )
        self.source = f"#!lua name={self.name}\n{lib}\n{functions}"

    def function(self, operation: str) -> str:
        """The library's function name for ``operation``."""
        return f"{operation}_{self.tag}"

    async def load(self, client: Any) -> None:
        """Load (or reload: same name, same code) the library into ``client``'s server."""
        await client.execute_command("FUNCTION", "LOAD", "REPLACE", self.source)


class Script:
    """One Lua operation, a function of the library; the library is loaded again if the server
    lost it (a restart without persistence, FUNCTION FLUSH)."""

    def __init__(self, name: str, library: Library) -> None:
        self.library = library
        self.function = library.function(name)

    async def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Reply:
        """Run on ``client`` (anything with redis-py's ``execute_command``)."""
        try:
            raw = await client.execute_command("FCALL", self.function, len(keys), *keys, *args)
        except ResponseError as exc:
            if "function not found" not in str(exc).lower():
                raise
            await self.library.load(client)
            raw = await client.execute_command("FCALL", self.function, len(keys), *keys, *args)
        return Reply(int(raw[0]), raw[1], raw[2] == 1, raw[3], raw[4])


class Scripts(msgspec.Struct, frozen=True):
    """All scripts, loaded from the package once per process."""

    library: Library
    adjust: Script
    set: Script
    reserve: Script
    commit: Script
    release: Script
    extend: Script
    expire: Script
    trim: Script
    worker_report: Script
    worker_withdraw: Script
    sourcing_begin: Script
    sourcing_hold: Script
    sourcing_finish: Script
    sourcing_abort: Script
    sourcing_undo: Script
    sourcing_replan: Script
    sourcing_fail: Script
    sourcing_claim: Script
    sourcing_release: Script
    moves: Script
    supply_create: Script
    supply_receive: Script
    supply_reschedule: Script
    supply_cancel: Script
    transfer_create: Script
    transfer_arrive: Script
    transfer_confirm: Script
    transfer_receive: Script
    transfer_cancel: Script
    transfer_withdraw: Script
    transfer_cancelled: Script
    transfer_claim: Script
    wait_mark: Script

    @classmethod
    def load(cls) -> Scripts:
        """Read ``lua/*.lua`` (one operation each) and ``_lib.lua`` (their shared helpers)."""
        folder = resources.files("omnistock.redis") / "lua"
        library = Library(
            (folder / "_lib.lua").read_text(),
            {
                name: (folder / f"{name}.lua").read_text()
                for name in (*SCRIPT_NAMES, *EXTRA_FUNCTIONS)
            },
        )
        return cls(library, *(Script(name, library) for name in SCRIPT_NAMES))


def _text(payload: bytes) -> str:
    return payload.decode()


def _version_mismatch(payload: bytes, subject: str) -> DomainError:
    location, sku, version = _decode_list(payload)
    return PreconditionFailed(
        f"position {location}/{sku} is at version {version}, not the one in If-Match",
        current_version=version,
    )


def _bad_commit(payload: bytes, subject: str) -> DomainError:
    sku, requested, held = _decode_list(payload)
    if held == 0:
        return ValidationFailed("lines", f"sku {sku!r} is not held by reservation {subject}")
    return ValidationFailed(
        "lines", f"cannot commit {requested} of sku {sku!r}: reservation {subject} holds {held}"
    )


def _too_long(payload: bytes, subject: str) -> DomainError:
    latest, left_ms = _decode_list(payload)
    return ValidationFailed(
        "ttl_seconds",
        f"would move expires_at past created_at + {MAX_LIFETIME_SECONDS // 86400} days "
        f"({rfc3339(int(latest))}): "
        f"reservation {subject} may be extended by at most {max(0, int(left_ms)) // 1000} "
        "seconds from now",
        latest_expires_at=rfc3339(int(latest)),
    )


def _quantity(payload: bytes, subject: str) -> DomainError:
    """A change whose result passes the cap: the field named within ``subject`` (the list the
    item came from, e.g. ``adjustments``; '' for a single item)."""
    index, field, value = _decode_list(payload)
    name = f"{subject}[{index}].{field}" if subject else field
    return ValidationFailed(
        name, f"would make a quantity of {value:.0f}; quantities are at most {MAX_QUANTITY:,}"
    )


def _not_enough(payload: bytes, subject: str) -> DomainError:
    """More units than a state holds: 409 naming the item (``subject`` is the list it came
    from) and the shortage, as a reservation's names its lines."""
    index, location, sku, state, requested, there = _decode_list(payload)
    return Shortage(
        f"{subject}[{index}]: cannot take {requested} of sku {sku!r} at {location!r} out of "
        f"{state}: there are {there}",
        shortages=[
            {"sku": sku, "location": location, "state": state, "requested": requested,
             "available": there}
        ],
        field=f"{subject}[{index}]",
    )  # fmt: skip


def _not_in_supply(payload: bytes, subject: str) -> DomainError:
    index, sku = _decode_list(payload)
    return ValidationFailed(f"lines[{index}].sku", f"sku {sku!r} is not a line of supply {subject}")


def _not_in_transfer(payload: bytes, subject: str) -> DomainError:
    index, sku = _decode_list(payload)
    return ValidationFailed(
        f"lines[{index}].sku", f"sku {sku!r} is not a line of transfer {subject}"
    )


def _transfer_conflict(payload: bytes, subject: str) -> DomainError:
    status = _text(payload)
    return TransferConflict(
        f"transfer {subject} is {status}: it cannot be received or cancelled so",
        transfer_status=status,
    )


# Return code -> the domain error it means; ``subject`` names what the call was about.
ERRORS: dict[int, Callable[[bytes, str], DomainError]] = {
    SHORTAGE: lambda p, s: shortage([tuple(x) for x in _decode_list(p)]),
    VERSION: _version_mismatch,
    NO_RESERVATION: lambda p, s: NotFound(f"reservation {s!r} not found"),
    NOT_ACTIVE: lambda p, s: NotActive(
        f"reservation {s} is {_text(p)}, no longer active", reservation_status=_text(p)
    ),
    IDEMPOTENCY: lambda p, s: IdempotencyMismatch(
        "this Idempotency-Key was first used with a different request; use a new key"
    ),
    NO_LOCATION: lambda p, s: NotFound(f"location {_text(p)!r} not found"),
    BAD_COMMIT: _bad_commit,
    STALE: lambda p, s: Conflict(f"reservation {s} changed while being read; retry"),
    TOO_LONG: _too_long,
    NOT_READY: lambda p, s: Unavailable(
        "the live store is empty or being rebuilt from Postgres; retry in a moment"
    ),
    QUANTITY: _quantity,
    LIMITED: lambda p, s: RateLimited(f"{s} is over its rate limit; retry later"),
    VOID: lambda p, s: Conflict(f"sourcing part {s} was undone before it was held"),
    HOLD_STATE: lambda p, s: Conflict(
        f"sourcing reservation {s} is {_text(p)}", sourcing_status=_text(p)
    ),
    NO_HOLD: lambda p, s: NotFound(f"sourcing reservation {s!r} not found"),
    NOT_ENOUGH: _not_enough,
    NO_SUPPLY: lambda p, s: NotFound(f"supply {s!r} not found"),
    SUPPLY_DONE: lambda p, s: SupplyFinished(
        f"supply {s} is {_text(p)}: nothing is outstanding", supply_status=_text(p)
    ),
    NOT_IN_SUPPLY: _not_in_supply,
    NO_TRANSFER: lambda p, s: NotFound(f"transfer {s!r} not found"),
    TRANSFER_DONE: _transfer_conflict,
    TRANSFER_STATE: _transfer_conflict,
    NOT_IN_TRANSFER: _not_in_transfer,
}


def check(reply: Reply, subject: str) -> Reply:
    """Return ``reply`` if it is OK, else raise the domain error its code stands for."""
    if reply.code != OK:
        error = ERRORS[reply.code](reply.payload, subject)
        error.replayed = reply.replayed
        raise error
    return reply
