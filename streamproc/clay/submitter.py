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
  submission for a day);
* retries are the synchronous provider's, by the same
  :class:`~streamproc.provider.driver.RetryDriver`: 429s, 5xx, timeouts and connection
  errors are retried in-process (``provider_max_retries``, ``provider_backoff_*``), the
  breaker is told of each failed attempt through ``keep_trying``, and every timeout is
  ``maybe_charged`` (Clay may have taken the row);
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx
import orjson

from streamproc.clay.config import ClayConfig
from streamproc.errors import InvalidPayload, LeadError, RateLimited
from streamproc.processing.pacing import Pacer
from streamproc.provider.classify import classify_response
from streamproc.provider.driver import KeepTrying, RetryDriver, Sleep
from streamproc.provider.http_errors import TIMEOUTS, request_errors
from streamproc.resilience.token_bucket import TokenBucket

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
        config: ClayConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        on_attempt: SubmitHook | None = None,
    ) -> None:
        self._timeout_s = config.timeout_s
        # The synchronous provider's retries (provider/client.py's retry_driver), on httpx.
        self._retry = RetryDriver(
            config.retry,
            peer="clay webhook",
            timeout_s=config.timeout_s,
            timeouts=TIMEOUTS,
            sleep=sleep,
            rng=rng,
            clock=clock,
        )
        self._transport = transport
        self.pacer = Pacer(TokenBucket(config.rate_per_s, config.burst), clock=clock, sleep=sleep)
        self.on_attempt = on_attempt
        self._headers: dict[str, str] = {"Content-Type": "application/json"}
        if config.webhook_auth_token is not None:
            self._headers[AUTH_HEADER] = config.webhook_auth_token.get_secret_value()
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
        keep_trying: KeepTrying | None = None,
    ) -> SubmitResult:
        """POST one row to ``url``, paced, retrying what a moment later may fix.

        Raises the :class:`~streamproc.errors.LeadError` of the last attempt when retries
        run out or the answer is not retried in-process. An attempt that timed out, or lost
        its connection after it was made, is ``maybe_charged``: Clay may have taken the row.
        """
        http = self._http
        if http is None:
            raise RuntimeError("ClaySubmitter.start() must be awaited before submit()")

        async def attempt() -> int:
            await self.pacer.acquire()
            status = await self._post(http, url, row)
            self._report("accepted")
            return status

        done = await self._retry.run(attempt, keep_trying=keep_trying, on_failure=self._failed)
        return SubmitResult(done.attempts, done.value)

    async def _post(self, http: httpx.AsyncClient, url: str, row: bytes) -> int:
        """One POST; its errors translated, but for a timeout, which the driver translates."""
        # The URL is a credential of sorts: request_errors names only the error's class.
        with request_errors("clay webhook"):
            async with asyncio.timeout(self._timeout_s):
                response = await http.post(url, content=row)
        check_webhook_answer(response.status_code, response.headers, time.time)
        return response.status_code

    def _failed(self, exc: LeadError) -> None:
        """A failed attempt: a 429 pauses every submission (capped); each is reported."""
        if isinstance(exc, RateLimited):
            asked = DEFAULT_RETRY_AFTER_S if exc.retry_after_s is None else exc.retry_after_s
            self.pacer.pause(min(asked, self._retry.policy.retry_after_max_s))
            self._report("rate_limited")
        else:
            self._report("error" if exc.retriable else "rejected")

    def _report(self, result: str) -> None:
        if self.on_attempt is not None:
            self.on_attempt(result)
