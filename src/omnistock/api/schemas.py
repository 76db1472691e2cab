"""Request bodies (msgspec Structs): the constraints here are the contract's, checked on decode."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import HeaderParameter, PathParameter, QueryParameter
from msgspec import UNSET, Meta, UnsetType

from omnistock.domain.ids import IDENTIFIER_PATTERN, TEXT_PATTERN
from omnistock.domain.locations import DEFAULT_PRIORITY, MAX_PRIORITY, LocationKind
from omnistock.domain.reservations import MAX_LINE_QTY, Channel
from omnistock.domain.roles import Role
from omnistock.domain.stock import (
    MAX_MOVE_QTY,
    MAX_QUANTITY,
    AdjustmentReason,
    MoveReason,
    StockState,
)
from omnistock.domain.supply import DATE_TIME_PATTERN

Identifier = Annotated[
    str, Meta(pattern=IDENTIFIER_PATTERN, description="1-128 characters of A-Z a-z 0-9 . _ : -")
]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=TEXT_PATTERN)]
Ref = Annotated[str, Meta(max_length=256, pattern=TEXT_PATTERN)]
Quantity = Annotated[int, Meta(ge=0, le=MAX_QUANTITY)]
Ttl = Annotated[int, Meta(ge=1, le=604_800)]


class KeyCreate(msgspec.Struct, kw_only=True):
    name: Name
    role: Role
    locations: list[Identifier] = msgspec.field(default_factory=list)


# A store key needs the locations it may write at (checked by the handler, stated here).
KeyCreateBody = Annotated[
    KeyCreate,
    Meta(
        extra_json_schema={
            "if": {"properties": {"role": {"const": "store"}}},
            "then": {"required": ["locations"], "properties": {"locations": {"minItems": 1}}},
        }
    ),
]


class ChannelSafetyStock(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Units of every sku a channel may not take at a location (the reservation channels only)."""

    web: Quantity | UnsetType = UNSET
    app: Quantity | UnsetType = UNSET
    kiosk: Quantity | UnsetType = UNSET
    store: Quantity | UnsetType = UNSET
    marketplace: Quantity | UnsetType = UNSET

    def as_dict(self) -> dict[str, int]:
        """The fences that were given, {channel: units}."""
        return {
            name: value
            for name in self.__struct_fields__
            if not isinstance(value := getattr(self, name), UnsetType)
        }


class LocationPut(msgspec.Struct, kw_only=True):
    name: Name
    kind: LocationKind
    lat: Annotated[float, Meta(ge=-90, le=90)] | None = None
    lon: Annotated[float, Meta(ge=-180, le=180)] | None = None
    pickup: bool | None = None
    ship_from: bool | None = None
    groups: Annotated[list[Identifier], Meta(max_length=100)] = msgspec.field(default_factory=list)
    safety_stock: Quantity = 0
    limited_threshold: Quantity = 2
    priority: Annotated[int, Meta(ge=0, le=MAX_PRIORITY)] = DEFAULT_PRIORITY
    channel_safety_stock: Annotated[
        ChannelSafetyStock, Meta(extra_json_schema={"additionalProperties": False})
    ] = msgspec.field(default_factory=ChannelSafetyStock)
    timezone: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=64,
                pattern=r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*(?!\n)$",
                description="an IANA time zone name (one the server's tz database knows)",
            ),
        ]
        | None
    ) = None


