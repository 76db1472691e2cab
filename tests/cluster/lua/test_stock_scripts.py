"""tests/lua/test_stock_scripts.py on the 3-primary cluster; the library checks look at every
primary (a cluster client's FUNCTION LIST answers per node)."""

from omnistock.domain.commands import Adjustment
from omnistock.redis.store import StockStore
from tests.lua.conftest import Probe
from tests.lua.test_stock_scripts import *  # noqa: F403


async def test_library_reloads_after_function_flush(
    store: StockStore, probe: Probe, uid: str
) -> None:
    """FUNCTION FLUSH on every primary: the next call loads the library on every one again."""
    await probe.location(uid)
    await store.client.function_flush()
    (pos,), _ = await store.adjust([Adjustment(uid, "s", 1, "receipt")], "erp", None)
    assert pos.version == 1
    listed = await store.client.function_list(library=store.scripts.library.name)
    assert sorted(len(libraries) for libraries in listed.values()) == [1, 1, 1]
