"""The mock provider (``streamproc.simulators.provider``) in its own process, on uvloop.

A process of its own so that its event loop never shares a core's time slices with the
code being measured inside one process; uvloop because at thousands of calls a second
the simulator itself is a sizeable share of a 2-core machine's CPU, and every cycle it
saves is one the measured pipeline can use. Prints ``{"bench": {"url": ...}}`` once
serving, then serves until SIGTERM or SIGINT.

It serves :func:`streamproc.simulators.provider.build_app` itself rather than through
``serve_mock_provider``, for one reason: the listen backlog. aiohttp's default is 128, and a
client that opens its whole pool at once (1,000 connections) overflows it; the dropped SYNs
are retried by the kernel after 1 s, 3 s, 7 s..., which would be measured as provider
latency (or end in connect timeouts). A real provider sits behind a load balancer that
does not do that.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from bench.apps.common import emit, run_main
from streamproc.signals import StopSignals
from streamproc.simulators.provider import MockProviderConfig, build_app

#: Above any in-flight window the benchmark uses (the kernel caps it at somaxconn).
_BACKLOG = 4096


async def main() -> None:
    config = MockProviderConfig(
        host="127.0.0.1",
        port=0,
        latency_ms=float(os.environ.get("BENCH_LATENCY_MS", "50")),
        latency_jitter_ms=float(os.environ.get("BENCH_LATENCY_JITTER_MS", "0")),
        seed=7,
    )
    stop = asyncio.Event()
    with StopSignals(stop.set):
        runner = web.AppRunner(build_app(config), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, config.host, config.port, backlog=_BACKLOG).start()
            base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            emit(url=f"{base_url}/enrich", base_url=base_url)
            await stop.wait()
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    run_main(main())