# lat and lon go together (checked by the handler, stated here): both numbers or neither.
LocationPutBody = Annotated[
    LocationPut,
    Meta(
        extra_json_schema={
            "anyOf": [
                {
                    "required": ["lat", "lon"],
                    "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                },
                {"properties": {"lat": {"type": "null"}, "lon": {"type": "null"}}},
            ]
        }
    ),
]


class StockPut(msgspec.Struct, kw_only=True):
    on_hand: Quantity
    # Absent: keep the position's own safety stock; null: drop it (use the location's).
    safety_stock: Quantity | UnsetType | None = UNSET
    reason: Literal["count", "correction"] = "count"
    ref: Ref | None = None


class AdjustmentIn(msgspec.Struct, kw_only=True):
    sku: Identifier
    location: Identifier
    delta: Annotated[
        int,
        Meta(ge=-(10**9), le=10**9, description="not 0", extra_json_schema={"not": {"const": 0}}),
    ]
    reason: AdjustmentReason
    ref: Ref | None = None
    # unsellable: on_hand and unsellable change together (a return in bad condition, a write-off)
    state: StockState = "sellable"


class AdjustmentsIn(msgspec.Struct, kw_only=True):
    adjustments: Annotated[list[AdjustmentIn], Meta(min_length=1, max_length=1000)]


class MoveIn(msgspec.Struct, kw_only=True):
    sku: Identifier
    location: Identifier
    qty: Annotated[int, Meta(ge=1, le=MAX_MOVE_QTY)]
    to: StockState
    reason: MoveReason
    ref: Ref | None = None


class MovesIn(msgspec.Struct, kw_only=True):
    moves: Annotated[list[MoveIn], Meta(min_length=1, max_length=1000)]


class AvailabilityQuery(msgspec.Struct, kw_only=True):
    skus: Annotated[list[Identifier], Meta(min_length=1, max_length=500)]
    locations: Annotated[list[Identifier], Meta(min_length=1, max_length=500)]
    # With a channel, each cell is what that channel may take (less the location's fence).
    channel: Channel | None = None
    # With by, each cell also has what is due by then, as GET /v1/availability/{sku}?by= (the
    # board reads a location's due dates in one call).
    by: (
        Annotated[
            str,
            Meta(
                pattern=DATE_TIME_PATTERN,
                description="RFC 3339 date-time (years 2000-2099): each cell also has incoming_by "
                "and available_by, and while incoming_by > 0 next_eta and next_incoming",
            ),
        ]
        | None
    ) = None


class LineIn(msgspec.Struct, kw_only=True):
    sku: Identifier
    qty: Annotated[int, Meta(ge=1, le=MAX_LINE_QTY)]


Lines = Annotated[list[LineIn], Meta(min_length=1, max_length=100)]


class ReservationCreate(msgspec.Struct, kw_only=True):
    location: Identifier
    lines: Lines
    ttl_seconds: Ttl | None = None
    channel: Channel | None = None
    ref: Ref | None = None
    allow_partial: bool = False


class CommitIn(msgspec.Struct, kw_only=True):
    lines: Lines | None = None


class ExtendIn(msgspec.Struct, kw_only=True):
    ttl_seconds: Ttl


# Parameters (checked by Litestar from these annotations: a bad one is a 422 naming it; the
# same annotations are the OpenAPI document's).
LocationPath = Annotated[str, PathParameter(pattern=IDENTIFIER_PATTERN, description="location id")]
SkuPath = Annotated[str, PathParameter(pattern=IDENTIFIER_PATTERN, description="sku")]
IdentifierQuery = Annotated[str | None, QueryParameter(pattern=IDENTIFIER_PATTERN)]
IdentifierListQuery = Annotated[
    list[str] | None,
    QueryParameter(
        description="repeatable",
        schema_extra={"items": Schema(type=OpenAPIType.STRING, pattern=IDENTIFIER_PATTERN)},
    ),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="same key + same body within 24 h replays the first answer; "
        "same key + another body: 422",
    ),
]


def digits_at_most(bound: int) -> str:
    """A pattern of the decimal strings of 1 to len(str(bound)) digits (leading zeros allowed)
    whose value is at most ``bound``."""
    top = str(bound)
    same_length = [
        f"{top[:i]}[0-{int(d) - 1}][0-9]{{{len(top) - i - 1}}}"
        for i, d in enumerate(top)
        if d != "0"
    ]
    return f"^([0-9]{{1,{len(top) - 1}}}|{'|'.join([*same_length, top])})(?!\\n)$"


# Degrees as plain decimals, latitude within ±90 and longitude within ±180.
_LAT = r"[-+]?(90(\.0+)?|[1-8]?[0-9](\.[0-9]+)?)"
_LON = r"[-+]?(180(\.0+)?|(1[0-7][0-9]|[1-9]?[0-9])(\.[0-9]+)?)"
NEAR_PATTERN = f"^{_LAT},{_LON}(?!\\n)$"
