"""Clay's table webhook, the submitting half of Clay's asynchronous protocol.

A row POSTed to a Clay table webhook is answered at once with no data; Clay then runs the
table's enrichment columns and, much later, an HTTP API column calls streamproc's
callback receiver with the result (:mod:`streamproc.clay`). This module only submits:

* each row carries the lead's fields plus ``lead_id`` and ``correlation_id`` columns, and
  the ``x-clay-webhook-auth`` header when a token is configured;
* submissions are paced by a token bucket (``clay_rate_per_s``, ``clay_burst``; Clay's
  documented pace is 10 rows/s with bursts of 20), shared by every lead of the process;
* a ``429`` pauses *every* submission for its ``Retry-After`` (1 s when absent; at most
  ``provider_retry_after_max_s``, so one ``Retry-After: 86400`` cannot stop every
  submission for a day) and the row is retried in-process; 5xx, timeouts and connection
  errors are retried with the provider backoff (``provider_max_retries``,
  ``provider_backoff_*``); the breaker is told of each failed attempt through
  ``keep_trying``, exactly as for the synchronous provider;
* any ``2xx`` is acceptance; other answers are translated with the synchronous provider's
  table (:func:`~streamproc.provider.classify.classify_response`): 401/403 auth, 402
  credits, other 4xx rejected.

Which webhook a row goes to is decided by the caller (:mod:`streamproc.clay.webhooks`).
httpx errors are translated here and never escape.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx
import orjson

from streamproc.clay.pacing import Pacer
from streamproc.errors import InvalidPayload, LeadError, ProviderError, ProviderTimeout, RateLimited
from streamproc.provider.classify import classify_response
from streamproc.provider.retry import RetryPolicy
from streamproc.resilience.token_bucket import TokenBucket
from streamproc.settings import Settings

__all__ = [
    "AUTH_HEADER",
    "ClaySubmitter",
    "SubmitHook",
    "SubmitResult",
    "check_webhook_answer",
    "webhook_row",
]

#: The header Clay's webhooks read their auth token from.
AUTH_HEADER = "x-clay-webhook-auth"
#: Pause after a 429 that did not say for how long.
DEFAULT_RETRY_AFTER_S = 1.0

#: Told of every webhook attempt: ``accepted``, ``rate_limited``, ``rejected``, ``error``.
SubmitHook: TypeAlias = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """Clay accepted the row after ``attempts`` HTTP calls."""

    attempts: int
    status: int


def webhook_row(lead: Mapping[str, Any], lead_id: str, correlation_id: str) -> bytes:
    """The row for Clay: the lead's fields, ``lead_id`` and ``correlation_id`` as columns."""
    try:
        return orjson.dumps({**lead, "lead_id": lead_id, "correlation_id": correlation_id})
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise InvalidPayload("lead cannot be encoded as JSON") from exc


def check_webhook_answer(status: int, headers: Mapping[str, str], now: Callable[[], float]) -> None:
    """Return when Clay accepted the row (any 2xx); else raise the LeadError it means."""
    if 200 <= status <= 299:
        return
    # Never 200 here, so the body is never parsed: only the status and Retry-After matter.
    classify_response(status, b"", headers, default_credits=0, now=now)


class ClaySubmitter:
    """POSTs rows to Clay webhooks, paced, with retries. One per process."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        on_attempt: SubmitHook | None = None,
    ) -> None:
        self._timeout_s = settings.provider_timeout_s
        self._policy = RetryPolicy.from_settings(settings)
        self._transport = transport
        self._sleep = sleep
        self._rng = rng
        self.pacer = Pacer(
            TokenBucket(settings.clay_rate_per_s, settings.clay_burst), clock=clock, sleep=sleep
        )
        self.on_attempt = on_attempt
        self._headers: dict[str, str] = {"Content-Type": "application/json"}
        if settings.clay_webhook_auth_token is not None:
            self._headers[AUTH_HEADER] = settings.clay_webhook_auth_token.get_secret_value()
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self._timeout_s),
                headers=self._headers,
                # A redirect would resend the webhook token to wherever it points.
                follow_redirects=False,
            )

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def submit(
        self,
        url: str,
        row: bytes,
        *,
        keep_trying: Callable[[LeadError], Awaitable[bool]] | None = None,
    ) -> SubmitResult:
        """POST one row to ``url``, paced, retrying what a moment later may fix.

        Raises the :class:`~streamproc.errors.LeadError` of the last attempt when retries
        run out or the answer is not retried in-process. An attempt without an answer after
        the connection was made is ``maybe_charged``: Clay may have taken the row.
        """
        http = self._http
        if http is None:
            raise RuntimeError("ClaySubmitter.start() must be awaited before submit()")
        attempts = 0
        while True:
            attempts += 1
            await self.pacer.acquire()
            try:
                status = await self._attempt(http, url, row)
                self._report("accepted")
                return SubmitResult(attempts, status)
            except LeadError as exc:
                retry_after: float | None = None
                if isinstance(exc, RateLimited):
                    retry_after = exc.retry_after_s
                    asked = DEFAULT_RETRY_AFTER_S if retry_after is None else retry_after
                    self.pacer.pause(min(asked, self._policy.retry_after_max_s))
                    self._report("rate_limited")
                else:
                    self._report("error" if exc.retriable else "rejected")
                retry = self._policy.should_retry(exc, attempts - 1)
                if retry and keep_trying is not None:
                    retry = await keep_trying(exc)
                if not retry:
                    if attempts > 1:
                        exc.add_note(f"gave up after {attempts} webhook calls")
                    raise
                delay = self._policy.delay_s(attempts, self._rng, retry_after)
            await self._sleep(delay)

    async def _attempt(self, http: httpx.AsyncClient, url: str, row: bytes) -> int:
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await http.post(url, content=row)
        except (httpx.TimeoutException, TimeoutError) as exc:
            # A connect timeout never reached Clay; any later one may have added the row.
            raise ProviderTimeout(
                f"clay webhook did not answer within {self._timeout_s:g}s",
                maybe_charged=not isinstance(exc, httpx.ConnectTimeout),
            ) from exc
        except httpx.RequestError as exc:
            # The URL is a credential of sorts; the class name says enough.
            raise ProviderError(
                f"clay webhook unreachable: {type(exc).__name__}",
                maybe_charged=not isinstance(exc, httpx.ConnectError),
            ) from exc
        check_webhook_answer(response.status_code, response.headers, time.time)
        return response.status_code

    def _report(self, result: str) -> None:
        if self.on_attempt is not None:
            self.on_attempt(result)
