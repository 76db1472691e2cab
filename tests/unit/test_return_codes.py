"""The scripts' return codes: every ``C_<NAME>`` of _lib.lua is scripts.py's ``<NAME>`` with the same
value, and every failure code has its error in the one table that maps them."""

from __future__ import annotations

import re
from importlib import resources

from omnistock.redis import scripts


def lua_codes() -> dict[str, int]:
    lib = (resources.files("omnistock.redis") / "lua" / "_lib.lua").read_text()
    codes: dict[str, int] = {}
    for names, values in re.findall(r"^local (C_\w+(?:, C_\w+)*) = ([\d, ]+)", lib, flags=re.M):
        for name, value in zip(names.split(", "), values.split(","), strict=True):
            codes[name.removeprefix("C_")] = int(value)
    return codes


def test_lua_and_python_agree_on_every_code() -> None:
    codes = lua_codes()
    assert {"OK", "NOT_READY", "TOO_LONG", "LIMITED"} <= codes.keys()
    assert {name: getattr(scripts, name, None) for name in codes} == codes
    assert len(set(codes.values())) == len(codes)  # no two codes share a value


def test_every_failure_code_maps_to_an_error() -> None:
    tolerated = {"OK", "NOT_DUE"}  # not errors: NOT_DUE is what expire tolerates
    failing = {value for name, value in lua_codes().items() if name not in tolerated}
    assert failing <= scripts.ERRORS.keys()
