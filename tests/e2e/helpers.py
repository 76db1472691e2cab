"""Helpers shared by the e2e tests: snapshots of observable state, reservations, partitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from omnistock.domain.ids import partition_of

PARTITIONS = 64  # the apps' default


async def snapshot(
    admin: httpx.AsyncClient,
    positions: Sequence[tuple[str, str]] = (),
    reservations: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything a refused request must leave alone: the named positions and reservations, every
    location and every API key."""
    out: dict[str, Any] = {}
    for loc, sku in positions:
        resp = await admin.get(f"/v1/stock/{loc}/{sku}")
        out[f"pos {loc}/{sku}"] = (resp.status_code, resp.json())
    for rid in reservations:
        resp = await admin.get(f"/v1/reservations/{rid}")
        out[f"res {rid}"] = (resp.status_code, resp.json())
    out["locations"] = (await admin.get("/v1/locations")).json()
    out["keys"] = (await admin.get("/v1/keys")).json()
    return out


async def reserve(
    client: httpx.AsyncClient, loc: str, headers: dict[str, str] | None = None, **lines: int
) -> dict[str, Any]:
    """Reserve ``lines`` (sku=qty) at ``loc``; asserts the 201 and returns the reservation."""
    body = {"location": loc, "lines": [{"sku": s, "qty": q} for s, q in lines.items()]}
    resp = await client.post("/v1/reservations", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def position(client: httpx.AsyncClient, loc: str, sku: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/stock/{loc}/{sku}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def spread_ids(prefix: str, count: int) -> list[str]:
    """``count`` location ids starting with ``prefix`` that fall in distinct partitions."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < count:
        candidate = f"{prefix}-{n}"
        found.setdefault(partition_of(candidate, PARTITIONS), candidate)
        n += 1
    return list(found.values())


def is_problem(resp: httpx.Response) -> bool:
    """An RFC 9457 body: problem+json with the four members and the response's status."""
    if not resp.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    body = resp.json()
    return {"type", "title", "status", "detail"} <= body.keys() and body["status"] == (
        resp.status_code
    )
