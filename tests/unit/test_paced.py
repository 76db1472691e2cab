"""The paced load generator against a toy HTTP server on 127.0.0.1: requests leave on schedule,
and the ones that fall due while the server stalls are counted from when they were due (no
coordinated omission), so one stall costs many slow requests, not one."""

from __future__ import annotations

import asyncio

from loadtests.paced import Paced, parse

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _server(stall_at: int, stall: float) -> tuple[asyncio.Server, list[int]]:
    seen = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                seen[0] += 1
                if seen[0] == stall_at:
                    await asyncio.sleep(stall)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), seen


async def test_a_stall_delays_every_request_due_during_it() -> None:
    server, seen = await _server(stall_at=20, stall=0.3)
    port = server.sockets[0].getsockname()[1]
    argv = ["--url", f"http://127.0.0.1:{port}", "--rate", "200", "--seconds", "1"]
    paced = Paced(parse([*argv, "--connections", "1", "--path", "/x"]))
    async with server:
        result = await paced.run()
    assert seen[0] == 200 and result["requests"] == 200 and result["statuses"] == {"200": 200}
    # 0.3 s at 200/s: about 60 requests fall due during the stall; a closed-loop count of the
    # latency from the send would have seen one slow request.
    slow = [x for x in paced.latencies if x >= 0.1]
    assert 30 <= len(slow) <= 80
    assert 0.25 <= max(paced.latencies) < 1.0
    assert float(str(result["p99_ms"])) >= 200


async def test_without_a_stall_requests_leave_on_schedule() -> None:
    server, _ = await _server(stall_at=0, stall=0)
    port = server.sockets[0].getsockname()[1]
    argv = ["--url", f"http://127.0.0.1:{port}", "--rate", "200", "--seconds", "1"]
    paced = Paced(parse([*argv, "--connections", "4"]))
    async with server:
        result = await paced.run()
    assert result["requests"] == 200 and result["errors"] == 0
    assert 150 <= float(str(result["rps"])) <= 220  # the schedule, not as fast as possible
    assert sorted(paced.latencies)[100] < 0.05
