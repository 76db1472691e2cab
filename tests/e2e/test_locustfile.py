"""loadtests/locustfile.py runs headless against a real app (as a subprocess: locust brings gevent),
sets itself up from the API, drives every kind of traffic and sees no failure."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import ADMIN_KEY, AppServer, put_location, stock

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"
EXPECTED = {
    "POST /v1/availability (listing)",
    "GET /v1/availability/[sku]?near",
    "GET /v1/stock/[loc]/[sku]",
    "POST /v1/reservations",
    "POST /v1/adjustments (sale)",
    "WS subscribe",
}


async def test_locustfile_runs_the_mix_without_failures(
    app: AppServer, admin: httpx.AsyncClient, uid: str, tmp_path: Path
) -> None:
    # A small retailer of its own (a group), so the run stays within this test's data.
    places = {f"{uid}-store-a": (41.88, -87.63), f"{uid}-store-b": (41.90, -87.65)}
    for loc, (lat, lon) in places.items():
        await put_location(admin, loc, lat=lat, lon=lon, groups=[uid])
    await put_location(admin, f"{uid}-wh", kind="warehouse", lat=41.5, lon=-88.1, groups=[uid])
    for loc in [*places, f"{uid}-wh"]:
        await stock(admin, loc, **{f"{uid}-SKU-{n:02d}": 500 for n in range(30)})
    keys_before = (await admin.get("/v1/keys")).json()["items"]

    env = {
        **os.environ,
        "OMNISTOCK_BENCH_KEY": ADMIN_KEY,
        "OMNISTOCK_LOAD_GROUP": uid,
        "OMNISTOCK_LOAD_CART_TTL": "4",
    }
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"),
        *("-u", "50", "-r", "50", "-t", "6s", "--host", app.url),
        *("--csv", str(tmp_path / "run"), "--html", str(tmp_path / "report.html")),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text

    stats = csv.DictReader((tmp_path / "run_stats.csv").read_text().splitlines())
    rows = {row["Name"]: row for row in stats}
    total = rows.pop("Aggregated")
    assert int(total["Request Count"]) > 50, text
    assert int(total["Failure Count"]) == 0, text
    assert rows.keys() >= EXPECTED, sorted(rows)
    assert "omnistock outcomes:" in text
    assert (tmp_path / "report.html").stat().st_size > 0
    # It deleted the keys it made for itself.
    assert (await admin.get("/v1/keys")).json()["items"] == keys_before
