"""A value per key, made once: concurrent askers of a new key share one making.

Schema ids never change what they name, so the registry client's schemas and the codec's
registered output schemas are both made once per id and kept; a failed making is forgotten
(the next asker tries again) and never cached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["MadeOnce"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class MadeOnce(Generic[K, V]):
    def __init__(self) -> None:
        self._made: dict[K, V] = {}
        self._making: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._made)

    async def get(self, key: K, make: Callable[[], Awaitable[V]]) -> V:
        """The value of ``key``; ``make()`` runs only when none is kept nor being made.

        The making is shielded: one asker cancelled (its lead) does not cancel it for the
        others."""
        if key in self._made:
            return self._made[key]
        making = self._making.get(key)
        if making is None:
            making = asyncio.ensure_future(self._make(key, make))
            self._making[key] = making
            making.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(making)

    async def _make(self, key: K, make: Callable[[], Awaitable[V]]) -> V:
        value = await make()
        self._made[key] = value
        return value

    def _done(self, key: K, done: asyncio.Future[V]) -> None:
        self._making.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every asker may have been cancelled
