"""The console's routes on an aiohttp application: the page, its JSON API, the replay.

``GET /console/`` is the page (``static/``: HTML, CSS and vanilla JS; nothing is fetched
from anywhere else, and the Content-Security-Policy says so to the browser). The page
reads, and renders, only what this API returns:

* ``GET /console/api/overview``: breaker and today's transitions, budget and its burn,
  throughput, lag per partition, health, Clay capacity (:func:`payload.overview`), and
  ``waterfall``: each waterfall provider's calls, hits, credits, fill rate and credits per
  found answer, today and over the order's window (folded from the state topic's hit
  records by the waterfall's :class:`~streamproc.waterfall.ledger.HitLedger`; no
  providers without a waterfall);
* ``GET /console/api/dlq?error_class=&key=&since=&until=&retriable=&attempt=&skip=&limit=&all=``:
  a page of DLQ records, read by ``dlq show``'s :func:`~streamproc.replay.show.list_dlq`;
* ``GET /console/api/dlq/record?partition=P&offset=O``: one record whole
  (:func:`~streamproc.replay.detail.detail_json`); these two hold leads and need the read
  or the operator token (:func:`~streamproc.console.auth.check_reader`);
* ``POST /console/api/replay`` ``{"filters": {...}, "max_attempts", "limit", "dry_run"}``:
  the CLI's :class:`~streamproc.replay.replayer.Replayer`; ``dry_run: false`` needs the
  operator token (:mod:`streamproc.console.auth`), one run at a time;
* ``POST /console/api/spending`` ``{"action": "pause"|"resume"|"set_limit", "reason",
  "by", "limit"}``: the group's spending levers, as ``streamproc budget`` pulls them
  (:func:`~streamproc.processing.spending_control.change_spending`); needs the operator
  token; answers the budget as it then stands.

Every route under ``/console`` answers only under a ``Host`` the console knows
(:mod:`streamproc.console.hosts`; 421 otherwise), so a DNS-rebinding page reads nothing.
A bad filter is 400 with the CLI's one line; nothing answered here carries a traceback.
A Kafka error no handler expected (a broker gone mid-read, a transaction fenced during a
replay) is 503 ``{"error": "<ExcType>: <msg>"}`` and one log line, by
:func:`kafka_errors`, the console routes' middleware. Headers are never logged (the token
travels in one).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from streamproc import __version__
from streamproc.console.auth import check_reader, check_token
from streamproc.console.config import ConsoleConfig
from streamproc.console.history import BreakerLog, BurnSeries, ThroughputMeter
from streamproc.console.hosts import HostAllowList
from streamproc.console.lag import LagReader
from streamproc.console.payload import (
    Lag,
    overview,
    replay_options_from_body,
    show_options_from_query,
)
from streamproc.errors import ConfigError, KafkaSetupError, ReplayRefused, StreamprocError
from streamproc.logs import get_logger
from streamproc.ops.http import json_response
from streamproc.replay.detail import detail_json
from streamproc.replay.filters import KNOWN_CLASSES
from streamproc.replay.replayer import Replayer
from streamproc.replay.show import list_dlq, read_dlq_record
from streamproc.resilience.spending import SpendingAction
from streamproc.waterfall.ledger import PREFIX as HITS_PREFIX
from streamproc.waterfall.ledger import HitLedger

__all__ = ["PREFIX", "Console", "console_bind_host", "kafka_errors"]

log = get_logger(__name__)

PREFIX = "/console"
#: The page's files, and their types; nothing else under /console/ is served from disk.
_STATIC = {
    "index.html": "text/html",
    "console.css": "text/css",
    "console.js": "application/javascript",
}
#: The browser may load and call this server only: no CDN, no font, no beacon.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: How often the budget's burn is sampled in the background (from memory; the lag and
#: throughput are read from Kafka only when the overview is asked for).
SAMPLE_S = 5.0
#: The state-topic records the console folds: the breaker's, and the waterfall's hits.
_FOLDED = ("breaker/", HITS_PREFIX)
#: An overview request samples anew when the last sample is older than this.
_FRESH_S = 1.0


def _json(body: Any, status: int = 200) -> web.Response:
    return json_response(body, status, _HEADERS)


def _error(message: str, status: int) -> web.Response:
    return _json({"error": message}, status)


@web.middleware
async def kafka_errors(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """On the console's routes, a Kafka error is a 503 with its type and message, and one
    log line without a traceback (or the request's headers: the token is one), instead of
    aiohttp's 500 and a traceback in the processor's log."""
    if not request.path.startswith(PREFIX):
        return await handler(request)  # type: ignore[no-any-return]
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except KafkaError as exc:
        # aiokafka's str() of most of its errors starts with the type already.
        error = str(exc) if str(exc).startswith(_cls(exc)) else f"{_cls(exc)}: {exc}"
        log.warning("console.kafka_error", path=request.path, error=error)
        return _error(error, 503)


def console_bind_host(config: ConsoleConfig) -> str:
    """The address the console listens on: its own (``console_host``, with
    ``console_port``), or the ops server's."""
    return config.console_host if config.console_port is not None else config.replay.http_host


def _query(request: web.Request) -> dict[str, list[str]]:
    return {name: request.query.getall(name) for name in set(request.query.keys())}


class Console:
    """The console of one process.

    ``state`` returns the breaker, budget and cache (a processor: its ``/status`` document,
    with health, holds, Clay and its counters; ``streamproc console``: the state topic's
    view); ``restored`` says when that is the group's and not a default; ``readiness`` is
    a processor's ``/readyz`` check (``None`` for the standalone console). Feed every state
    record to :meth:`on_state` (the breaker's transitions come from them).
    """

    def __init__(
        self,
        config: ConsoleConfig,
        *,
        state: Callable[[], Mapping[str, Any]],
        restored: Callable[[], bool],
        readiness: Callable[[], tuple[bool, list[str]]] | None = None,
        clock: Callable[[], float] = time.time,
        sample_s: float = SAMPLE_S,
    ) -> None:
        self._config = config
        self._replay = config.replay
        self._state = state
        self._restored = restored
        self._readiness = readiness
        self._clock = clock
        self._sample_s = sample_s
        self.breaker_log = BreakerLog()
        self.burn = BurnSeries()
        self.throughput = ThroughputMeter()
        self.hits = HitLedger()
        self._lag_reader = LagReader(config)
        self._lag: Lag | None = None
        self._sampled_at = float("-inf")
        self._sampling = asyncio.Lock()
        self._replaying = asyncio.Lock()
        self.hosts = HostAllowList.of(
            config.console_allowed_hosts,
            bind_host=console_bind_host(config),
            machine=socket.gethostname(),
        )

    @property
    def mode(self) -> str:
        return "standalone" if self._readiness is None else "live"

    # --- wiring -----------------------------------------------------------------------------

    def on_state(self, key: str, value: dict[str, Any] | None, partition: int, offset: int) -> None:
        """A state-topic record (restore and tail alike)."""
        # One check for the records of every lead (cache, receipt), which it folds none of.
        if not key.startswith(_FOLDED):
            return
        if key.startswith("breaker/"):
            self.breaker_log.on_record(value)
        else:
            self.hits.apply(key, value)

    def install(self, app: web.Application) -> None:
        """Add the routes and the background sampler to ``app`` (an ops server's)."""
        app.middlewares.append(self._host_check)
        app.middlewares.append(kafka_errors)
        app.router.add_get(PREFIX, self._redirect)
        app.router.add_get(f"{PREFIX}/", self._index)
        app.router.add_get(f"{PREFIX}/api/overview", self._get_overview)
        app.router.add_get(f"{PREFIX}/api/dlq", self._get_dlq)
        app.router.add_get(f"{PREFIX}/api/dlq/record", self._get_record)
        app.router.add_post(f"{PREFIX}/api/replay", self._post_replay)
        app.router.add_post(f"{PREFIX}/api/spending", self._post_spending)
        app.router.add_get(PREFIX + "/{name}", self._static)
        app.cleanup_ctx.append(self._lifespan)

    @web.middleware
    async def _host_check(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        """Under ``/console``, a request with a ``Host`` the console does not know is
        421, before any handler reads anything (the rest of the server is not the
        console's to judge: Clay's callbacks come under Clay's name for this host)."""
        if request.path.startswith(PREFIX) and not self.hosts.allows(request.headers.get("Host")):
            log.warning("console.host_refused", remote=request.remote, path=request.path)
            return _error(
                "this console does not answer under that host name: add it to "
                "STREAMPROC_CONSOLE_ALLOWED_HOSTS",
                421,
            )
        return await handler(request)  # type: ignore[no-any-return]

    async def _lifespan(self, _: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(self._sample_loop(), name="console-sample")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._lag_reader.close()

    # --- sampling ---------------------------------------------------------------------------

    async def _sample_loop(self) -> None:
        # The budget only, from memory: Kafka is asked for the lag when someone asks for
        # the overview, never on a timer (console/lag.py).
        while True:
            with contextlib.suppress(Exception):  # best effort: the page says what is missing
                await self.sample(lag=False)
            await asyncio.sleep(self._sample_s)

    async def sample(self, *, lag: bool = True) -> None:
        """Read the budget into the burn series, and with ``lag`` the group's lag and its
        throughput (the lag reader answers from its cache for a few seconds)."""
        async with self._sampling:
            if not self._restored():
                return
            now = self._clock()
            budget = self._state().get("budget", {})
            if isinstance(budget.get("day"), str):
                self.burn.add(
                    now, budget["day"], int(budget.get("spent", 0)), int(budget.get("reserved", 0))
                )
            if not lag:
                return
            try:
                # A broker that stopped answering must not hold the overview for the
                # client's request timeout: the page shows the lag as unknown instead.
                async with asyncio.timeout(self._replay.kafka.connect_timeout_s):
                    read = await self._lag_reader.read()
            except Exception as exc:
                await self._lag_reader.close()
                self._lag = Lag(self._replay.topic_raw, {}, f"cannot read: {_cls(exc)}")
            else:
                self._lag = read
                self.throughput.add(now, sum(c or 0 for c, _ in read.partitions.values()))
            self._sampled_at = now

    # --- the page ---------------------------------------------------------------------------

    async def _redirect(self, _: web.Request) -> web.Response:
        raise web.HTTPFound(f"{PREFIX}/")

    async def _index(self, _: web.Request) -> web.Response:
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        body = resources.files(__package__).joinpath("static", name).read_bytes()
        return web.Response(body=body, content_type=_STATIC[name], headers=_HEADERS)

    # --- the API ----------------------------------------------------------------------------

    async def _get_overview(self, _: web.Request) -> web.Response:
        if self._clock() - self._sampled_at >= _FRESH_S:
            await self.sample()
        try:
            state = dict(self._state())
            readiness = self._readiness() if self._readiness is not None else None
        except Exception as exc:
            log.warning("console.state_failed", error=repr(exc))
            return _error(f"state unavailable: {_cls(exc)}", 500)
        rate = self.throughput.rate()
        body = overview(
            mode=self.mode,
            now=self._clock(),
            group_id=self._replay.group_id,
            version=__version__,
            state=state,
            transitions=self.breaker_log.since(float("-inf")),
            burn=self.burn,
            lag=self._lag,
            throughput=(rate, self.throughput.window_s),
            readiness=readiness,
            replay_enabled=self._token_set(),
        )
        body["restored"] = self._restored()
        today = datetime.fromtimestamp(self._clock(), UTC).date()
        body["waterfall"] = self.hits.summary(today, self._config.window_days)
        # The page asks for a token before it lists records, and says why without one.
        body["records_enabled"] = any(
            t is not None and bool(t.get_secret_value())
            for t in (self._config.console_token, self._config.console_read_token)
        )
        body["error_classes"] = list(KNOWN_CLASSES)
        body["topics"] = {
            "raw": self._replay.topic_raw,
            "dlq": self._replay.topic_dlq,
            "parked": self._replay.topic_parked,
        }
        return _json(body)

    def _refuse_reader(self, request: web.Request) -> web.Response | None:
        """None when the request carries a token that may read records; else the refusal."""
        verdict = check_reader(
            self._config.console_token,
            self._config.console_read_token,
            request.headers.get("Authorization"),
        )
        if verdict.allowed:
            return None
        log.warning(
            "console.read_refused", status=verdict.status, remote=request.remote, path=request.path
        )
        return _error(verdict.reason, verdict.status)

    async def _get_dlq(self, request: web.Request) -> web.Response:
        if (refused := self._refuse_reader(request)) is not None:
            return refused
        try:
            options = show_options_from_query(_query(request), datetime.now(UTC))
            page = await list_dlq(self._replay, options)
        except ConfigError as exc:
            return _error(str(exc), 400)
        except KafkaSetupError as exc:
            return _error(str(exc), 502)
        return _json({**page.to_json(), "max_attempts": options.max_attempts})

    async def _get_record(self, request: web.Request) -> web.Response:
        if (refused := self._refuse_reader(request)) is not None:
            return refused
        try:
            partition = _whole(request.query.get("partition"), "partition")
            offset = _whole(request.query.get("offset"), "offset")
            max_attempts = _whole(request.query.get("max_attempts", "3"), "max_attempts") or 3
        except ConfigError as exc:
            return _error(str(exc), 400)
        try:
            record = await read_dlq_record(self._replay, partition, offset)
        except ConfigError as exc:  # no such partition, offset, or a transaction marker
            return _error(str(exc), 404)
        except KafkaSetupError as exc:
            return _error(str(exc), 502)
        return _json(detail_json(record, self._replay.topic_dlq, max_attempts))

    async def _post_replay(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            # A form post from another site cannot set this type without a CORS preflight,
            # which this server never grants.
            return _error("expected Content-Type: application/json", 415)
        try:
            body = orjson.loads(await request.read())
            options = replay_options_from_body(body, datetime.now(UTC))
        except orjson.JSONDecodeError:
            return _error("the body is not JSON", 400)
        except ConfigError as exc:
            return _error(str(exc), 400)
        if not options.dry_run:
            verdict = check_token(self._config.console_token, request.headers.get("Authorization"))
            if not verdict.allowed:
                log.warning("console.replay_refused", status=verdict.status, remote=request.remote)
                return _error(verdict.reason, verdict.status)
        if self._replaying.locked():
            return _error("a replay from this console is running: wait for its summary", 409)
        async with self._replaying:
            log.info(
                "console.replay",
                dry_run=options.dry_run,
                filters=options.filters.describe(),
                limit=options.limit,
                max_attempts=options.max_attempts,
                remote=request.remote,
            )
            replayer = Replayer(self._replay, options)
            try:
                report = await replayer.run()
            except ReplayRefused as exc:
                return _json({"error": str(exc), "report": replayer.report.to_json()}, 409)
            except StreamprocError as exc:
                log.warning("console.replay_failed", error=str(exc))
                return _json({"error": str(exc), "report": replayer.report.to_json()}, 502)
        result = report.to_json()
        log.info("console.replayed", **{k: result[k] for k in ("read", "replayed", "parked")})
        return _json(result)

    async def _post_spending(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error("expected Content-Type: application/json", 415)
        verdict = check_token(
            self._config.console_token,
            request.headers.get("Authorization"),
            action="a change of spending",
            actions="spending changes",
            refused="spending was not changed",
        )
        if not verdict.allowed:
            log.warning("console.spending_refused", status=verdict.status, remote=request.remote)
            return _error(verdict.reason, verdict.status)
        try:
            body = orjson.loads(await request.read())
            action, by, why, limit = _spending_request(body)
            budget = await self._config.change_spending(action, by=by, why=why, limit=limit)
        except orjson.JSONDecodeError:
            return _error("the body is not JSON", 400)
        except ConfigError as exc:
            return _error(str(exc), 400)
        except KafkaSetupError as exc:
            return _error(str(exc), 502)
        log.info(
            "console.spending",
            action=action.value,
            by=by,
            why=why,
            limit=limit,
            remote=request.remote,
        )
        return _json(budget)

    def _token_set(self) -> bool:
        token = self._config.console_token
        return token is not None and bool(token.get_secret_value())


def _spending_request(body: object) -> tuple[SpendingAction, str, str, int | None]:
    """(action, by, why, limit) of a spending request; ConfigError (400) for a bad one."""
    if not isinstance(body, dict):
        raise ConfigError("expected a JSON object")
    try:
        action = SpendingAction(str(body.get("action")))
    except ValueError:
        raise ConfigError("action: expected pause, resume or set_limit") from None
    limit = body.get("limit")
    if action is SpendingAction.SET_LIMIT:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigError("limit: expected a whole number of credits >= 0")
    else:
        limit = None
    by, why = body.get("by") or "console", body.get("reason")
    if not isinstance(by, str) or not isinstance(why, str):
        raise ConfigError("reason and by must be text")
    return action, by, why, limit


def _whole(text: str | None, name: str) -> int:
    if text is None or not text.strip().isdigit():
        raise ConfigError(f"{name}: expected a whole number >= 0, got {text!r}")
    return int(text)


def _cls(exc: BaseException) -> str:
    return type(exc).__name__
