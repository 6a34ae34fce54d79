"""The running process: wires settings, provider, guard, handler and processor together."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

from streamproc import __version__
from streamproc.logs import get_logger
from streamproc.processing.guard import ResilienceGuard
from streamproc.processing.handler import LeadHandler
from streamproc.processing.processor import Processor
from streamproc.provider.client import ProviderClient
from streamproc.settings import Settings
from streamproc.state.store import StateStore

__all__ = ["App"]

log = get_logger(__name__)


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.provider = ProviderClient(settings)
        self.guard = ResilienceGuard(settings)
        self.state = StateStore(settings, self.guard.on_state)
        self.guard.attach(self.state)
        self.handler = LeadHandler(
            settings, self.provider, self.guard, processor_version=__version__
        )
        self.processor = Processor(settings, self.handler)
        self._stop = asyncio.Event()
        self._abort = False

    def request_stop(self) -> None:
        self._stop.set()
        self.processor.request_stop()

    def abort(self) -> None:
        """Second signal: leave now. Uncommitted transactions are aborted by the broker."""
        self._abort = True
        self._stop.set()
        self.processor.abort()

    async def run(self, *, stop_when_idle_s: float | None = None) -> None:
        settings = self.settings
        await self.provider.start()
        try:
            # Breaker, budget and cache are restored before the first lead is fetched.
            await self.state.start()
            await self.processor.start()
            log.info(
                "processor.started",
                group_id=settings.group_id,
                topic=settings.topic_raw,
                provider=str(settings.provider_url),
                max_in_flight=settings.max_in_flight,
            )
            watchers: list[asyncio.Future[Any]] = [
                asyncio.ensure_future(self.processor.run_until_stopped())
            ]
            if stop_when_idle_s is not None:
                watchers.append(asyncio.ensure_future(self._stop_when_idle(stop_when_idle_s)))
            watchers.append(asyncio.ensure_future(self._stop.wait()))
            try:
                done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in watchers:
                    w.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            await self.processor.stop(grace_s=0 if self._abort else None)
            await self.guard.flush()
            await self.state.stop()
            await self.provider.close()

    async def _stop_when_idle(self, idle_s: float) -> None:
        stats = self.processor.stats
        await self.processor.assigned.wait()
        last, quiet_since = -1, asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(0.2)
            now = asyncio.get_running_loop().time()
            if stats.consumed != last or stats.in_flight > 0:
                last, quiet_since = stats.consumed, now
            elif now - quiet_since >= idle_s:
                log.info("processor.idle", idle_s=idle_s)
                return

    def print_summary(self) -> None:
        st = self.processor.stats
        lines = [
            f"streamproc: {st.committed} leads committed in {st.transactions} transactions",
            f"  -> {self.settings.topic_enriched}: {st.enriched}  "
            + "  ".join(f"{k}={v}" for k, v in sorted(st.by_source.items())),
            f"  -> {self.settings.topic_dlq}: {st.dlq}  "
            + "  ".join(f"{k}={v}" for k, v in sorted(st.by_error_class.items())),
            f"  credits charged: {st.credits}",
        ]
        with contextlib.suppress(Exception):
            print("\n".join(lines), file=sys.stdout, flush=True)
