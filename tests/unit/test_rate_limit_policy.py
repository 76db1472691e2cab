"""OMNISTOCK_RATE_LIMITS parsing, the header values, and Retry-After on every 503 problem."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar.exceptions import HTTPException
from redis.exceptions import ConnectionError as RedisConnectionError

from omnistock.api import errors
from omnistock.app import create_app
from omnistock.domain.errors import Unavailable
from omnistock.domain.ratelimit import (
    DEFAULT_POLICIES,
    Policy,
    parse_policies,
    policy_header,
    retry_after_seconds,
    state_header,
)
from omnistock.domain.roles import Role
from omnistock.settings import SettingsError, load_settings


def test_unset_or_empty_means_the_documented_defaults() -> None:
    assert parse_policies("") == DEFAULT_POLICIES
    assert parse_policies("   ") == DEFAULT_POLICIES
    assert set(DEFAULT_POLICIES) == set(Role)
    assert DEFAULT_POLICIES[Role.STOREFRONT] == Policy(2000, 1)
    assert DEFAULT_POLICIES[Role.ADMIN].requests >= DEFAULT_POLICIES[Role.STOREFRONT].requests


def test_named_roles_override_and_the_others_keep_their_defaults() -> None:
    found = parse_policies("storefront=2000/1s, feed = 50/1s,store=30/60s")
    assert found == {
        **DEFAULT_POLICIES,
        Role.STOREFRONT: Policy(2000, 1),
        Role.FEED: Policy(50, 1),
        Role.STORE: Policy(30, 60),
    }


def test_off_disables_limiting() -> None:
    assert parse_policies("off") is None
    assert parse_policies(" OFF ") is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("storefront=2000", "is not role=N/Ss"),
        ("storefront=2000/1", "is not role=N/Ss"),
        ("storefront=2000/1m", "is not role=N/Ss"),
        ("storefront=-1/1s", "is not role=N/Ss"),
        ("storefront=1.5/1s", "is not role=N/Ss"),
        ("storefront=10/1s,", "is not role=N/Ss"),
        ("shopper=10/1s", "unknown role 'shopper'"),
        ("feed=1/1s,feed=2/1s", "given twice"),
        ("feed=0/1s", "N must be between 1 and 1000000000"),
        ("feed=1000000001/1s", "N must be between 1 and 1000000000"),
        ("feed=1/0s", "S must be between 1 and 86400"),
        ("feed=1/86401s", "S must be between 1 and 86400"),
    ],
)
def test_malformed_values_are_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_policies(text)
    # ... and fail at start: when the environment is read, and for settings built otherwise.
    with pytest.raises(SettingsError, match="OMNISTOCK_RATE_LIMITS.*" + says):
        load_settings(env={"OMNISTOCK_RATE_LIMITS": text})
    settings = load_settings(env={}, rate_limits=text)
    with pytest.raises(SettingsError, match="OMNISTOCK_RATE_LIMITS.*" + says):
        create_app(settings)


def test_valid_settings_are_kept() -> None:
    settings = load_settings(env={"OMNISTOCK_RATE_LIMITS": "feed=50/1s"})
    assert settings.rate_limit_policies == {**DEFAULT_POLICIES, Role.FEED: Policy(50, 1)}
    assert load_settings(env={}).rate_limit_policies == DEFAULT_POLICIES


def test_gcra_parameters() -> None:
    assert (Policy(2000, 1).interval_us, Policy(2000, 1).burst_us) == (500, 1_000_000)
    assert Policy(3, 1).interval_us == 333_333  # the window holds exactly 3 intervals
    assert Policy(10**9, 1).interval_us == 1  # never 0


def test_a_lease_is_at_most_1_percent_and_10_ms_of_the_rate() -> None:
    assert Policy(2000, 1).lease == 20
    assert Policy(10_000, 1).lease == 100
    assert Policy(10**9, 1).lease == 100  # LEASE_MAX
    assert Policy(2000, 10).lease == 2  # 200/s: 10 ms earn 2
    assert Policy(100, 1).lease == 1  # low rates are counted in Redis one by one
    assert Policy(40, 2).lease == 1
    assert Policy(1, 3600).lease == 1


def test_header_values_follow_the_draft_structured_fields() -> None:
    assert policy_header(Role.STOREFRONT, Policy(2000, 1)) == '"storefront";q=2000;w=1'
    assert state_header(Role.STOREFRONT, 1999, 500) == '"storefront";r=1999;t=1'
    assert state_header(Role.FEED, 0, 3_600_000_000) == '"feed";r=0;t=3600'
    assert state_header(Role.FEED, -1, 0) == '"feed";r=0;t=0'


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert [retry_after_seconds(us) for us in (1, 999_999, 1_000_000, 1_000_001)] == [1, 1, 1, 2]
    assert retry_after_seconds(0) == 1


ERROR_503S: list[tuple[Any, Any]] = [
    (errors.on_redis_error, RedisConnectionError("refused")),
    (errors.on_postgres_error, asyncpg.PostgresConnectionError("gone")),
    (errors.on_postgres_error, asyncpg.InterfaceError("pool is closed")),
    (errors.on_os_error, ConnectionRefusedError(111, "refused")),
    (errors.on_http_error, HTTPException(status_code=503, detail="down")),
    (errors.on_domain_error, Unavailable("rebuilding")),
]


@pytest.mark.parametrize(("handler", "exc"), ERROR_503S)
def test_every_503_problem_has_retry_after(handler: Any, exc: Exception) -> None:
    response = handler(None, exc)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


def test_a_503_names_its_own_retry_after() -> None:
    response = errors.on_domain_error(None, Unavailable("paused", retry_after_seconds=5))  # type: ignore[arg-type]
    assert response.headers["Retry-After"] == "5"
    assert errors.problem(503, "x", "X", "x", {"Retry-After": "7"}).headers["Retry-After"] == "7"
    assert "Retry-After" not in errors.problem(404, "x", "X", "x").headers
