"""``streamproc console``: the web console on its own, for operators with no processor at
hand (or none running). It reads what Kafka holds: the state topic (restored and tailed
as a processor does, through the state view, so breaker, budget and transitions are the
group's), the group's committed offsets (lag, throughput) and the DLQ. A processor's
health window and Clay's webhook counts live in that processor's memory; the page says so.

Listens on ``http_host``:``http_port`` like a processor's ops server (give it another port
on a host that runs one), or on ``console_host``:``console_port`` when that is set. Writes
nothing but what a confirmed replay moves.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sys
from typing import Any

from streamproc.console.api import PREFIX, Console
from streamproc.console.config import ConsoleConfig
from streamproc.errors import ConfigError
from streamproc.logs import get_logger
from streamproc.ops.http import OpsServer
from streamproc.ops.metrics import Metrics
from streamproc.records.status import StateStatus
from streamproc.signals import StopSignals
from streamproc.state.group_state import GroupState

__all__ = ["console_command"]

log = get_logger(__name__)


class _Tee:
    """The state view, with every record shown to the console too (its breaker history)."""

    def __init__(self, view: GroupState, console: Console) -> None:
        self._view = view
        self._console = console

    def on_state(self, key: str, value: dict[str, Any] | None, partition: int, offset: int) -> None:
        self._view.on_state(key, value, partition, offset)
        self._console.on_state(key, value, partition, offset)

    def status(self) -> StateStatus:
        return self._view.status()

    def pacing_status(self) -> dict[str, Any] | None:
        return self._view.pacing_status()


async def console_command(config: ConsoleConfig, *, stop: asyncio.Event | None = None) -> int:
    """Serve the console until SIGINT/SIGTERM (or ``stop``); exit code 0."""
    view = config.state_reader()
    console = Console(config, state=lambda: view.status().to_dict(), restored=lambda: True)
    stop = stop or asyncio.Event()
    async with config.watch_state(_Tee(view, console)):
        host, port = _listen_on(config)
        ops = OpsServer(
            host,
            port,
            Metrics(),
            status_fn=lambda: view.status().to_dict(),
            ready_fn=lambda: (True, []),
        )
        ops.mount(console.install)
        try:
            await ops.start()
        except OSError as exc:
            raise _listen_error(config, exc) from None
        try:
            access = (
                "replay from the page with the operator token"
                if config.console_token is not None
                else "read-only; set STREAMPROC_CONSOLE_TOKEN to allow replays"
            )
            if config.console_token is None and config.console_read_token is None:
                access += "; DLQ records hidden: set STREAMPROC_CONSOLE_READ_TOKEN to show them"

            print(f"streamproc console: {ops.url}{PREFIX}/ ({access})", file=sys.stdout, flush=True)
            with StopSignals(stop.set):
                await stop.wait()
        finally:
            await ops.stop()
    return 0


def _listen_on(config: ConsoleConfig) -> tuple[str, int]:
    if config.console_port is not None:
        return config.console_host, config.console_port
    return config.replay.http_host, config.http_port


def _listen_error(config: ConsoleConfig, exc: OSError) -> ConfigError:
    host, port = _listen_on(config)
    if config.console_port is not None:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return ConfigError(
            f"console_host/console_port: cannot listen on {host}:{port} ({reason}): check "
            "STREAMPROC_CONSOLE_HOST and STREAMPROC_CONSOLE_PORT"
        )
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            f"http_port: port {port} on {host} is in use (a processor's ops server?): give "
            "the console its own STREAMPROC_HTTP_PORT / --http-port, or 0 for any free port"
        )
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return ConfigError(
        f"http_host/http_port: cannot listen on {host}:{port} ({reason}): check "
        "STREAMPROC_HTTP_HOST / --http-host and STREAMPROC_HTTP_PORT / --http-port"
    )
