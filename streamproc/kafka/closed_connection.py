"""A request written to a connection the broker has closed fails as a lost connection,
under uvloop as under asyncio.

aiokafka 0.14 expects a write to a dead socket to raise ``OSError`` (it then closes the
connection and raises ``KafkaConnectionError``, which every caller retries). asyncio's
transports ignore such a write; uvloop's raise ``RuntimeError: unable to perform operation
on <TCPTransport closed=True ...>; the handler is closed`` (aio-libs/aiokafka#1038, open).
That error escapes aiokafka's handling: when it hits a client's metadata synchronizer, the
task dies with a metadata update pending, and every produce request that waits for
metadata afterwards waits for ever. A broker killed under load did that to one lane's
producer: its commit never ended and the partition stopped (docs/guarantees.md, "Holds,
fencing, failures"). :func:`install` makes the write fail the way aiokafka handles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aiokafka.conn import AIOKafkaConnection, CloseReason
from aiokafka.errors import KafkaConnectionError

__all__ = ["install"]

_INSTALLED = "_streamproc_closed_connection"


def _as_connection_error(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    def guarded(self: AIOKafkaConnection, *args: Any, **kwargs: Any) -> Any:
        writer = self._writer
        try:
            return write(self, *args, **kwargs)
        except RuntimeError as exc:
            # Only the closed-transport case: any other RuntimeError is a bug to see.
            if writer is None or not writer.transport.is_closing():
                raise
            self.close(reason=CloseReason.CONNECTION_BROKEN)
            raise KafkaConnectionError(
                f"Connection at {self._host}:{self._port} broken: {exc}"
            ) from exc

    setattr(guarded, _INSTALLED, True)
    return guarded


def install() -> None:
    """Guard aiokafka's two socket writes (requests and SASL tokens); idempotent."""
    for name in ("send", "_send_sasl_token"):
        write = getattr(AIOKafkaConnection, name)
        if not getattr(write, _INSTALLED, False):
            setattr(AIOKafkaConnection, name, _as_connection_error(write))
