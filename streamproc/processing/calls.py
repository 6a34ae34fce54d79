"""Calls to any :class:`~streamproc.provider.api.Provider`, one lead or a batch at a time.

The handler asks for one admitted lead at a time (:meth:`ProviderCalls.enrich`, the
handler's ``Enricher``); here admitted leads are grouped into calls of up to
``provider_batch_size`` leads, a call waiting at most ``provider_batch_linger_ms`` for its
batch to fill. Each call runs through the one retry loop of every provider call
(:class:`~streamproc.provider.driver.RetryDriver`), each attempt bounded by
``provider_timeout_s``:

* a failure of the whole call (429, 5xx, timeout) is retried **as a batch**; each lead's
  ``keep_trying`` (the guard's) is asked, and a lead the guard will not let retry (no
  claim for a call that may have been billed) leaves the batch with the failure;
* a lead answered alone is done: enriched, or failed with its own class (a lead rejected
  inside a batch goes to the DLQ alone); a lead answered with a failure that is retried
  in-process (a per-lead 429 or 5xx) stays in the batch for the next attempt;
* a whole call of several leads **rejected** (a 4xx: it may be one lead's fault) is split
  in halves, each a call of its own, down to single leads, so only the culprit goes to the
  DLQ as ``provider_rejected`` (a 4xx charges nothing; each lead keeps its slice);
* **the breaker counts calls**: of a failed call's leads, only the first hears the failure
  as counting; the others get a copy marked ``shares_call`` that settles without counting;
* **calls are paced** when the provider has a rate limit (``pacer``, :mod:`.pacing`): each
  attempt waits for its slot (outside its timeout), a 429's ``Retry-After`` holds every
  call of the process, and the quota an answer's headers state (``x-ratelimit-*``, for a
  provider with an ``on_headers`` hook) slows the pace until the quota's window resets.

Each lead keeps its own admission, so the cache, single-flight and the budget work per lead
as for single calls: every lead of a batch holds its reserved slice before the call is made
and settles at its own charge. With a batch size of 1 the call is made inline, in the
lead's own task: nothing waits, and no task or future is created.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from streamproc import tracing
from streamproc.errors import (
    InternalError,
    LeadError,
    ProviderError,
    ProviderRejected,
    RateLimited,
)
from streamproc.logs import get_logger
from streamproc.processing.pacing import Pacer
from streamproc.provider.api import Answer, Enrichment, LeadIn, Provider
from streamproc.provider.driver import RetryDriver
from streamproc.resilience.rate_limit import parse_quota

__all__ = ["CallDone", "ProviderCalls"]

log = get_logger(__name__)

KeepTrying = Callable[[LeadError], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class CallDone:
    """One lead's enrichment, its charge and the attempts its call took."""

    data: dict[str, Any]
    credits: int
    attempts: int


@dataclass(slots=True)
class _Member:
    lead: LeadIn
    keep_trying: KeepTrying | None
    future: asyncio.Future[CallDone]

    def done(self, value: CallDone) -> None:
        if not self.future.done():
            self.future.set_result(value)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


def _shared(error: LeadError) -> LeadError:
    """A copy of a whole call's failure for a lead other than the one that counts it."""
    twin = copy.copy(error)
    twin.shares_call = True
    return twin


