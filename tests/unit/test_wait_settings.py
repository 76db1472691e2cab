"""OMNISTOCK_REDIS_WAIT_*: bounded settings, and N=0 (the default) leaves the hot path as it was."""

from __future__ import annotations

import pytest

from omnistock.redis.multiplex import Multiplexer
from omnistock.redis.replicated import WaitMultiplexer, wait_stats, with_replica_waits
from omnistock.settings import SettingsError, load_settings

URL = "redis://:pw@127.0.0.1:6379/0"


def test_bounds() -> None:
    settings = load_settings(env={})
    assert (settings.redis_wait_replicas, settings.redis_wait_timeout_ms) == (0, 1000)
    assert settings.redis_wait_aof == 0
    for name, bad in (
        ("OMNISTOCK_REDIS_WAIT_REPLICAS", "-1"),
        ("OMNISTOCK_REDIS_WAIT_REPLICAS", "17"),
        ("OMNISTOCK_REDIS_WAIT_TIMEOUT_MS", "0"),  # WAIT 0 would block forever
        ("OMNISTOCK_REDIS_WAIT_TIMEOUT_MS", "60001"),
        ("OMNISTOCK_REDIS_WAIT_AOF", "2"),
        ("OMNISTOCK_REDIS_WAIT_REPLICAS", "one"),
    ):
        with pytest.raises(SettingsError, match=name):
            load_settings(env={name: bad})


def test_off_by_default_and_on_with_n() -> None:
    hot = Multiplexer(URL)
    assert with_replica_waits(hot, load_settings(env={"OMNISTOCK_REDIS_URL": URL})) is hot
    assert hot.writes is None and wait_stats(hot) is None
    on = load_settings(
        env={
            "OMNISTOCK_REDIS_URL": URL,
            "OMNISTOCK_REDIS_WAIT_REPLICAS": "2",
            "OMNISTOCK_REDIS_WAIT_TIMEOUT_MS": "250",
        }
    )
    hot = with_replica_waits(Multiplexer(URL), on)
    assert isinstance(hot.writes, WaitMultiplexer)
    assert (hot.writes.replicas, hot.writes.timeout_ms, hot.writes.aof) == (2, 250, False)
    assert wait_stats(hot) is hot.writes.stats
