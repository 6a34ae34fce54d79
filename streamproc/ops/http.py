"""The operations HTTP server of one process: ``/metrics``, ``/healthz``, ``/readyz``, ``/status``.

* ``/metrics``: Prometheus text format from :meth:`Metrics.render`.
* ``/healthz``: 200 while the event loop serves requests (liveness: a wedged loop answers
  nothing and the orchestrator restarts the process).
* ``/readyz``: 200 ``{"ready": true}`` when ``ready_fn`` says so, else 503 with
  ``{"ready": false, "reasons": [...]}``.
* ``/status``: ``status_fn()`` as JSON (breaker, budget, health, ...).
* whatever a layer above :meth:`~OpsServer.mount` s (the web console under ``/console/``,
  unless it has a listener of its own: an :class:`HttpServer` with its routes only).

A failing ``status_fn`` or ``ready_fn`` answers 500 with the exception's class name only:
the payload of an ops endpoint may be public, its error must not carry data. aiohttp's
access log is off; Prometheus scrapes every few seconds and would drown the lead logs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Self

import orjson
from aiohttp import web

from streamproc.logs import get_logger
from streamproc.ops.metrics import Metrics
from streamproc.ops.readiness import Readiness

__all__ = ["HttpServer", "OpsServer", "ReadyFn", "StatusFn", "json_response"]

log = get_logger(__name__)

StatusFn = Callable[[], Mapping[str, Any]]
ReadyFn = Callable[[], Readiness]

#: How long stopping waits for requests in progress (see :meth:`OpsServer.start`).
_SHUTDOWN_TIMEOUT_S = 2.0


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``body`` as JSON (orjson; anything else as its ``str``), for every ops endpoint."""
    return web.Response(
        body=orjson.dumps(body, default=str),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class HttpServer:
    """One small aiohttp server with the routes others :meth:`mount`; :meth:`start` binds
    (``port=0`` picks a free port). ``name`` prefixes its log lines."""

    def __init__(self, host: str, port: int, *, name: str = "http") -> None:
        self._host = host
        self._requested_port = port
        self._name = name
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.app = web.Application()

    def mount(self, install: Callable[[web.Application], None]) -> None:
        """Let a component above this layer (the console) add its routes and background
        tasks to the server's application; before :meth:`start` (aiohttp freezes the
        router then)."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__}.mount must come before start()")
        install(self.app)

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked); only after :meth:`start`."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__}.port is known only after start()")
        return self._port

    @property
    def name(self) -> str:
        return self._name

    @property
    def address(self) -> str:
        """``host:port`` as asked (before :meth:`start`) or bound."""
        return f"{self._host}:{self._requested_port if self._port is None else self._port}"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve. Raises ``OSError`` when the port is taken."""
        if self._runner is not None:
            return
        # aiohttp drops bytes that arrive once shutdown has begun, so a request whose body
        # was still on its way (a Clay callback) would hang until this timeout: keep it
        # short (aiohttp's default is 60 s); everything served here answers in milliseconds.
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info(f"{self._name}.http_started", host=self._host, port=self._port)

    async def stop(self) -> None:
        """Stop serving. Calling it twice, or before start, is harmless."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class OpsServer(HttpServer):
    """The ops server: its four endpoints, and what a layer above mounts on it."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        status_fn: StatusFn,
        ready_fn: ReadyFn,
    ) -> None:
        super().__init__(host, port, name="ops")
        self._metrics = metrics
        self._status_fn = status_fn
        self._ready_fn = ready_fn
        self.app.router.add_get("/metrics", self._get_metrics)
        self.app.router.add_get("/healthz", self._get_healthz)
        self.app.router.add_get("/readyz", self._get_readyz)
        self.app.router.add_get("/status", self._get_status)

    # --- handlers -------------------------------------------------------------------------

    async def _get_metrics(self, _: web.Request) -> web.Response:
        body = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": self._metrics.content_type})

    async def _get_healthz(self, _: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def _get_readyz(self, _: web.Request) -> web.Response:
        try:
            ready, reasons = self._ready_fn()
        except Exception as exc:
            log.warning("ops.ready_fn_failed", error=repr(exc))
            reasons = [f"readiness check failed: {_cls(exc)}"]
            return json_response({"ready": False, "reasons": reasons}, 500)
        if ready:
            return json_response({"ready": True})
        return json_response({"ready": False, "reasons": reasons}, 503)

    async def _get_status(self, _: web.Request) -> web.Response:
        try:
            status = dict(self._status_fn())
        except Exception as exc:
            log.warning("ops.status_fn_failed", error=repr(exc))
            return json_response({"error": f"status unavailable: {_cls(exc)}"}, 500)
        return json_response(status)


def _cls(exc: BaseException) -> str:
    return type(exc).__name__
