"""The group's state as a guard that only reads: what ``state show`` and the replayer see.

A :class:`~streamproc.processing.guard.ResilienceGuard` restored from the state topic
knows the breaker, the budget and the cache exactly as a processor would; one that is
never attached to a store writes nothing back. It is the
:class:`~streamproc.state.view.StateView` until a pure view of the state replaces it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable

from streamproc.processing.guard import ResilienceGuard
from streamproc.settings import Settings

__all__ = ["read_only_guard"]


def read_only_guard(
    settings: Settings, *, clock: Callable[[], float] = time.time
) -> ResilienceGuard:
    """A guard to restore the state into and read; never attach it to a store."""
    return ResilienceGuard(settings, clock=clock, owner=_reader_owner())


def _reader_owner() -> str:
    # An owner id no processor has: the guard must never take a record for its own.
    return f"state-reader-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
