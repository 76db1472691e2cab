"""Background loops: what they share."""

from __future__ import annotations

import asyncio


def reraise_if_cancelled() -> None:
    """Call in a retry loop's ``except`` clause. redis-py can surface a cancellation as a
    RedisError (a read interrupted by the cancel): a loop catching that must still stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
