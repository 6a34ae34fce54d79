"""Turns to submit: at most ``clay_submit_concurrency`` leads at once, in arrival order,
each with a webhook row; held while every webhook is used up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from streamproc.clay.webhooks import Slot, WebhookRotation

__all__ = ["Reservation", "Turns"]

#: How often a lead held for want of a webhook looks again when nothing woke it.
_HOLD_POLL_S = 5.0


class Reservation:
    """A lead's turn to submit and its webhook row, from :meth:`Turns.reserve` to
    :meth:`Turns.release`. ``used``: the row was submitted (or given back)."""

    __slots__ = ("released", "slot", "used")

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.used = False
        self.released = False


class Turns:
    """Hands out turns to submit, each with a webhook row of ``rotation``.

    ``on_reserve`` is told after each attempt to take a row (the counts may have moved).
    """

    def __init__(
        self, rotation: WebhookRotation, *, concurrency: int, on_reserve: Callable[[], None]
    ) -> None:
        self._rotation = rotation
        self._on_reserve = on_reserve
        #: Set when webhook counts change (for leads held while all webhooks are used up).
        self._capacity = asyncio.Event()
        self._turns = asyncio.Semaphore(concurrency)
        #: Leads waiting for a webhook row now.
        self.holding = 0

    def capacity_changed(self) -> None:
        """The webhook counts changed (another instance's record): held leads look again."""
        self._capacity.set()

    async def reserve(self) -> Reservation:
        """This lead's turn to submit, and a webhook row for it.

        Turns are taken in arrival order (offset order within a partition), at most
        ``concurrency`` at once. Without that bound, a lead queued for the pacer behind
        hundreds of others would hold back its partition's commit (lanes commit in offset
        order) for all that time, and the pending records of leads submitted after it would
        stay invisible while their callbacks come in. With it, a submitted lead's pending
        record commits within about concurrency / rate seconds.

        Held (no credits reserved) while every webhook is used up.
        """
        await self._turns.acquire()
        try:
            while True:
                slot = self._rotation.reserve()
                self._on_reserve()
                if slot is not None:
                    return Reservation(slot)
                self.holding += 1
                self._capacity.clear()
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._capacity.wait(), _HOLD_POLL_S)
                finally:
                    self.holding -= 1
        except BaseException:
            self._turns.release()
            raise

    def release(self, slot: Reservation) -> None:
        """End the lead's turn; its row goes back unless it was submitted."""
        if slot.released:
            return
        slot.released = True
        self._turns.release()
        if not slot.used:
            slot.used = True
            self._rotation.release(slot.slot)
