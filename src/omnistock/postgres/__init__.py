"""Postgres: the system of record (locations, API keys, and later the ledger)."""
