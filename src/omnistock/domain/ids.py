"""Identifiers, partitions and reservation ids."""

from __future__ import annotations

import base64
import re
import secrets
import zlib

from omnistock.domain.errors import NotFound, ValidationFailed

# Python's `$` also matches before a final newline (ECMA's does not): `(?!\n)` makes both
# engines, msgspec's and the OpenAPI document's readers, agree on the same strings.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:-]{1,128}(?!\n)$"
# Free text (names, refs) goes to Postgres, which refuses NUL, and into logs: no control characters.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*(?!\n)$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_RESERVATION_ID = re.compile(r"r([0-9]{1,5})-([a-z2-7]{20})")
_SOURCING_ID = re.compile(r"s([0-9]{1,5})-([a-z2-7]{20})")
_SUPPLY_ID = re.compile(r"y([0-9]{1,5})-([a-z2-7]{20})")
SUPPLY_ID_PATTERN = r"^y[0-9]{1,5}-[a-z2-7]{20}(?!\n)$"


def is_identifier(value: str) -> bool:
    """True when ``value`` is 1-128 chars of ``[A-Za-z0-9._:-]``."""
    return _IDENTIFIER.match(value) is not None


def check_identifier(field: str, value: str) -> str:
    """Return ``value`` or raise 422 naming ``field``."""
    if _IDENTIFIER.match(value) is None:
        raise ValidationFailed(field, "must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return value


def partition_of(location_id: str, partitions: int) -> int:
    """The partition a location belongs to: ``crc32(location_id) % P``."""
    return zlib.crc32(location_id.encode()) % partitions


def _token() -> str:
    return base64.b32encode(secrets.token_bytes(15)).decode().lower()[:20]


def new_reservation_id(partition: int) -> str:
    """A random reservation id that names its partition, so no lookup is needed to find it."""
    return f"r{partition}-{_token()}"


def new_sourcing_id(partition: int) -> str:
    """A random sourcing hold id that names the partition of its record."""
    return f"s{partition}-{_token()}"


def sourcing_partition(hold_id: str, partitions: int) -> int:
    """The partition encoded in a sourcing hold id; 404 for anything that is not one of ours."""
    match = _SOURCING_ID.fullmatch(hold_id)
    if match is None or int(match.group(1)) >= partitions:
        raise NotFound(f"sourcing reservation {hold_id!r} not found")
    return int(match.group(1))


def reservation_partition(reservation_id: str, partitions: int) -> int:
    """The partition encoded in a reservation id; 404 for anything that is not one of ours."""
    match = _RESERVATION_ID.fullmatch(reservation_id)
    if match is None or int(match.group(1)) >= partitions:
        raise NotFound(f"reservation {reservation_id!r} not found")
    return int(match.group(1))


def new_supply_id(partition: int) -> str:
    """A random supply id that names the partition of its location."""
    return f"y{partition}-{_token()}"


def supply_partition(supply_id: str, partitions: int) -> int:
    """The partition encoded in a supply id; 404 for anything that is not one of ours."""
    match = _SUPPLY_ID.fullmatch(supply_id)
    if match is None or int(match.group(1)) >= partitions:
        raise NotFound(f"supply {supply_id!r} not found")
    return int(match.group(1))


_TRANSFER_ID = re.compile(r"t([0-9]{1,5})-([a-z2-7]{20})")
TRANSFER_ID_PATTERN = r"^t[0-9]{1,5}-[a-z2-7]{20}(?!\n)$"


def new_transfer_id(partition: int) -> str:
    """A random transfer id that names the partition of its record (its ``from`` location's)."""
    return f"t{partition}-{_token()}"


def transfer_partition(transfer_id: str, partitions: int) -> int:
    """The partition encoded in a transfer id; 404 for anything that is not one of ours."""
    match = _TRANSFER_ID.fullmatch(transfer_id)
    if match is None or int(match.group(1)) >= partitions:
        raise NotFound(f"transfer {transfer_id!r} not found")
    return int(match.group(1))
