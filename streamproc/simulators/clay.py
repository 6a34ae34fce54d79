"""A simulator of Clay's asynchronous protocol (``streamproc mock-provider --mode clay``).

It plays a Clay table: webhooks take rows and answer at once with no data; a while later
the table's HTTP API column POSTs the enriched row to streamproc's callback receiver.
Like the real thing, it is not always tidy: a callback may come twice, never, or carry an
error row instead of data.

Endpoints
---------
``POST /webhook/<name>``
    A table webhook (any name; each is counted apart). Needs ``x-clay-webhook-auth:
    <webhook_token>`` when a token is configured (401 otherwise), a JSON object with a
    string ``lead_id`` (400 otherwise). A share ``rate_limit_rate`` of rows gets ``429``
    with ``Retry-After: <retry_after_s>``; a webhook past ``webhook_row_limit`` rows gets
    ``410``. Otherwise ``200 {"status": "queued"}``, and the row's callback is planned.
``GET /stats``
    ``rows_total``, ``rows_by_webhook`` (path -> rows accepted), ``callbacks_sent`` (HTTP
    requests made), ``callbacks_by_status``, ``callbacks_by_answer`` (the receiver's
    ``status``/``outcome``), ``planned`` (rows by plan: ``data``, ``error``, ``missing``,
    ``duplicate``), ``unauthorized``, ``rate_limited``, ``over_limit``,
    ``callbacks_failed`` (gave up after retries), ``in_flight`` (callbacks still to send).
``GET /healthz``
    200.

The callback
------------
After a delay drawn uniformly from ``[min_delay_ms, max_delay_ms]``, one POST to
``callback_url`` with ``{"lead_id", "correlation_id", "data": {...}, "credits"}`` or, for
an error row, ``{"lead_id", "correlation_id", "error"}``, authenticated as the receiver
expects (``callback_auth``: the secret in ``callback_auth_header``, or ``sha256=`` HMAC of
the body). Per row, one uniform draw decides the plan: below ``missing_rate`` no callback
ever; then below ``+ error_rate`` an error row; else data. Independently, a share
``duplicate_rate`` of called-back rows is sent a second time, identical, after another
delay. A callback that gets no answer, a 5xx or a 503 is retried ``callback_retries`` times
(after 0.5 s, 1 s, then every 2 s), as an HTTP API column would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiohttp import web

from streamproc.clay.callback import sign
from streamproc.clay.submitter import AUTH_HEADER
from streamproc.logs import get_logger
from streamproc.settings import CallbackAuth
from streamproc.signals import until_signalled
from streamproc.simulators.provider import _domain_of, _enrichment, serve_app

__all__ = [
    "ClaySimulator",
    "ClaySimulatorConfig",
    "ClaySimulatorStats",
    "RunningSimulator",
    "run_clay_simulator",
    "serve_clay_simulator",
]

log = get_logger(__name__)

#: Longest wait between two attempts of a callback.
_MAX_BACKOFF_S = 2.0


@dataclass(frozen=True, slots=True)
class ClaySimulatorConfig:
    """How the simulated Clay table behaves. Rates are probabilities in ``[0, 1]``."""

    callback_url: str
    host: str = "127.0.0.1"
    port: int = 8099
    callback_secret: str | None = field(default=None, repr=False)
    callback_auth: CallbackAuth = CallbackAuth.HEADER
    callback_auth_header: str = "X-Streamproc-Callback-Auth"
    webhook_token: str | None = field(default=None, repr=False)
    min_delay_ms: float = 200.0
    max_delay_ms: float = 2_000.0
    duplicate_rate: float = 0.0
    missing_rate: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: float = 0.2
    webhook_row_limit: int = 50_000
    credits_per_row: int = 6
    callback_retries: int = 3
    callback_timeout_s: float = 10.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "missing_rate", "error_rate", "rate_limit_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.missing_rate + self.error_rate > 1.0:
            raise ValueError("missing_rate + error_rate must not exceed 1")
        if not 0 <= self.min_delay_ms <= self.max_delay_ms:
            raise ValueError("need 0 <= min_delay_ms <= max_delay_ms")
        if not self.callback_url.startswith(("http://", "https://")):
            raise ValueError("callback_url must be an http(s) URL")
        if self.webhook_row_limit < 1 or self.callback_retries < 0 or self.credits_per_row < 0:
            raise ValueError("webhook_row_limit >= 1, callback_retries >= 0, credits >= 0")
        if not 0 <= self.port <= 65_535:
            raise ValueError("port must be between 0 and 65535")


@dataclass(slots=True)
class ClaySimulatorStats:
    rows_by_webhook: Counter[str] = field(default_factory=Counter)
    planned: Counter[str] = field(default_factory=Counter)
    callbacks_sent: int = 0
    callbacks_by_status: Counter[int] = field(default_factory=Counter)
    callbacks_by_answer: Counter[str] = field(default_factory=Counter)
    callbacks_failed: int = 0
    unauthorized: int = 0
    rate_limited: int = 0
    over_limit: int = 0
    in_flight: int = 0
    #: Per lead id: the receiver's answers to its callbacks, in order, as
    #: ``"<kind>:<answer>"`` (kind ``data`` or ``error``; answer ``enriched``,
    #: ``error_row``, ``duplicate``, ``http_<status>`` or ``failed``).
    answers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rows_total(self) -> int:
        return sum(self.rows_by_webhook.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "rows_total": self.rows_total,
            "rows_by_webhook": dict(self.rows_by_webhook),
            "planned": dict(self.planned),
            "callbacks_sent": self.callbacks_sent,
            "callbacks_by_status": {str(k): v for k, v in sorted(self.callbacks_by_status.items())},
            "callbacks_by_answer": dict(self.callbacks_by_answer),
            "callbacks_failed": self.callbacks_failed,
            "unauthorized": self.unauthorized,
            "rate_limited": self.rate_limited,
            "over_limit": self.over_limit,
            "in_flight": self.in_flight,
        }


class ClaySimulator:
    """The simulator's state and handlers; :meth:`app` is the aiohttp application."""

    def __init__(self, config: ClaySimulatorConfig) -> None:
        self.config = config
        self.stats = ClaySimulatorStats()
        self._rng = random.Random(config.seed)
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhook/{name}", self._webhook)
        app.router.add_get("/stats", self._get_stats)
        app.router.add_get("/healthz", self._healthz)
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _startup(self, _: web.Application) -> None:
        self._http = httpx.AsyncClient(timeout=self.config.callback_timeout_s)

    async def _shutdown(self, _: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            await self._http.aclose()

    # --- the webhook ---------------------------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.Response:
        cfg = self.config
        path = request.path
        if cfg.webhook_token is not None and request.headers.get(AUTH_HEADER) != cfg.webhook_token:
            self.stats.unauthorized += 1
            return _json(401, {"error": "invalid webhook auth"})
        try:
            row = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("lead_id"), str):
            return _json(400, {"error": "row must be a JSON object with a lead_id"})
        if self._rng.random() < cfg.rate_limit_rate:
            self.stats.rate_limited += 1
            return _json(429, {"error": "slow down"}, {"Retry-After": f"{cfg.retry_after_s:g}"})
        if self.stats.rows_by_webhook[path] >= cfg.webhook_row_limit:
            self.stats.over_limit += 1
            return _json(410, {"error": "webhook row limit reached"})
        self.stats.rows_by_webhook[path] += 1
        self._plan(row)
        return _json(200, {"status": "queued"})

    def _plan(self, row: dict[str, Any]) -> None:
        cfg = self.config
        draw = self._rng.random()
        if draw < cfg.missing_rate:
            self.stats.planned["missing"] += 1
            return
        lead_id = str(row["lead_id"])
        body: dict[str, Any] = {"lead_id": lead_id, "correlation_id": row.get("correlation_id")}
        if draw < cfg.missing_rate + cfg.error_rate:
            kind = "error"
            body["error"] = "simulated enrichment failure"
        else:
            kind = "data"
            domain = _domain_of(row) or "unknown.example"
            body["data"] = _enrichment(domain)
            body["credits"] = cfg.credits_per_row
        self.stats.planned[kind] += 1
        times = 1
        if self._rng.random() < cfg.duplicate_rate:
            times = 2
            self.stats.planned["duplicate"] += 1
        delays = [self._delay_s() for _ in range(times)]
        task = asyncio.get_running_loop().create_task(
            self._deliver(kind, orjson.dumps(body), lead_id, delays)
        )
        self._tasks.add(task)
        self.stats.in_flight += 1
        task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.stats.in_flight -= 1

    def _delay_s(self) -> float:
        cfg = self.config
        return self._rng.uniform(cfg.min_delay_ms, cfg.max_delay_ms) / 1000.0

    # --- the callback --------------------------------------------------------------------------

    async def _deliver(self, kind: str, body: bytes, lead_id: str, delays: list[float]) -> None:
        for delay in delays:
            await asyncio.sleep(delay)
            answer = await self._send(body)
            self.stats.answers.setdefault(lead_id, []).append(f"{kind}:{answer}")

    async def _send(self, body: bytes) -> str:
        cfg = self.config
        assert self._http is not None
        headers = {"Content-Type": "application/json"}
        if cfg.callback_secret is not None:
            headers[cfg.callback_auth_header] = (
                sign(cfg.callback_secret, body)
                if cfg.callback_auth is CallbackAuth.HMAC
                else cfg.callback_secret
            )
        for attempt in range(cfg.callback_retries + 1):
            if attempt:
                await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            self.stats.callbacks_sent += 1
            try:
                response = await self._http.post(cfg.callback_url, content=body, headers=headers)
            except httpx.HTTPError:
                self.stats.callbacks_by_status[0] += 1
                continue
            self.stats.callbacks_by_status[response.status_code] += 1
            if response.status_code >= 500:
                continue
            answer = _answer_of(response)
            self.stats.callbacks_by_answer[answer] += 1
            return answer
        self.stats.callbacks_failed += 1
        return "failed"

    # --- the rest ------------------------------------------------------------------------------

    async def _get_stats(self, _: web.Request) -> web.Response:
        return _json(200, self.stats.to_json())

    async def _healthz(self, _: web.Request) -> web.Response:
        return _json(200, {"status": "ok"})