class ProviderCalls:
    """The handler's ``Enricher`` over any provider. ``batch_size`` is capped by the
    provider's own; ``linger_s`` bounds how long a lead waits for its batch to fill;
    ``pacer`` (``None``: not paced) paces every attempt, ``wall_clock`` (Unix seconds) reads
    a quota's reset given as a time."""

    def __init__(
        self,
        provider: Provider,
        driver: RetryDriver,
        *,
        batch_size: int = 1,
        linger_s: float = 0.0,
        timeout_s: float,
        pacer: Pacer | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.pacer = pacer
        self._wall_clock = wall_clock
        if pacer is not None and hasattr(provider, "on_headers"):
            cast(Any, provider).on_headers = self._learn
        self._driver = driver
        self.batch_size = max(1, min(batch_size, provider.batch_size))
        self._linger_s = linger_s
        self._timeout_s = timeout_s
        # For the provider call's span: a provider that names its endpoint (``url``).
        self._url: str | None = getattr(provider, "url", None)
        self._pending: list[_Member] = []
        self._timer: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.provider.start()

    async def close(self) -> None:
        """Cancel the calls still running (their leads were cancelled before) and close the
        provider."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._calls):
            task.cancel()
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)
        await self.provider.close()

    async def enrich(
        self,
        lead: Mapping[str, Any],
        lead_id: str,
        *,
        keep_trying: KeepTrying | None = None,
    ) -> CallDone:
        """Enrich one admitted lead in the next call; raises its failure as a LeadError."""
        if self.batch_size == 1:
            return await self._one(LeadIn(lead_id, lead), keep_trying)
        loop = asyncio.get_running_loop()
        member = _Member(LeadIn(lead_id, lead), keep_trying, loop.create_future())
        self._pending.append(member)
        if len(self._pending) >= self.batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger_s, self._flush)
        try:
            return await member.future
        except asyncio.CancelledError:
            # Not sent yet: it leaves the batch. Sent: the call goes on for the others.
            if member in self._pending:
                self._pending.remove(member)
            raise

    async def _one(self, lead: LeadIn, keep_trying: KeepTrying | None) -> CallDone:
        """A call of one lead, in the lead's own task: the hot path of single calls, so no
        future and no batch bookkeeping."""
        provider, timeout_s, leads = self.provider, self._timeout_s, (lead,)

        async def attempt() -> Enrichment:
            if self.pacer is None:
                async with asyncio.timeout(timeout_s):
                    answers = await provider.call(leads)
            else:
                answers = await self._paced(self.pacer, leads)
            if len(answers) != 1:
                raise ProviderError(f"provider answered {len(answers)} results for 1 lead")
            answer = answers[0]
            if isinstance(answer, Enrichment):
                return answer
            raise _as_error(answer)

        try:
            call = self._driver.run(attempt, keep_trying=keep_trying)
            # Tracing: the call's span, a child of the lead's (docs/tracing.md).
            done = await (tracing.provider_call(call, self._url) if tracing.enabled else call)
        except LeadError:
            raise
        except Exception as exc:  # a provider's bug fails its lead, never the line
            raise _provider_bug(exc) from exc
        return CallDone(done.value.data, done.value.credits, done.attempts)

    async def _paced(self, pacer: Pacer, leads: Sequence[LeadIn]) -> Sequence[Answer]:
        """One attempt after its slot (the wait is not the provider's: outside the bound);
        a 429's ``Retry-After`` holds the process's every call, not only this one's."""
        await pacer.acquire()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self.provider.call(leads)
        except RateLimited as exc:
            if exc.retry_after_s is not None:
                pacer.pause(min(exc.retry_after_s, self._driver.policy.retry_after_max_s))
            raise

    def _learn(self, headers: Mapping[str, str]) -> None:
        """The provider's ``on_headers``: what an answer says of the API's quota."""
        quota = parse_quota(headers, self._wall_clock())
        if quota is not None and self.pacer is not None:
            self.pacer.learn(quota)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            batch = self._pending[: self.batch_size]
            del self._pending[: self.batch_size]
            task = asyncio.get_running_loop().create_task(self._call(batch))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, batch: list[_Member], tried: int = 0) -> None:
        """One logical call for ``batch``: every member ends done or failed. ``tried``: the
        attempts its members made before, in the call this one was split from."""
        waiting = batch
        attempts = 0

        async def attempt() -> None:
            nonlocal waiting, attempts
            attempts += 1
            live = [m for m in waiting if not m.future.done()]
            waiting = live
            if not live:
                return
            if self.pacer is None:
                async with asyncio.timeout(self._timeout_s):
                    answers = await self.provider.call([m.lead for m in live])
            else:
                answers = await self._paced(self.pacer, [m.lead for m in live])
            if len(answers) != len(live):
                raise ProviderError(
                    f"provider answered {len(answers)} results for {len(live)} leads"
                )
            again: list[_Member] = []
            retry: LeadError | None = None
            for member, answer in zip(live, answers, strict=True):
                if isinstance(answer, Enrichment):
                    member.done(CallDone(answer.data, answer.credits, tried + attempts))
                elif self._driver.policy.should_retry(_as_error(answer), attempts - 1):
                    again.append(member)
                    retry = retry or _as_error(answer)
                else:
                    member.fail(_as_error(answer))
            waiting = again
            if retry is not None:
                raise retry

        async def keep_trying(failure: LeadError) -> bool:
            nonlocal waiting
            kept: list[_Member] = []
            first = True
            for member in waiting:
                if member.future.done():
                    continue
                error = failure if first else _shared(failure)
                first = False
                if member.keep_trying is None or await member.keep_trying(error):
                    kept.append(member)
                else:
                    member.fail(error)
            waiting = kept
            return bool(kept)

        try:
            call = self._driver.run(attempt, keep_trying=keep_trying)
            # A batch's span is a child of the lead whose arrival started the call.
            await (tracing.provider_call(call, self._url) if tracing.enabled else call)
        except LeadError as exc:
            live = [m for m in waiting if not m.future.done()]
            if isinstance(exc, ProviderRejected) and len(live) > 1:
                # A 4xx for a whole bulk request may be one lead's fault: bisect, so only
                # the culprit is rejected. The 4xx charged nothing; each lead keeps its
                # reserved slice for the calls of its half.
                half = len(live) // 2
                tried += attempts
                await asyncio.gather(self._call(live[:half], tried), self._call(live[half:], tried))
                return
            first = True
            for member in waiting:
                if not member.future.done():
                    member.fail(exc if first else _shared(exc))
                    first = False
        except Exception as exc:  # a provider's bug fails its leads, never the line
            bug = _provider_bug(exc)
            first = True
            for member in waiting:
                if not member.future.done():
                    member.fail(bug if first else _shared(bug))
                    first = False
        finally:
            for member in batch:  # cancelled: the leads are cancelled with their tasks
                if not member.future.done():
                    member.future.cancel()


def _provider_bug(exc: Exception) -> InternalError:
    """A provider that raised something other than a LeadError has a bug: it is not
    evidence that the provider's service is down, so it does not count against the breaker
    (internal, retriable later from the DLQ). The request may have gone out: counted as
    possibly billed (over-count, never under-count)."""
    log.error("provider.raised", error=type(exc).__name__, exc_info=exc)
    return InternalError(f"provider raised {type(exc).__name__}", maybe_charged=True)


def _as_error(answer: Answer) -> LeadError:
    if isinstance(answer, LeadError):
        return answer
    return ProviderError(f"provider answered a {type(answer).__name__}, not an Enrichment")
