"""Stopping the processor survives what aiokafka's own close may raise."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from streamproc.processing.config import ProcessorConfig
from streamproc.processing.processor import Processor
from streamproc.settings import Settings


class _ConsumerCancelledInClose:
    """aiokafka's consumer when its fetcher's close re-raises its fetch task's cancellation
    (the fetch was in a retry backoff after a closed connection)."""

    stopped = False

    async def stop(self) -> None:
        self.stopped = True
        raise asyncio.CancelledError

    def assignment(self) -> set[Any]:
        return set()


async def test_stop_completes_when_the_consumers_close_raises_its_own_cancellation() -> None:
    """The consumer's stray CancelledError is swallowed (our task is not being cancelled):
    stop() returns and the processor is left without a consumer."""
    processor = Processor(ProcessorConfig.from_settings(Settings()), cast(Any, None))
    consumer = _ConsumerCancelledInClose()
    processor._consumer = cast(Any, consumer)
    await asyncio.wait_for(processor.stop(grace_s=0), timeout=10)
    assert consumer.stopped and processor._consumer is None