def _answer_of(response: httpx.Response) -> str:
    if response.status_code != 200:
        return f"http_{response.status_code}"
    try:
        payload = response.json()
    except ValueError:
        return "http_200"
    if not isinstance(payload, dict):
        return "http_200"
    return str(payload.get("outcome") or payload.get("status") or "http_200")


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A served simulator: its base URL (webhooks are ``<url>/webhook/<name>``) and state."""

    url: str
    simulator: ClaySimulator

    @property
    def stats(self) -> ClaySimulatorStats:
        return self.simulator.stats

    def webhook(self, name: str) -> str:
        return f"{self.url}/webhook/{name}"


@asynccontextmanager
async def serve_clay_simulator(config: ClaySimulatorConfig) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator while the block runs (``config.port`` 0 picks a free port)."""
    simulator = ClaySimulator(config)
    async with serve_app(simulator.app(), config.host, config.port) as base_url:
        yield RunningSimulator(base_url, simulator)


def run_clay_simulator(config: ClaySimulatorConfig) -> None:
    """Serve until SIGINT or SIGTERM (blocking; for the CLI)."""
    asyncio.run(_serve_until_signalled(config))


async def _serve_until_signalled(config: ClaySimulatorConfig) -> None:
    async with serve_clay_simulator(config) as running:
        log.info(
            "clay simulator listening",
            webhooks=running.webhook("<name>"),
            stats=f"{running.url}/stats",
            callback_url=config.callback_url,
            config=repr(config),
        )
        await until_signalled()
