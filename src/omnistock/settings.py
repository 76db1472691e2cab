"""Settings, read once from the environment (``OMNISTOCK_*``) into a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from omnistock.cluster_url import is_cluster_url, parse_cluster_url
from omnistock.domain.ratelimit import Policy, parse_policies
from omnistock.domain.roles import Role

AckMode = Literal["redis", "postgres"]


class SettingsError(ValueError):
    """An ``OMNISTOCK_*`` variable has a value that cannot be used."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything configurable. Built once by :func:`load_settings` and passed to ``create_app``."""

    redis_url: str | None = None
    database_url: str | None = None
    admin_key: str | None = None
    data_dir: Path = Path(".omnistock")
    partitions: int = 64
    default_ttl_seconds: int = 900
    sweeper_interval_seconds: float = 0.25
    idempotency_ttl_seconds: int = 24 * 3600
    finished_reservation_retention_seconds: int = 3600
    redis_max_connections: int = 64
    database_pool_size: int = 10
    ack: AckMode = "redis"
    backlog_limit: int = 1_000_000
    stream_retention_seconds: int = 3600
    persister_batch: int = 2000
    persister_claim_idle_ms: int = 5000
    ws_outbox_limit: int = 10_000
    ws_stall_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    log_level: str = "info"
    # Background loops (supervision) and retention: docs/operations.md
    background_backoff_initial_seconds: float = 0.1
    background_backoff_max_seconds: float = 5.0
    background_healthy_seconds: float = 2.0
    prune_interval_seconds: float = 60.0
    prune_batch: int = 1000
    ledger_retention_days: int = 400
    reservation_retention_days: int = 90
    # WebSocket limits (docs/operations.md, "Limits: WebSocket")
    ws_max_message_bytes: int = 1 << 20
    ws_max_subscriptions: int = 100
    ws_max_filter_entries: int = 10_000
    ws_max_connection_filter_entries: int = 20_000
    ws_max_key_filter_entries: int = 100_000
    ws_max_connections_per_key: int = 100
    ws_max_connections: int = 10_000
    ws_max_replay_entries: int = 100_000
    # Input limits: docs/operations.md "Limits: input and import"
    import_max_line_bytes: int = 64 * 1024
    import_max_columns: int = 64
    import_max_error_chars: int = 200
    # HTTP server limits and security
    http_max_header_bytes: int = 64 * 1024
    http_request_timeout_seconds: float = 30.0
    max_body_bytes: int = 64 * 1024
    metrics_key: str | None = None
    # The worker process: docs/operations.md "The worker process"
    worker_report_seconds: float = 1.0
    worker_stale_seconds: float = 5.0
    # Rate limits: ``role=N/Ss`` pairs over the defaults of domain/ratelimit.py, or ``off``.
    rate_limits: str = ""
    # Tail latency: the loop-lag probe and collector tuning after start-up
    loop_lag_interval_seconds: float = 0.1
    gc_freeze: bool = True
    # Sourcing holds: docs/operations.md "Sourcing holds"
    sourcing_lease_seconds: float = 1.0
    sourcing_courier_interval_seconds: float = 0.2
    sourcing_courier_batch: int = 100
    sourcing_max_plan_cells: int = 20_000
    sourcing_replay_wait_seconds: float = 5.0
    # Stock states and supply (issue 13): docs/operations.md "Limits: stock states and supply"
    finished_supply_retention_seconds: int = 3600
    supply_retention_days: int = 400
    # Redis Cluster (issue 14): docs/operations.md "Redis Cluster"
    redis_cluster_redirects: int = 5
    redis_cluster_retry_seconds: float = 2.0
    # Ledger partitions (issue 14, pgpart): docs/operations.md "Retention: ledger partitions"
    ledger_partitions_ahead: int = 2
    ledger_partition_lock_timeout_ms: int = 2000
    # Transfers (issue 13): docs/operations.md "Limits: transfers"
    transfer_lease_seconds: float = 1.0
    transfer_courier_interval_seconds: float = 0.2
    transfer_courier_batch: int = 100
    finished_transfer_retention_seconds: int = 3600
    transfer_retention_days: int = 400
    # Replica waits (issue 14, wait): docs/operations.md "Durability: replica waits"
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    redis_wait_aof: int = 0
    # Stream reads on Redis Cluster (issue 14, streamcost): docs/operations.md "Stream reads on
    # Redis Cluster"
    stream_cluster_coalesce_ms: int = 0
    persister_cluster_interval_ms: int = 5

    @property
    def embedded(self) -> bool:
        """True when either store is not configured and must be started under ``data_dir``."""
        return self.redis_url is None or self.database_url is None

    @property
    def rate_limit_policies(self) -> dict[Role, Policy] | None:
        """The limit of every role (None: limiting is off); SettingsError when malformed."""
        try:
            return parse_policies(self.rate_limits)
        except ValueError as exc:
            raise SettingsError(f"OMNISTOCK_RATE_LIMITS: {exc}") from None


