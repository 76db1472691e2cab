"""The return codes of the Lua scripts (_lib.lua) and of redis/scripts.py are the same numbers."""

from __future__ import annotations

import re
from importlib import resources

from omnistock.redis import scripts


def lua_codes() -> dict[str, int]:
    lib = (resources.files("omnistock.redis") / "lua" / "_lib.lua").read_text()
    found: dict[str, int] = {}
    for names, values in re.findall(
        r"^local (C_[A-Z_, ]+?) = ([0-9, ]+?)(?:\s*--.*)?$", lib, re.MULTILINE
    ):
        pairs = zip(names.split(","), values.split(","), strict=True)
        found.update({n.strip().removeprefix("C_"): int(v) for n, v in pairs})
    return found


def test_lua_and_python_agree_on_every_code() -> None:
    codes = lua_codes()
    assert codes["LIMITED"] == 20 and codes["OK"] == 0
    for name, value in codes.items():
        assert getattr(scripts, name) == value, name
