"""What the worker's couriers share: a round over the operations whose lease has passed, and the
loop that runs rounds. A courier (redis/courier.py for sourcing holds, redis/transfer_courier.py
for transfers) brings only how to find its due operations and how to carry one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from omnistock.domain.errors import Unavailable
from omnistock.tasks import reraise_if_cancelled

log = logging.getLogger("omnistock.courier")
ACTOR = "system:courier"
_REPORTED_MAX = 1000


async def carry_due(
    what: str,
    due: list[str],
    carry: Callable[[str], Awaitable[bool]],
    reported: set[str] | None = None,
) -> int:
    """Carry every due operation at once; how many ``carry`` finished. Redis errors and "not
    ready" propagate after the round; another failure skips its operation (logged once per id
    when ``reported`` is given)."""
    results = await asyncio.gather(*(carry(op) for op in due), return_exceptions=True)
    done = 0
    waiting: BaseException | None = None
    for op, result in zip(due, results, strict=True):
        if isinstance(result, (RedisError, Unavailable, asyncio.CancelledError)):
            waiting = waiting or result
        elif isinstance(result, BaseException):
            if reported is None or op not in reported:
                log.error("courier: cannot finish %s %s: %r", what, op, result)
                if reported is not None and len(reported) < _REPORTED_MAX:
                    reported.add(op)
        elif result:
            done += 1
    if waiting is not None:
        raise waiting
    return done


async def run_rounds(
    what: str, round_once: Callable[[set[str]], Awaitable[int]], interval: float
) -> None:
    """Run a round every ``interval`` seconds until cancelled; outages and rebuilds are waited
    out (anything else reaches the supervisor)."""
    reported: set[str] = set()
    while True:
        try:
            await round_once(reported)
        except Unavailable:
            pass  # being rebuilt: the records come back with it
        except RedisError as exc:
            reraise_if_cancelled()
            log.warning("%s courier: redis unavailable (%s)", what, exc)
        await asyncio.sleep(interval)
