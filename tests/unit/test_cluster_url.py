"""The ``redis+cluster://`` URL: parsing, and the settings refusing a bad one."""

from __future__ import annotations

import pytest

from omnistock.cluster_url import is_cluster_url, parse_cluster_url
from omnistock.redis.client import cluster_client
from omnistock.redis.cluster import ClusterMultiplexer, command_key, hash_tag
from omnistock.redis.keys import position, stream
from omnistock.settings import SettingsError, load_settings


def test_nodes_password_and_user() -> None:
    url = parse_cluster_url("redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
    assert url.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002))
    assert (url.username, url.password, url.tls) == ("app", "s@cret", False)
    assert url.node_url("10.0.0.2", 7001) == "redis://app:s%40cret@10.0.0.2:7001/0"
    assert url.node_url("::1", 7002) == "redis://app:s%40cret@[::1]:7002/0"


def test_password_only_default_port_tls_and_database_zero() -> None:
    url = parse_cluster_url("rediss+cluster://:pw@h1,h2:7001/0")
    assert url.nodes == (("h1", 6379), ("h2", 7001))
    assert (url.username, url.password, url.tls) == (None, "pw", True)
    assert parse_cluster_url("redis+cluster://secret@h1:1").password == "secret"
    assert parse_cluster_url("redis+cluster://h1:1").password is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+cluster://", "empty host"),
        ("redis+cluster://h1:1,,h2:2", "empty host"),
        ("redis+cluster://h1:notaport", "not a number"),
        ("redis+cluster://h1:70000", "out of range"),
        ("redis+cluster://h1:1/2", "database 0"),
        ("redis+cluster://:pw@:7000", "no host"),
        ("redis://h1:1", "starts with"),
    ],
)
def test_bad_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_cluster_url(url)


def test_settings_validate_a_cluster_url_and_keep_standalone_as_is() -> None:
    good = "redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001"
    assert load_settings(env={"OMNISTOCK_REDIS_URL": good}).redis_url == good
    plain = "redis://:pw@127.0.0.1:6379/1"
    assert load_settings(env={"OMNISTOCK_REDIS_URL": plain}).redis_url == plain
    with pytest.raises(SettingsError, match="OMNISTOCK_REDIS_URL: port"):
        load_settings(env={"OMNISTOCK_REDIS_URL": "redis+cluster://h:x"})
    with pytest.raises(SettingsError, match="OMNISTOCK_REDIS_CLUSTER_REDIRECTS"):
        load_settings(env={"OMNISTOCK_REDIS_CLUSTER_REDIRECTS": "0"})
    with pytest.raises(SettingsError, match="OMNISTOCK_REDIS_CLUSTER_RETRY_SECONDS"):
        load_settings(env={"OMNISTOCK_REDIS_CLUSTER_RETRY_SECONDS": "61"})
    assert is_cluster_url(good) and is_cluster_url("REDISS+CLUSTER://h:1")
    assert not is_cluster_url(plain) and not is_cluster_url(None)


def test_routing_uses_the_partition_hash_tag() -> None:
    """Every key of partition N hashes by ``p<N>``: a script's keys share one slot, and the hot
    path routes FCALL by its first key."""
    hot = ClusterMultiplexer("redis+cluster://h:1")
    assert hash_tag(position(7, "loc", "sku")) == "p7"
    assert hash_tag(b"os:{p7}:ev") == b"p7"
    assert hash_tag("no-tag") == "no-tag" and hash_tag("a{}b") == "a{}b"
    assert hot.slot(position(7, "loc", "sku")) == hot.slot(stream(7)) == hot.slot(b"{p7}")
    assert hot.slot(stream(7)) != hot.slot(stream(8))
    assert command_key(("FCALL", "reserve_x", 2, "os:{p3}:ev", "k2", "arg")) == "os:{p3}:ev"
    assert command_key(("FCALL", "f", 0)) is None
    assert command_key(("HGET", "os:{p3}:res:r", "doc")) == "os:{p3}:res:r"


async def test_the_pool_client_routes_fcall_and_xread_by_their_keys() -> None:
    """No COMMAND GETKEYS round trip: the slot comes from the command itself."""
    client = cluster_client("redis+cluster://:pw@127.0.0.1:1", 4)
    slot = client.keyslot(stream(5))
    found = [
        await client._determine_slot("FCALL", "f", 2, stream(5), position(5, "l", "s"), "x"),
        await client._determine_slot("XREAD", "COUNT", 5, "BLOCK", 10, "STREAMS", stream(5), "0"),
        await client._determine_slot("XREADGROUP", "GROUP", "g", "c", "STREAMS", stream(5), ">"),
    ]
    assert found == [slot, slot, slot]
