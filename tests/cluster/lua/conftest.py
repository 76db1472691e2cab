"""The script tests' fixtures (tests/lua/conftest.py), over the cluster's clients."""

from tests.lua.conftest import probe, ready_redis, scripts, store

__all__ = ["probe", "ready_redis", "scripts", "store"]
