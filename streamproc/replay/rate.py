"""``--rate``: pace re-injected records to at most N per second.

The slots come from a :class:`~streamproc.resilience.token_bucket.TokenBucket` (burst 1:
a pause is never made up for by a burst); :func:`pace` is the asyncio shell: it sleeps
until the slot, and returns early (``False``) when asked to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from streamproc.resilience.token_bucket import TokenBucket

__all__ = ["pace"]


async def pace(
    bucket: TokenBucket | None,
    stop: asyncio.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait for the next slot; ``False`` (at once) if ``stop`` is set before it comes."""
    if stop.is_set():
        return False
    if bucket is None:
        return True
    delay = bucket.take(clock())
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
    return not stop.is_set()
