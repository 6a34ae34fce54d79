"""The retry loop of every provider call: attempt, decide, wait, ask the breaker, again.

The synchronous provider client (:mod:`.client`) and the Clay submitter
(:mod:`streamproc.clay.submitter`) both run their calls through :class:`RetryDriver`, so
they cannot drift apart: the same bound on attempts (``provider_max_retries + 1``), the same
waits (:class:`~.retry.RetryPolicy`: a 429's ``Retry-After`` up to
``provider_retry_after_max_s``, else backoff with full jitter), the breaker asked the same
way, and every timeout counted as possibly billed.

The callers own the I/O: an attempt is theirs (one HTTP call and the classification of its
answer), and so is the translation of their library's errors, except timeouts, which they
let through for the driver to translate. Nothing here imports httpx; sleep, clock and the
random draw are injected, so a test runs the loop without real time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from streamproc import tracing
from streamproc.errors import LeadError, LocalStall, ProviderTimeout, RateLimited
from streamproc.provider.retry import RetryPolicy

__all__ = [
    "MAX_STALLS",
    "Attempted",
    "FailureHook",
    "KeepTrying",
    "RetryDriver",
    "Sleep",
    "Stalled",
]

T = TypeVar("T")

#: Waits the given seconds: ``asyncio.sleep``, or a fake clock's in tests.
Sleep: TypeAlias = Callable[[float], Awaitable[None]]
#: Told of a failed attempt that the policy would retry, and answers whether to retry: the
#: breaker's say (it counts the failure, and says no once it has opened).
KeepTrying: TypeAlias = Callable[[LeadError], Awaitable[bool]]
#: Told of every failed attempt, retried or not, before the decision. It runs inline, so it
#: must be cheap and must not raise.
FailureHook: TypeAlias = Callable[[LeadError], None]
#: Whether this process could not run for a while between two times of the driver's clock
#: (:meth:`streamproc.provider.stall.LoopWatch.stalled`).
Stalled: TypeAlias = Callable[[float, float], bool]

#: Attempts of one call cut short by our own stalls that are retried beyond the policy's: a
#: process that keeps freezing gives up on the call (``LocalStall``, retriable from the DLQ)
#: rather than loop; three covers a freeze and the catch-up that follows it.
MAX_STALLS = 3


@dataclass(frozen=True, slots=True)
class Attempted(Generic[T]):
    """What the successful attempt returned, after ``attempts`` attempts (1: the first one
    succeeded) and ``elapsed_s`` seconds of the driver's clock, waits included."""

    value: T
    attempts: int
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class RetryDriver:
    """Runs one logical call as at most ``policy.max_retries + 1`` attempts.

    ``peer`` names the other side in messages (``"provider"``, ``"clay webhook"``).
    ``timeout_s`` is the bound the caller puts on each attempt, named in a timeout's message.
    ``timeouts`` are the caller's library's own timeout errors (``httpx.TimeoutException``),
    treated as ``TimeoutError`` is. ``stalled`` tells a timeout of ours from the peer's
    (None: every timeout is the peer's).
    """

    policy: RetryPolicy
    peer: str
    timeout_s: float
    timeouts: tuple[type[Exception], ...] = ()
    sleep: Sleep = asyncio.sleep
    rng: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic
    stalled: Stalled | None = None

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        keep_trying: KeepTrying | None = None,
        on_failure: FailureHook | None = None,
    ) -> Attempted[T]:
        """Await ``attempt()`` until it returns, retrying what the policy retries.

        ``attempt`` returns the result of an answer that means success, or raises the
        :class:`~streamproc.errors.LeadError` that its answer (or its missing answer) means;
        a timeout it lets through. After each failure ``on_failure`` hears it; when the
        policy would retry it, ``keep_trying`` is asked; on yes the driver waits and makes
        the next attempt, on no it raises the failure (noting the number of calls when there
        was more than one).
        """
        started = self.clock()
        attempts = stalls = 0
        while True:
            attempts += 1
            try:
                value = await self._attempt(attempt)
            except LeadError as exc:
                failure = exc
            else:
                return Attempted(value, attempts, self.clock() - started)
            if on_failure is not None:
                on_failure(failure)
            if isinstance(failure, LocalStall):
                stalls += 1
                retry = stalls <= MAX_STALLS
            else:
                retry = self.policy.should_retry(failure, attempts - 1 - stalls)
            if retry and keep_trying is not None:
                retry = await keep_trying(failure)
            if not retry:
                if attempts > 1:
                    failure.add_note(f"gave up after {attempts} {self.peer} calls")
                raise failure
            if isinstance(failure, LocalStall):
                continue  # the peer was not slow, we were: no backoff owed
            retry_after = failure.retry_after_s if isinstance(failure, RateLimited) else None
            wait_s = self.policy.delay_s(attempts, self.rng, retry_after)
            if tracing.enabled:  # a span event of the call (docs/tracing.md)
                tracing.retry_event(attempts, failure.error_class, wait_s)
            await self.sleep(wait_s)

    async def _attempt(self, attempt: Callable[[], Awaitable[T]]) -> T:
        began = self.clock()
        try:
            return await attempt()
        except TimeoutError as exc:
            raise self._timed_out(began) from exc
        except self.timeouts as exc:
            raise self._timed_out(began) from exc

    def _timed_out(self, began: float) -> ProviderTimeout:
        # Any timeout may have been billed, even a connect timeout: the request may have
        # gone out (the aiohttp transport reports some disconnects after sending as
        # ConnectTimeout), and counting a charge that never came only costs budget.
        if self.stalled is not None and self.stalled(began, self.clock()):
            return LocalStall(
                f"{self.peer} call timed out after {self.timeout_s:g}s while this process "
                "could not run (event loop stalled or process frozen)",
                maybe_charged=True,
            )
        return ProviderTimeout(
            f"{self.peer} did not answer within {self.timeout_s:g}s", maybe_charged=True
        )
