"""The provider's HTTP client: the I/O shell around :mod:`.classify` and :mod:`.driver`.

One :class:`ProviderClient` per process, shared by every in-flight lead. It owns one
``httpx.AsyncClient`` whose connection pool is sized to ``max_in_flight``, so no lead ever
waits for a socket behind another. It knows nothing about the breaker or the budget: it
makes one *logical* call (up to ``provider_max_retries + 1`` HTTP calls) and either returns
a :class:`ProviderCallResult` or raises the :class:`~streamproc.errors.LeadError` of the
last attempt. httpx and orjson errors are translated here and never escape.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeAlias

import httpx
import orjson

from streamproc import __version__, tracing
from streamproc.errors import InvalidPayload
from streamproc.provider.api import Enrichment, HeadersHook, LeadIn, idempotency_key
from streamproc.provider.classify import ProviderResult, classify_response
from streamproc.provider.config import ProviderConfig
from streamproc.provider.driver import KeepTrying, RetryDriver, Sleep, Stalled
from streamproc.provider.http_errors import TIMEOUTS, unreachable
from streamproc.provider.retry import RetryPolicy
from streamproc.settings import Settings

__all__ = ["AttemptHook", "ProviderCallResult", "ProviderClient", "pool_limits", "retry_driver"]

#: Called after every HTTP attempt with the status (``None`` when no answer came: timeout or
#: connection error) and the attempt's duration in seconds. Meant for metrics; it runs
#: inline on the event loop, so it must be cheap and must not raise.
AttemptHook: TypeAlias = Callable[[int | None, float], None]


@dataclass(frozen=True, slots=True)
class ProviderCallResult:
    """A successful enrichment and what it cost.

    ``attempts`` counts HTTP calls made (1 when the first one succeeded); ``latency_s`` is
    the wall time of the whole logical call, backoff sleeps included.
    """

    data: dict[str, Any]
    credits: int
    attempts: int
    latency_s: float


def pool_limits(settings: Settings | ProviderConfig) -> httpx.Limits:
    """One connection per lead in flight: fewer would queue leads behind each other in the
    pool (and count that wait against their timeout); more could never be used."""
    return httpx.Limits(
        max_connections=settings.max_in_flight,
        max_keepalive_connections=settings.max_in_flight,
    )


def retry_driver(
    settings: Settings | ProviderConfig,
    peer: str,
    *,
    sleep: Sleep = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
    stalled: Stalled | None = None,
) -> RetryDriver:
    """The retry driver of httpx calls to ``peer``: the ``provider_*`` retry settings, each
    call bounded by ``provider_timeout_s``, and httpx's timeouts counted as timeouts (ours,
    when ``stalled`` says this process could not run meanwhile)."""
    if isinstance(settings, ProviderConfig):
        policy, timeout_s = settings.retry, settings.timeout_s
    else:
        policy, timeout_s = RetryPolicy.from_settings(settings), settings.provider_timeout_s
    return RetryDriver(
        policy,
        peer=peer,
        timeout_s=timeout_s,
        timeouts=TIMEOUTS,
        sleep=sleep,
        rng=rng,
        clock=clock,
        stalled=stalled,
    )


class ProviderClient:
    """Calls the enrichment provider for one lead at a time, concurrently, with retries.

    It is the ``http`` provider (docs/provider.md, "Synchronous HTTP") behind the public
    interface (:class:`~streamproc.provider.api.Provider`): :meth:`call` is one attempt,
    and the pipeline drives the retries; :meth:`enrich` is one lead with its retries.

    Use as ``async with ProviderClient(config) as client`` or call :meth:`start` and
    :meth:`close`. ``config`` is its :class:`~streamproc.provider.config.ProviderConfig`
    (the whole settings are taken too, and narrowed at once, for tools and tests).
    ``transport`` replaces the network (``httpx.MockTransport`` in tests); ``sleep`` and
    ``rng`` drive the backoff, ``clock`` (monotonic seconds) the latencies.
    """

    def __init__(
        self,
        config: ProviderConfig | Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        on_attempt: AttemptHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(config, Settings):
            config = ProviderConfig.from_settings(config, "http")
        self._url = config.require_url()
        self._timeout_s = config.timeout_s
        self._default_credits = config.credits_per_lead
        self._retry = retry_driver(config, "provider", sleep=sleep, rng=rng, clock=clock)
        self._limits = pool_limits(config)
        self._transport = transport
        self._config = config
        self._clock = clock
        self.on_attempt = on_attempt
        self.on_headers: HeadersHook | None = None
        self._auth_headers: dict[bytes, bytes] = {}
        if config.api_key is not None:
            key = config.api_key.get_secret_value()
            header = config.auth_header
            value = f"Bearer {key}" if header.lower() == "authorization" else key
            self._auth_headers[header.encode("ascii")] = value.encode("utf-8")
        self._http: httpx.AsyncClient | None = None
        #: The transport every call is sent to, straight (see :meth:`_send`).
        self._wire: httpx.AsyncBaseTransport | None = None
        # Built once: ``AsyncClient.post`` re-parses the URL and merges default headers on
        # every call, about a seventh of the process's CPU at 1,000 calls/s (bench/).
        self._target = httpx.URL(self._url)
        self._headers: list[tuple[bytes, bytes]] = [
            # Host given, so httpx does not work it out from the URL on every request.
            (b"Host", self._target.netloc),
            (b"Content-Type", b"application/json"),
            (b"User-Agent", f"streamproc/{__version__}".encode()),
            *self._auth_headers.items(),
        ]
        # No per-phase timeouts for the transport: every call is bounded as a whole by
        # asyncio.timeout (the pipeline's, or ``_send``'s own), and per-phase timers would
        # be one more timer armed and cancelled per call (bench/profiles/).
        self._extensions: dict[str, Any] = {"timeout": {}}

    async def start(self) -> None:
        """Open the connection pool. Calling it twice is harmless."""
        if self._http is not None:
            return
        transport = self._transport or _network_transport(self._config.http_transport, self._limits)
        self._wire = transport
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self._timeout_s),
            # A redirect from an enrichment API is a misconfiguration, and following it
            # would resend the API key to wherever it points.
            follow_redirects=False,
        )

    async def close(self) -> None:
        """Close the connection pool. Calling it twice, or before start, is harmless."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    #: One lead per call: the contract has no batch form.
    batch_size = 1
    #: It calls ``provider_url``: ``run`` refuses to start without one (docs/provider.md).
    needs_provider_url = True

    @property
    def url(self) -> str:
        """The endpoint every call goes to (named on the provider call's span)."""
        return self._url

    async def call(self, leads: Sequence[LeadIn]) -> list[Enrichment]:
        """One attempt at one lead (the :class:`~streamproc.provider.api.Provider` call);
        raises the :class:`~streamproc.errors.LeadError` its answer means."""
        wire = self._wire
        if wire is None:
            raise RuntimeError("ProviderClient.start() must be awaited before call()")
        if len(leads) != 1:
            raise ValueError("the http provider takes one lead per call")
        (one,) = leads
        body = _encode(one.lead)
        headers = [*self._headers, (b"Idempotency-Key", one.idempotency_key.encode("ascii"))]
        # The pipeline bounds every call (ProviderCalls: provider_timeout_s), so no second
        # asyncio.timeout here: one timer per call, not two.
        response = await self._send(wire, body, headers, bounded=False)
        if self.on_headers is not None:
            self.on_headers(response.headers)
        result = classify_response(
            response.status_code,
            response.content,
            response.headers,
            default_credits=self._default_credits,
            now=time.time,
        )
        return [Enrichment(result.data, result.credits)]

    async def enrich(
        self,
        lead: Mapping[str, Any],
        lead_id: str,
        *,
        keep_trying: KeepTrying | None = None,
    ) -> ProviderCallResult:
        """Enrich one lead, retrying transient failures per the :class:`RetryPolicy`.

        Raises the :class:`~streamproc.errors.LeadError` of the last attempt once retries
        run out or the failure is not retried in-process (4xx, 401/403, 402). The
        ``Idempotency-Key`` is the lead's :func:`~streamproc.provider.api.idempotency_key`
        on every attempt, so the provider can charge a retried lead once. ``keep_trying`` is
        told of each failed attempt that would be retried and answers whether to retry: the
        breaker counts every failed call through it, and stops retries once it has opened,
        so an outage costs no more calls than it must.
        """
        wire = self._wire
        if wire is None:
            raise RuntimeError("ProviderClient.start() must be awaited before enrich()")
        body = _encode(lead)
        key = idempotency_key(lead_id, lead).encode("ascii")
        headers = [*self._headers, (b"Idempotency-Key", key)]

        async def attempt() -> ProviderResult:
            response = await self._send(wire, body, headers)
            return classify_response(
                response.status_code,
                response.content,
                response.headers,
                default_credits=self._default_credits,
                now=time.time,
            )

        call = self._retry.run(attempt, keep_trying=keep_trying)
        # Tracing: the call's span (docs/tracing.md); its context goes in each attempt.
        done = await (tracing.provider_call(call, self._url) if tracing.enabled else call)
        return ProviderCallResult(
            data=done.value.data,
            credits=done.value.credits,
            attempts=done.attempts,
            latency_s=done.elapsed_s,
        )

    async def _send(
        self,
        wire: httpx.AsyncBaseTransport,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        bounded: bool = True,
    ) -> httpx.Response:
        """One HTTP call, reported to ``on_attempt``; its errors translated, but for a
        timeout, which the retry driver translates.

        The prebuilt request goes straight to the transport: ``AsyncClient.send`` adds an
        auth flow, a redirect loop (we follow none), cookie extraction and event hooks that
        a fixed endpoint with a fixed key does not need, about a third of httpx's share of
        the CPU per lead (bench/profiles/). ``bounded`` bounds the whole call by
        ``provider_timeout_s`` (httpx's and aiohttp's timeouts bound each phase, not the
        call: a server trickling bytes could hold a lead far longer); the pipeline's calls
        are bounded by their caller already."""
        began = self._clock()
        if tracing.enabled:
            headers = [*headers, *tracing.http_headers()]
        # request_errors' translation, inline: no context manager per call (http_errors).
        try:
            if bounded:
                async with asyncio.timeout(self._timeout_s):
                    response = await self._exchange(wire, body, headers)
            else:
                response = await self._exchange(wire, body, headers)
        except (httpx.TimeoutException, TimeoutError):
            self._report(None, began)
            raise
        except httpx.RequestError as exc:
            self._report(None, began)
            raise unreachable("provider", exc) from exc
        self._report(response.status_code, began)
        return response

    async def _exchange(
        self, wire: httpx.AsyncBaseTransport, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> httpx.Response:
        """Send one request and read its whole answer.

        The request is given its stream and its Content-Length rather than ``content=``:
        the same request, headers and body, without httpx's content encoding and header
        defaults on every call (10.8 → 3.6 µs per request, measured with timeit)."""
        request = httpx.Request(
            "POST",
            self._target,
            headers=[*headers, (b"Content-Length", str(len(body)).encode())],
            stream=httpx.ByteStream(body),
            extensions=self._extensions,
        )
        request.read()
        response = await wire.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _report(self, status: int | None, began: float) -> None:
        if self.on_attempt is not None:
            self.on_attempt(status, self._clock() - began)


def _encode(lead: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(lead if isinstance(lead, dict) else dict(lead))
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise InvalidPayload("lead cannot be encoded as JSON") from exc


def _network_transport(kind: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The transport that carries calls, per ``provider_http_transport``.

    httpx stays the API; its own asyncio connection pool costs a lot of CPU per call with
    hundreds of connections (httpx issue 3215): on this project's benchmark (bench/, 1,000
    calls in flight against the mock provider) httpx's transport managed 26 calls/s and
    httpx-aiohttp's transport 749 calls/s. So aiohttp's transport is the default.
    """
    if kind == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport(limits=limits)
