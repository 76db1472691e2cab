"""Every exception a request may raise, mapped to its problem+json answer: the API's own (api/
errors.py) and the store drivers' (Redis, Postgres: 503, or 422 for a value Postgres refused).
Outside api/, which knows no driver."""

from __future__ import annotations

from typing import Any

import asyncpg
from redis.exceptions import RedisClusterException, RedisError

from omnistock.api.errors import (
    API_EXCEPTION_HANDLERS,
    on_postgres_data_error,
    on_postgres_error,
    on_redis_error,
)

EXCEPTION_HANDLERS: dict[Any, Any] = {
    **API_EXCEPTION_HANDLERS,
    RedisError: on_redis_error,
    # Redis Cluster: redis-py's cluster client raises these (a slot not covered during a
    # failover, a map it cannot read), which are not RedisErrors: the same 503.
    RedisClusterException: on_redis_error,
    asyncpg.DataError: on_postgres_data_error,
    asyncpg.PostgresError: on_postgres_error,
    asyncpg.InterfaceError: on_postgres_error,
}
