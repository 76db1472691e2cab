"""Use cases: one module per capability. The only place that orchestrates more than one adapter
(Redis, Postgres, the stream); handlers call exactly one of them."""
