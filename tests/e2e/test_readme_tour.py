"""The README's "A 2-minute tour", run for real: every command of it, in order, against a demo server
(``omnistock serve --demo`` on a free port with a data directory of its own, which is what
``./scripts/serve --demo`` runs), each outcome checked against what the README shows after ``# ->``.
The README cannot drift from the product without this failing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from omnistock.embedded import free_port
from tests.e2e.tour import (
    ANY,
    Arr,
    Obj,
    Step,
    Text,
    bound_ids,
    mismatch,
    parse_outcome,
    tour_blocks,
)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtual environment's bin/ (the README's .venv/bin/)
README_PORT = "localhost:8000"
START_SECONDS = 240.0  # embedded Postgres' initdb and the demo load, on a loaded machine
SETTLE_SECONDS = 15.0  # reads the README shows after a write (the ledger is written behind)


class DemoServer:
    """``omnistock serve --demo`` in a child process, as the tour's first block starts it."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}
        self.env["OMNISTOCK_DATA_DIR"] = str(data_dir)
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def start(self, args: list[str], wanted: re.Pattern[str]) -> re.Match[str]:
        """Start it with ``args`` and wait until a line of its output fits ``wanted`` and it
        answers /healthz."""
        self.proc = await asyncio.create_subprocess_exec(
            str(BIN / "omnistock"), "serve", *args, "--port", str(self.port),
            env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_SECONDS
        found: re.Match[str] | None = None
        while found is None:
            left = deadline - time.monotonic()
            assert left > 0, "demo server did not print its key in time:\n" + self.log()
            raw = await asyncio.wait_for(self.proc.stdout.readline(), left)
            assert raw, "demo server exited:\n" + self.log()
            self.lines.append(raw.decode(errors="replace").rstrip())
            found = wanted.search(self.lines[-1])
        self._drain = asyncio.create_task(self._keep_reading())
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as c:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get("/healthz")).status_code == 200:
                        return found
                assert time.monotonic() < deadline, "demo server never healthy:\n" + self.log()
                await asyncio.sleep(0.2)

    async def _keep_reading(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return "\n".join(self.lines[-40:])

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._drain is not None:
            await self._drain


class Tour:
    """Runs the tour's steps, keeping what later steps use (the key, ids, an open WebSocket)."""

    def __init__(self, server: DemoServer) -> None:
        self.server = server
        self.env = dict(server.env)
        self.ids: dict[str, str] = {}  # 'r38-...' -> the id it stands for
        self.ws: ClientConnection | None = None
        self.awaited: list[str] = []  # '< ' lines due once the next block has run
        self.ran: list[str] = []  # the kind of each step run
        self.printed_key = ""  # what the server printed as its admin key

    def substitute(self, command: str) -> str:
        """The README's command as it must run here: this server's port, the ids it made."""
        command = command.replace(README_PORT, f"127.0.0.1:{self.server.port}")
        for spelled, real in self.ids.items():
            command = command.replace(spelled, real)
        return command

    async def run(self, step: Step) -> None:
        words = shlex.split(step.command, comments=True)
        if words[0] == "./scripts/serve":
            await self.serve(step, words[1:])
        elif words[0] == "export":
            self.export(words[1:])
        elif words[0] == "curl":
            await self.curl(step)
        elif words[:3] == [".venv/bin/python", "-m", "websockets"]:
            await self.websocket(step, words[3])
        elif words[0] == ".venv/bin/omnistock":
            await self.cli(step, words[1:])
        else:
            raise AssertionError(f"the README tour has a command this test cannot run: {words}")

    async def serve(self, step: Step, args: list[str]) -> None:
        # ./scripts/serve prepares the environment, then runs `omnistock serve` with its arguments.
        script = (REPO / "scripts" / "serve").read_text().strip().splitlines()
        assert script[-1] == 'exec omnistock serve "$@"', script[-1]
        assert len(step.output) == 1, step.output
        printed = Text(step.output[0])
        wanted = re.compile(".*".join(re.escape(p) for p in printed.pattern.split("...")) + "$")
        line = (await self.server.start(args, wanted)).group(0)
        self.printed_key = line.rsplit(" ", 1)[-1]
        self.ran.append("serve")

    def export(self, args: list[str]) -> None:
        name, _, value = args[0].partition("=")
        assert Text(value).match(self.printed_key), (value, self.printed_key)
        self.env[name] = self.printed_key  # "the key printed above"
        self.ran.append("export")

    async def curl(self, step: Step) -> None:
        assert len(step.outcomes) == 1, f"no documented outcome for {step.command!r}"
        status, template = parse_outcome(step.outcomes[0])
        assert status is not None, step.outcomes[0]
        command = self.substitute(step.command).replace("curl ", "curl -w '\\n%{http_code}' ", 1)
        is_read = not re.search(r"\s(-X|-d|--data)\s", command)
        deadline = time.monotonic() + (SETTLE_SECONDS if is_read else 0)
        while True:
            proc = await asyncio.create_subprocess_exec(
                "bash", "-c", command, env=self.env, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await proc.communicate()
            assert proc.returncode == 0, (command, out)
            body, _, code = out.decode().rpartition("\n")
            actual = json.loads(body) if body else None
            wrong = (
                f"status {code}, documented {status}: {body[:300]}"
                if int(code) != status
                else mismatch(template, actual)
            )
            if wrong is None:
                break
            if time.monotonic() >= deadline:
                raise AssertionError(f"{step.command}\n  -> {wrong}\n  answered {body[:600]}")
            await asyncio.sleep(0.2)
        self.ids.update(bound_ids(template, actual))
        self.ran.append("curl")

    async def websocket(self, step: Step, url: str) -> None:
        for name, value in self.env.items():
            url = url.replace(f"${name}", value)
        self.ws = await connect(self.substitute(url))
        assert step.send and step.receive, "the WebSocket example shows no messages"
        for message in step.send:
            await self.ws.send(message)
        await self.expect_messages(step.receive[:1])
        self.awaited = step.receive[1:]  # what the next step makes happen
        self.ran.append("websocket")

    async def expect_messages(self, lines: list[str]) -> None:
        assert self.ws is not None
        for line in lines:
            _, template = parse_outcome(line)
            while True:
                got = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
                if got.get("type") != "heartbeat":
                    break
            wrong = mismatch(template, got)
            assert wrong is None, f"WebSocket: {line}\n  -> {wrong}\n  got {got}"

    async def cli(self, step: Step, args: list[str]) -> None:
        assert len(step.outcomes) == 1, f"no documented outcome for {step.command!r}"
        _, template = parse_outcome(step.outcomes[0])
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "omnistock"), *args, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, (args, err.decode())
        printed = out.decode().strip()
        assert isinstance(template, Text) and template.match(printed), (step.outcomes, printed)
        # "each works at once on the running server"
        async with httpx.AsyncClient(
            base_url=self.server.url, headers={"Authorization": f"Bearer {printed}"}, timeout=30
        ) as c:
            assert (await c.get("/v1/stock/chi-loop/TEE-BLK-M")).status_code == 200
        self.ran.append("cli")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


@pytest.fixture
async def tour(tmp_path: Path) -> AsyncIterator[Tour]:
    server = DemoServer(tmp_path / "demo")
    runner = Tour(server)
    try:
        yield runner
    finally:
        await runner.close()
        await server.stop()


@pytest.mark.slow
async def test_every_command_of_the_readme_tour_does_what_it_says(tour: Tour) -> None:
    blocks = tour_blocks((REPO / "README.md").read_text())
    for steps in blocks:
        awaited, tour.awaited = tour.awaited, []
        for step in steps:
            await tour.run(step)
        if awaited:  # the WebSocket's messages, once this block has made them happen
            await tour.expect_messages(awaited)
    assert tour.awaited == [], "the tour ends before the WebSocket's messages arrive"
    # The tour shows each kind of thing, and every one of them ran.
    assert tour.ran[:2] == ["serve", "export"]
    assert {"curl", "websocket", "cli"} <= set(tour.ran)
    assert tour.ran.count("curl") >= 5


def test_the_outcome_matcher_catches_drift() -> None:
    """What the tour test relies on: a changed value, a missing member, a missing item or an
    undocumented member of a closed object is a mismatch; '...' stands for the rest."""
    _, template = parse_outcome(
        '{"id":"r38-...","lines":[{"sku":"A","qty":2},...],"status":"active",...}'
    )
    assert isinstance(template, Obj) and template.open
    good = {"id": "r38-abc", "lines": [{"sku": "A", "qty": 2}, {}], "status": "active", "x": 1}
    assert mismatch(template, good) is None
    assert bound_ids(template, good) == {"r38-...": "r38-abc"}
    for wrong in (
        {**good, "id": "r17-abc"},
        {**good, "status": "committed"},
        {**good, "lines": []},
        {**good, "lines": [{"sku": "A", "qty": 3}]},
        {k: v for k, v in good.items() if k != "status"},
    ):
        assert mismatch(template, wrong) is not None, wrong
    status, closed = parse_outcome('200 {"results":[{"on_hand":5,...}],"next":null}  (note)')
    assert status == 200 and isinstance(closed, Obj) and not closed.open
    assert isinstance(closed.members["results"], Arr)
    assert mismatch(closed, {"results": [{"on_hand": 5}], "next": None}) is None
    assert mismatch(closed, {"results": [{"on_hand": 5}], "next": None, "more": 1}) is not None
    assert mismatch(closed, {"results": [{"on_hand": 5}, {}], "next": None}) is not None
    assert mismatch(closed, {"results": [{"on_hand": 5.5}], "next": None}) is not None
    assert mismatch(closed, {"results": [{"on_hand": True}], "next": None}) is not None
    assert parse_outcome("osk_...") == (None, Text("osk_..."))
    assert parse_outcome('{"a":...}')[1].members["a"] is ANY


def test_the_tour_is_what_the_test_runs() -> None:
    """The section parses into the steps the README shows (a block-less README would pass the
    tour test vacuously otherwise)."""
    blocks = tour_blocks((REPO / "README.md").read_text())
    steps = [step for block in blocks for step in block]
    assert steps[0].command == "./scripts/serve --demo"
    commands = [s.command.split()[0] for s in steps]
    assert commands.count("curl") >= 5
    for step in steps:
        if step.command.startswith(("curl", ".venv/bin/omnistock")):
            assert len(step.outcomes) == 1, f"no '# ->' outcome after {step.command!r}"
            parse_outcome(step.outcomes[0])
