"""Request body size limits of the endpoints whose bodies are batches (413 past them).

Every other endpoint with a body gets ``max_body_bytes`` (the app-wide setting, 64 KiB by
default); the streamed import has no whole-body limit (its lines are bounded instead). Each batch
limit holds the largest valid body (every item at its longest, strings escaped) with room to spare.
"""

from __future__ import annotations

ADJUSTMENTS_BODY_BYTES = 4 * 1024 * 1024  # 1000 items of up to ~2 KB each
AVAILABILITY_BODY_BYTES = 1024 * 1024  # 500 skus and 500 locations of up to 128 characters
KEY_BODY_BYTES = 1024 * 1024  # a store key's list of locations
SOURCING_BODY_BYTES = 1024 * 1024  # up to 1000 location ids and 100 lines of up to 128 characters
