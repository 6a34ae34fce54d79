"""SIGINT and SIGTERM, handled one way by every long-running command.

The first signal asks for a graceful stop, a later one (a second Ctrl-C) for an immediate
one. Handlers are on the running loop only while inside :class:`StopSignals`; a loop that
cannot own signals (one not in the main thread, as in tests) gets none.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from types import TracebackType

__all__ = ["StopSignals", "until_signalled"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Calls ``first`` at the first SIGINT or SIGTERM, ``again`` (else ``first``) at later ones."""

    def __init__(self, first: Callable[[], None], again: Callable[[], None] | None = None) -> None:
        self._first = first
        self._again = again or first
        #: Signals received so far.
        self.count = 0
        self._installed: list[signal.Signals] = []

    def _on_signal(self) -> None:
        self.count += 1
        (self._first if self.count == 1 else self._again)()

    def __enter__(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(sig, self._on_signal)
                self._installed.append(sig)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        while self._installed:
            loop.remove_signal_handler(self._installed.pop())


async def until_signalled() -> None:
    """Return at the first SIGINT or SIGTERM (the simulators' servers)."""
    stop = asyncio.Event()
    with StopSignals(stop.set):
        await stop.wait()