_INT_FIELDS = {
    "partitions": (1, 16384),
    "default_ttl_seconds": (1, 604800),
    "idempotency_ttl_seconds": (60, 30 * 24 * 3600),
    "finished_reservation_retention_seconds": (0, 365 * 24 * 3600),
    "redis_max_connections": (1, 10_000),
    "database_pool_size": (1, 1000),
    "backlog_limit": (1, 10**9),
    "stream_retention_seconds": (0, 30 * 24 * 3600),
    "persister_batch": (1, 100_000),
    "persister_claim_idle_ms": (0, 3_600_000),
    "ws_outbox_limit": (1, 10**7),
    # Background loops and retention
    "prune_batch": (1, 100_000),
    "ledger_retention_days": (0, 36500),
    "reservation_retention_days": (0, 36500),
    # WebSocket limits
    "ws_max_message_bytes": (1024, 64 << 20),
    "ws_max_subscriptions": (1, 10_000),
    "ws_max_filter_entries": (1, 1_000_000),
    "ws_max_connection_filter_entries": (1, 10_000_000),
    "ws_max_key_filter_entries": (1, 100_000_000),
    "ws_max_connections_per_key": (1, 1_000_000),
    "ws_max_connections": (1, 1_000_000),
    "ws_max_replay_entries": (0, 10**9),
    # Input limits
    "import_max_line_bytes": (256, 16 * 1024 * 1024),
    "import_max_columns": (4, 4096),
    "import_max_error_chars": (40, 10_000),
    "http_max_header_bytes": (8 * 1024, 1024 * 1024),
    "max_body_bytes": (1024, 64 * 1024 * 1024),
    # Sourcing holds
    "sourcing_courier_batch": (1, 10_000),
    "sourcing_max_plan_cells": (100, 1_000_000),
    # Stock states and supply
    "finished_supply_retention_seconds": (0, 365 * 24 * 3600),
    "supply_retention_days": (0, 36500),
    # Redis Cluster
    "redis_cluster_redirects": (1, 100),
    # Ledger partitions
    "ledger_partitions_ahead": (1, 24),
    "ledger_partition_lock_timeout_ms": (10, 60_000),
    # Transfers
    "transfer_courier_batch": (1, 10_000),
    "finished_transfer_retention_seconds": (0, 365 * 24 * 3600),
    "transfer_retention_days": (0, 36500),
    "redis_wait_replicas": (0, 16),
    "redis_wait_timeout_ms": (1, 60_000),
    "redis_wait_aof": (0, 1),
    "stream_cluster_coalesce_ms": (0, 50),
    "persister_cluster_interval_ms": (0, 200),
}
_FLOAT_FIELDS = {
    "sweeper_interval_seconds": (0.01, 60.0),
    "ws_stall_seconds": (0.1, 3600.0),
    "heartbeat_seconds": (0.05, 15.0),
    # Background loops and retention
    "background_backoff_initial_seconds": (0.01, 60.0),
    "background_backoff_max_seconds": (0.01, 600.0),
    "background_healthy_seconds": (0.1, 3600.0),
    "prune_interval_seconds": (1.0, 86400.0),
    "http_request_timeout_seconds": (0.5, 3600.0),
    # worker process
    "worker_report_seconds": (0.05, 60.0),
    "worker_stale_seconds": (0.5, 3600.0),
    # Tail latency
    "loop_lag_interval_seconds": (0.01, 60.0),
    # Sourcing holds
    "sourcing_lease_seconds": (0.1, 60.0),
    "sourcing_courier_interval_seconds": (0.01, 10.0),
    "sourcing_replay_wait_seconds": (0.1, 60.0),
    # Redis Cluster
    "redis_cluster_retry_seconds": (0.0, 60.0),
    # Transfers
    "transfer_lease_seconds": (0.1, 60.0),
    "transfer_courier_interval_seconds": (0.01, 10.0),
}


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read ``OMNISTOCK_<FIELD>`` variables (upper-case field names); ``overrides`` win."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for name in Settings.__struct_fields__:
        raw = env.get(f"OMNISTOCK_{name.upper()}")
        if raw is None or raw == "":
            continue
        values[name] = _parse(name, raw)
    values.update(overrides)
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(str(exc)) from exc


def _parse(name: str, raw: str) -> object:
    value: float
    lo: float
    hi: float
    if name in _INT_FIELDS:
        lo, hi = _INT_FIELDS[name]
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(
                f"OMNISTOCK_{name.upper()} must be an integer, got {raw!r}"
            ) from None
    elif name in _FLOAT_FIELDS:
        lo, hi = _FLOAT_FIELDS[name]
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"OMNISTOCK_{name.upper()} must be a number, got {raw!r}") from None
    elif name == "ack":
        if raw not in ("redis", "postgres"):
            raise SettingsError(f"OMNISTOCK_ACK must be 'redis' or 'postgres', got {raw!r}")
        return raw
    elif name == "data_dir":
        return Path(raw)
    elif name == "redis_url" and is_cluster_url(raw):
        try:
            parse_cluster_url(raw)
        except ValueError as exc:
            raise SettingsError(f"OMNISTOCK_REDIS_URL: {exc}") from None
        return raw
    elif name == "rate_limits":
        try:
            parse_policies(raw)
        except ValueError as exc:
            raise SettingsError(f"OMNISTOCK_RATE_LIMITS: {exc}") from None
        return raw
    else:
        return raw
    if not lo <= value <= hi:
        raise SettingsError(f"OMNISTOCK_{name.upper()} must be between {lo} and {hi}, got {raw}")
    return value
