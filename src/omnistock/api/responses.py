"""Response helpers shared by the controllers."""

from __future__ import annotations

from typing import TypeVar

from litestar import Response

from omnistock.api.errors import REPLAYED_HEADER

T = TypeVar("T")


def replayable(content: T, status: int, replayed: bool) -> Response[T]:
    """``content`` with ``Idempotent-Replayed: true`` when it is a recorded answer."""
    return Response(
        content, status_code=status, headers={REPLAYED_HEADER: "true"} if replayed else None
    )
