"""loadtests/lua_profile.py cuts parts out of reserve.lua and _lib.lua by their text: every cut
must still find its text (a stale one would profile reserve as shipped under another name) and
every variant must compile as a function library."""

from __future__ import annotations

import redis.asyncio as aredis
from loadtests.lua_profile import _SHIPPED, variants

from omnistock.redis.scripts import Library, Scripts


async def test_every_profile_variant_cuts_something_and_compiles(
    redis: aredis.Redis, scripts: Scripts
) -> None:
    lib, body = scripts.library.lib, scripts.library.bodies["reserve"]
    built = variants(lib, body)  # each cut asserts its text is there
    same = {name for name, (v_lib, v_body, _) in built.items() if (v_lib, v_body) == (lib, body)}
    assert same == {_SHIPPED, "as shipped + Idempotency-Key"}
    for v_lib, v_body, _ in built.values():
        library = Library(v_lib, {"reserve": v_body})
        await redis.execute_command("FUNCTION", "LOAD", "REPLACE", library.source)
        await redis.execute_command("FUNCTION", "DELETE", library.name)
