"""The README's tour as data: its commands in order, and the outcomes it documents.

Each fenced ``sh`` block of the "A 2-minute tour" section holds commands (a command continues over
lines ending in ``\\`` or inside an open quote). After a command, ``# -> <status> <json>`` (or
``# -> <text>`` for a command that prints text) is its documented outcome, ``# ... <text>`` a line
of its output; ``> `` lines are WebSocket messages to send, ``< `` lines the messages that come
back. Outcomes are "JSON with ellipses": ``...`` stands for whatever else is there (other members
of an object, further items of an array, any value, or any part of a string).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

TOUR_HEADING = "## A 2-minute tour"


@dataclass
class Step:
    """One command of the tour and what the README says of it."""

    command: str
    outcomes: list[str] = field(default_factory=list)  # after '# ->'
    output: list[str] = field(default_factory=list)  # after '# ...'
    send: list[str] = field(default_factory=list)  # '> ' lines
    receive: list[str] = field(default_factory=list)  # '< ' lines


def tour_section(readme: str) -> str:
    """The text of the tour section (up to the next ``## `` heading)."""
    start = readme.index(TOUR_HEADING) + len(TOUR_HEADING)
    end = readme.find("\n## ", start)
    return readme[start : end if end >= 0 else len(readme)]


def _complete(command: str) -> bool:
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


def tour_blocks(readme: str) -> list[list[Step]]:
    """The steps of each ``sh`` block of the tour, in order."""
    blocks = re.findall(r"^```sh\n(.*?)^```", tour_section(readme), flags=re.S | re.M)
    out: list[list[Step]] = []
    for block in blocks:
        steps: list[Step] = []
        pending = ""
        for line in block.splitlines():
            if pending:
                pending += "\n" + line
                if _complete(pending):
                    steps.append(Step(pending))
                    pending = ""
            elif line.startswith("# ->"):
                steps[-1].outcomes.append(line[len("# ->") :].strip())
            elif line.startswith("# ..."):
                steps[-1].output.append(line[len("# ...") :].strip())
            elif line.startswith("> "):
                steps[-1].send.append(line[2:])
            elif line.startswith("< "):
                steps[-1].receive.append(line[2:])
            elif line.strip() and not line.startswith("#"):
                if _complete(line):
                    steps.append(Step(line))
                else:
                    pending = line
        assert not pending, f"unfinished command in the README tour: {pending!r}"
        out.append(steps)
    return out


# -- JSON with ellipses -------------------------------------------------------------------------

ANY = object()  # a bare '...' value


@dataclass(frozen=True)
class Obj:
    members: dict[str, Any]
    open: bool  # '...' among the members: others may be there too


@dataclass(frozen=True)
class Arr:
    items: list[Any]
    open: bool  # a trailing '...': more items may follow


@dataclass(frozen=True)
class Text:
    """A string with '...' standing for any part of it."""

    pattern: str

    def match(self, value: str) -> bool:
        regex = ".*".join(re.escape(part) for part in self.pattern.split("..."))
        return re.fullmatch(regex, value, flags=re.S) is not None


_TOKEN = re.compile(
    r'\s*(?:(\.\.\.)|([{}\[\]:,])|("(?:[^"\\]|\\.)*")'
    r"|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(true|false|null))"
)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def token(self) -> tuple[str, str]:
        m = _TOKEN.match(self.text, self.pos)
        if m is None:
            raise ValueError(f"cannot read the outcome at {self.text[self.pos : self.pos + 30]!r}")
        self.pos = m.end()
        kinds = ("ellipsis", "punct", "string", "number", "literal")
        kind = next(k for k, g in zip(kinds, m.groups(), strict=True) if g is not None)
        return kind, m.group(kinds.index(kind) + 1)

    def peek(self) -> tuple[str, str]:
        pos = self.pos
        try:
            return self.token()
        finally:
            self.pos = pos

    def value(self) -> Any:
        kind, tok = self.token()
        if kind == "ellipsis":
            return ANY
        if kind in ("number", "literal"):
            return json.loads(tok)
        if kind == "string":
            s = json.loads(tok)
            return Text(s) if "..." in s else s
        if tok == "{":
            return self.obj()
        if tok == "[":
            return self.arr()
        raise ValueError(f"unexpected {tok!r} in an outcome")

    def obj(self) -> Obj:
        members: dict[str, Any] = {}
        is_open = False
        if self.peek() == ("punct", "}"):
            self.token()
            return Obj(members, False)
        while True:
            kind, tok = self.token()
            if kind == "ellipsis":
                is_open = True
            else:
                assert kind == "string", f"expected a member name, got {tok!r}"
                assert self.token() == ("punct", ":")
                members[json.loads(tok)] = self.value()
            _, tok = self.token()
            if tok == "}":
                return Obj(members, is_open)
            assert tok == ",", f"expected , or }} in an object, got {tok!r}"

    def arr(self) -> Arr:
        items: list[Any] = []
        if self.peek() == ("punct", "]"):
            self.token()
            return Arr(items, False)
        while True:
            item = self.value()
            _, tok = self.token()
            if item is ANY and tok == "]":
                return Arr(items, True)
            items.append(item)
            if tok == "]":
                return Arr(items, False)
            assert tok == ",", f"expected , or ] in an array, got {tok!r}"


def parse_outcome(text: str) -> tuple[int | None, Any]:
    """``201 {...}  (anything after)`` -> (201, template); ``osk_...`` -> (None, Text)."""
    status = None
    m = re.match(r"(\d{3})\b\s*", text)
    if m:
        status, text = int(m.group(1)), text[m.end() :]
    if text.startswith(("{", "[")):
        return status, _Parser(text).value()
    return status, Text(text.split()[0]) if text else None


def mismatch(template: Any, actual: Any, where: str = "$") -> str | None:
    """Why ``actual`` does not fit ``template`` (None when it does)."""
    if template is ANY:
        return None
    if isinstance(template, Obj):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {actual!r}"
        for name, sub in template.members.items():
            if name not in actual:
                return f"{where}: no member {name!r}"
            found = mismatch(sub, actual[name], f"{where}.{name}")
            if found:
                return found
        extra = set(actual) - set(template.members)
        if extra and not template.open:
            return f"{where}: members not documented: {sorted(extra)}"
        return None
    if isinstance(template, Arr):
        if not isinstance(actual, list):
            return f"{where}: expected an array, got {actual!r}"
        if len(actual) < len(template.items) or (
            not template.open and len(actual) != len(template.items)
        ):
            return f"{where}: {len(actual)} items, documented {len(template.items)}"
        for i, sub in enumerate(template.items):
            found = mismatch(sub, actual[i], f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(template, Text):
        if isinstance(actual, str) and template.match(actual):
            return None
        return f"{where}: {actual!r} does not fit {template.pattern!r}"
    if type(template) is bool or template is None or isinstance(template, str):
        return (
            None
            if actual == template and type(actual) is type(template)
            else (f"{where}: {actual!r}, documented {template!r}")
        )
    if isinstance(actual, bool) or not isinstance(actual, int | float) or actual != template:
        return f"{where}: {actual!r}, documented {template!r}"
    return None


def bound_ids(template: Any, actual: Any) -> dict[str, str]:
    """The values behind ``"id": "<pattern with ...>"`` members (the README writes the id a
    command made as ``r38-...``; later commands use that spelling for it)."""
    found: dict[str, str] = {}
    if isinstance(template, Obj) and isinstance(actual, dict):
        for name, sub in template.members.items():
            if name == "id" and isinstance(sub, Text) and isinstance(actual.get(name), str):
                found[sub.pattern] = actual[name]
            elif name in actual:
                found.update(bound_ids(sub, actual[name]))
    elif isinstance(template, Arr) and isinstance(actual, list):
        for sub, item in zip(template.items, actual, strict=False):
            found.update(bound_ids(sub, item))
    return found
