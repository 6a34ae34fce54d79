"""A simulator of the synchronous enrichment provider (docs/provider.md), for demos, tests
and the benchmark.

``streamproc mock-provider`` runs it; tests start it in-process with
:func:`serve_mock_provider` on port 0. It answers like a real, flaky, credit-billed
provider: made-up data deterministic per domain (and person columns per e-mail), a latency
drawn uniformly from ``latency_ms ± latency_jitter_ms``, random 500s and 429s, outage
windows, deterministic scenarios by domain suffix (``.fail.test``, ``.reject.test``, …),
and a count of calls, credits and Idempotency-Keys charged twice on ``GET /stats``.
Endpoints and scenarios: docs/simulators.md. Never bind it to a public address: its admin
endpoints take no key.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import orjson
from aiohttp import web

from streamproc.logs import get_logger
from streamproc.signals import until_signalled

__all__ = [
    "MockProviderConfig",
    "MockProviderStats",
    "PlanLimit",
    "build_app",
    "run_mock_provider",
    "serve_mock_provider",
    "stats_of",
]

#: The fields ``POST /admin/config`` may change while the server runs.
RUNTIME_FIELDS: frozenset[str] = frozenset(
    {
        "error_rate",
        "rate_limit_rate",
        "latency_ms",
        "latency_jitter_ms",
        "retry_after_s",
        "credits_per_call",
    }
)

# A stopping server cuts its simulated latencies short (see _MockState.pause), so in-flight
# handlers end at once; this only bounds a handler stuck on something else.
_SHUTDOWN_TIMEOUT_S = 2.0

_INDUSTRIES = (
    "software",
    "financial services",
    "manufacturing",
    "healthcare",
    "retail",
    "logistics",
    "education",
    "media",
)

_TITLES = ("Engineer", "Account Executive", "Head of Sales", "CFO", "Designer", "CTO")
_SENIORITIES = ("junior", "senior", "manager", "director", "executive")

# Second-level labels under which the company name is one label further left.
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu"})


@dataclass(frozen=True, slots=True)
class MockProviderConfig:
    """How the simulated provider behaves. Rates are probabilities in ``[0, 1]``.

    ``port`` 0 picks a free port (read it from :func:`serve_mock_provider`). ``outages``
    are ``(start_s, end_s)`` windows, in seconds since the server started, during which
    every call gets 503. ``seed`` makes the random draws reproducible.
    """

    host: str = "127.0.0.1"
    port: int = 8099
    latency_ms: float = 50.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    #: Sent as ``Retry-After`` with random 429s. Short by default so demos keep moving.
    retry_after_s: float = 0.2
    credits_per_call: int = 6
    outages: tuple[tuple[float, float], ...] = ()
    api_key: str | None = field(default=None, repr=False)
    auth_header: str = "Authorization"
    #: Latency multiplier of the ``.slow.test`` scenario.
    slow_factor: float = 5.0
    seed: int | None = None
    #: ``/enrich/bulk`` answers its items in reverse order: an API that does not keep the
    #: request's order (items echo their ``lead_id``, to be matched by it).
    bulk_reorder: bool = False
    #: A key already charged is answered its first answer again, charging nothing (a
    #: provider that honours ``Idempotency-Key``); off, every answer is charged.
    honour_idempotency: bool = False
    #: The plan's rate limit: at most ``plan_limit`` calls to ``/enrich`` per
    #: ``plan_window_s``, in a ``fixed`` window (Apollo, People Data Labs) or a ``sliding``
    #: one; a call over it is answered 429 with ``Retry-After`` and counted in
    #: ``plan_limited``; every answer carries ``x-ratelimit-limit``/``-remaining``/``-reset``
    #: (seconds). ``None``: no plan limit.
    plan_limit: int | None = None
    plan_window_s: float = 60.0
    plan_window: Literal["fixed", "sliding"] = "fixed"

    def __post_init__(self) -> None:
        # Accept any sequence of pairs (a CLI or a TOML file gives lists) but store tuples,
        # so the config stays hashable and immutable.
        windows = tuple((float(start), float(end)) for start, end in self.outages)
        object.__setattr__(self, "outages", windows)
        for name in ("error_rate", "rate_limit_rate"):
            rate = getattr(self, name)
            if not _is_number(rate) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1")
        for name in ("latency_ms", "latency_jitter_ms", "retry_after_s", "slow_factor"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
        if isinstance(self.credits_per_call, bool) or not isinstance(self.credits_per_call, int):
            raise ValueError("credits_per_call must be an integer")
        if self.credits_per_call < 0:
            raise ValueError("credits_per_call must be >= 0")
        if self.plan_limit is not None and self.plan_limit < 1:
            raise ValueError("plan_limit must be >= 1")
        if not (math.isfinite(self.plan_window_s) and self.plan_window_s > 0):
            raise ValueError("plan_window_s must be a finite number > 0")
        if self.plan_window not in ("fixed", "sliding"):
            raise ValueError("plan_window must be fixed or sliding")
        if not 0 <= self.port <= 65_535:
            raise ValueError("port must be between 0 and 65535")
        for start, end in windows:
            if not (0 <= start < end):
                raise ValueError("each outage window needs 0 <= start_s < end_s")


@dataclass(slots=True)
class MockProviderStats:
    """What the simulator has served since start (or the last ``/admin/reset``)."""

    calls: int = 0
    credits: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    #: Credits-bearing answers per Idempotency-Key. One entry per distinct key (~100 bytes),
    #: affordable for the millions of leads a benchmark sends; a real provider keeps more.
    charged: Counter[str] = field(default_factory=Counter)
    #: Charges per ``lead_id`` (when the call names it), whatever key each carried: a lead
    #: charged twice under two keys shows here.
    charged_leads: Counter[str] = field(default_factory=Counter)
    #: Answers replayed for a key already charged (``honour_idempotency``), not charged.
    replayed: int = 0
    #: Calls answered 429 because they went over the plan's limit (``plan_limit``).
    plan_limited: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def call_started(self) -> None:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def call_ended(
        self,
        status: int,
        key: str | None,
        credits: int,
        lead_id: str | None = None,
        *,
        replay: bool = False,
    ) -> None:
        self.in_flight -= 1
        self.by_status[status] += 1
        if status == 200 and not replay:
            self.credits += credits
            if key is not None:
                self.charged[key] += 1
            if lead_id is not None:
                self.charged_leads[lead_id] += 1

    @property
    def leads_charged_twice(self) -> int:
        """How many lead_ids were charged more than once, under any keys."""
        return sum(1 for count in self.charged_leads.values() if count > 1)

    @property
    def duplicates_charged(self) -> int:
        """How many Idempotency-Keys were charged more than once."""
        return sum(1 for count in self.charged.values() if count > 1)

    def reset(self) -> None:
        """Zero the counters; calls still in flight stay counted as in flight."""
        self.calls = 0
        self.credits = 0
        self.by_status.clear()
        self.charged.clear()
        self.charged_leads.clear()
        self.replayed = 0
        self.plan_limited = 0
        self.max_in_flight = self.in_flight

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "credits": self.credits,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "by_lead": len(self.charged),
            "duplicates_charged": self.duplicates_charged,
            "leads_charged_twice": self.leads_charged_twice,
            "replayed": self.replayed,
            "plan_limited": self.plan_limited,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


class PlanLimit:
    """A plan's rate limit: ``limit`` calls per ``window_s``, counted in fixed windows from
    the first call (as Apollo and People Data Labs count) or in a sliding one. Time is an
    argument (monotonic seconds)."""

    def __init__(self, limit: int, window_s: float, kind: Literal["fixed", "sliding"]) -> None:
        self.limit = limit
        self.window_s = window_s
        self.sliding = kind == "sliding"
        self._admitted: deque[float] = deque()  # sliding: the calls still in the window
        self._window_start = -math.inf  # fixed: when the current window began
        self._used = 0  # fixed: calls admitted in it

    def admit(self, now: float) -> tuple[bool, int, float]:
        """Whether a call at ``now`` is within the plan; the calls left after it and the
        seconds until the window frees one (fixed: until it resets)."""
        if self.sliding:
            while self._admitted and self._admitted[0] <= now - self.window_s:
                self._admitted.popleft()
            ok = len(self._admitted) < self.limit
            if ok:
                self._admitted.append(now)
            reset_s = self._admitted[0] + self.window_s - now if self._admitted else 0.0
            return ok, self.limit - len(self._admitted), reset_s
        if now >= self._window_start + self.window_s:
            self._window_start, self._used = now, 0
        ok = self._used < self.limit
        if ok:
            self._used += 1
        return ok, self.limit - self._used, self._window_start + self.window_s - now


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the provider answers to one call, independent of how it is delivered."""

    status: int
    payload: dict[str, Any]
    delay_s: float = 0.0
    credits: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The first answer of a key already charged, sent again (``honour_idempotency``).
    replay: bool = False


class _MockState:
    """The mutable heart of one server: current config, RNG, counters, outage switch."""

    def __init__(self, config: MockProviderConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.stats = MockProviderStats()
        #: Calls seen per Idempotency-Key, for the first-call-fails scenarios.
        self.seen: Counter[str] = Counter()
        #: The charged answer of each key (``honour_idempotency`` only).
        self.answered: dict[str, _Outcome] = {}
        self.manual_outage = False
        self.plan = (
            None
            if config.plan_limit is None
            else PlanLimit(config.plan_limit, config.plan_window_s, config.plan_window)
        )
        self.clock = clock
        self.started_at = clock()
        self.stopping = asyncio.Event()

    def uptime_s(self) -> float:
        return self.clock() - self.started_at

    def outage(self) -> bool:
        if self.manual_outage:
            return True
        elapsed = self.uptime_s()
        return any(start <= elapsed < end for start, end in self.config.outages)

    def reset(self) -> None:
        self.stats.reset()
        cfg = self.config
        if cfg.plan_limit is not None:
            self.plan = PlanLimit(cfg.plan_limit, cfg.plan_window_s, cfg.plan_window)
        self.seen.clear()
        self.answered.clear()

    async def pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; False if the server began stopping first."""
        if seconds <= 0:
            return True
        try:
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
        except TimeoutError:
            return True
        return False

    def draw_latency_s(self) -> float:
        cfg = self.config
        jitter = self.rng.uniform(-cfg.latency_jitter_ms, cfg.latency_jitter_ms)
        return max(0.0, cfg.latency_ms + jitter) / 1000.0


_CLIENT_GONE = _Outcome(499, {"error": "client closed request"})
_SHUTTING_DOWN = _Outcome(503, {"error": "shutting down"})

_STATE = web.AppKey("streamproc_mock_provider_state", _MockState)


def build_app(
    config: MockProviderConfig, *, clock: Callable[[], float] = time.monotonic
) -> web.Application:
    """The simulator as an aiohttp application (``clock``: monotonic seconds, for outages)."""
    app = web.Application()
    app[_STATE] = _MockState(config, clock)
    app.router.add_post("/enrich", _handle_enrich)
    app.router.add_post("/enrich/bulk", _handle_bulk)
    app.router.add_get("/stats", _handle_stats)
    app.router.add_get("/healthz", _handle_healthz)
    app.router.add_post("/admin/outage", _handle_outage)
    app.router.add_post("/admin/config", _handle_config)
    app.router.add_post("/admin/reset", _handle_reset)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    return app


def stats_of(app: web.Application) -> MockProviderStats:
    """The live counters of an app made by :func:`build_app`."""
    return app[_STATE].stats


@asynccontextmanager
async def serve_mock_provider(config: MockProviderConfig) -> AsyncIterator[str]:
    """Serve the simulator while the block runs; yields its base URL (``http://host:port``).

    With ``config.port == 0`` the OS picks a free port, and the URL carries the real one.
    The provider endpoint is ``<base URL>/enrich``.
    """
    async with serve_app(build_app(config), config.host, config.port) as base_url:
        yield base_url


@asynccontextmanager
async def serve_app(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Serve an aiohttp app while the block runs; yields ``http://host:port`` (port 0: free)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = int(runner.addresses[0][1])
        yield f"http://{_url_host(host)}:{bound}"
    finally:
        await runner.cleanup()


def run_mock_provider(config: MockProviderConfig) -> None:
    """Serve the simulator until SIGINT or SIGTERM (blocking; for the CLI)."""
    asyncio.run(_serve_until_signalled(config))


async def _serve_until_signalled(config: MockProviderConfig) -> None:
    async with serve_mock_provider(config) as base_url:
        get_logger(__name__).info(
            "mock provider listening",
            url=f"{base_url}/enrich",
            stats=f"{base_url}/stats",
            config=repr(config),
        )
        await until_signalled()


# --- handlers -------------------------------------------------------------------------------


async def _on_startup(app: web.Application) -> None:
    state = app[_STATE]
    # Outage windows are relative to the moment the server starts serving, not to when the
    # app object was built.
    state.started_at = state.clock()


async def _on_shutdown(app: web.Application) -> None:
    app[_STATE].stopping.set()


async def _handle_enrich(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    key = request.headers.get("Idempotency-Key") or None
    state.stats.call_started()
    # Counted as 499 ("client closed request", nginx's convention) if the client vanishes
    # before an answer is chosen, e.g. while its body is still being read.
    outcome = _CLIENT_GONE
    lead_id: str | None = None
    try:
        outcome, lead_id = await _answer(state, request, key)
        if not await state.pause(outcome.delay_s):
            outcome = _SHUTTING_DOWN
        return _json(outcome.status, outcome.payload, outcome.headers)
    finally:
        state.stats.call_ended(outcome.status, key, outcome.credits, lead_id, replay=outcome.replay)


async def _handle_bulk(request: web.Request) -> web.Response:
    """``{"leads": [...]}`` (each with its ``lead_id``, and its ``idempotency_key`` if it
    has one: its key, else its ``lead_id`` is) in one request, one latency for all:
    ``{"results": [...]}`` in order (reversed with ``bulk_reorder``), each ``{"lead_id",
    "status", "data", "credits"}`` or ``{"lead_id", "status", "error"}``, decided per lead
    as ``/enrich`` decides; a ``.dropped.test`` lead is charged but left out of the first
    answer that carries its key (docs/simulators.md)."""
    state = request.app[_STATE]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    leads = body.get("leads") if isinstance(body, dict) else None
    if not isinstance(leads, list) or not all(
        isinstance(lead, dict) and isinstance(lead.get("lead_id"), str) for lead in leads
    ):
        return _json(400, {"error": "body must be {leads: [{lead_id, ...}]}"})
    keys = [_item_key(lead) for lead in leads]
    latency_s = state.draw_latency_s()
    pairs = list(zip(leads, keys, strict=True))
    dropped = [False for _ in leads]
    if state.outage():
        outcomes = [_Outcome(503, {"error": "provider outage"}) for _ in leads]
    else:
        dropped = [_dropped(lead) and state.seen[key] == 0 for lead, key in pairs]
        outcomes = [_decide(state, lead, key, latency_s) for lead, key in pairs]
    for _ in leads:
        state.stats.call_started()
    try:
        if not await state.pause(latency_s):
            return _json(503, {"error": "shutting down"})
        items = [
            {"lead_id": lead["lead_id"], "status": o.status, **o.payload}
            for lead, o, drop in zip(leads, outcomes, dropped, strict=True)
            if not drop
        ]
        if state.config.bulk_reorder:
            items.reverse()
        return _json(200, {"results": items})
    finally:
        for lead, key, outcome in zip(leads, keys, outcomes, strict=True):
            state.stats.call_ended(
                outcome.status, key, outcome.credits, lead["lead_id"], replay=outcome.replay
            )


async def _answer(
    state: _MockState, request: web.Request, key: str | None
) -> tuple[_Outcome, str | None]:
    """The answer to one ``/enrich`` call, and the lead_id its body names (if any)."""
    if state.outage():
        return _Outcome(503, {"error": "provider outage"}), None
    latency_s = state.draw_latency_s()
    if state.plan is not None:
        ok, left, reset_s = state.plan.admit(state.clock())
        quota = {
            "x-ratelimit-limit": str(state.plan.limit),
            "x-ratelimit-remaining": str(left),
            "x-ratelimit-reset": f"{reset_s:.3f}",
        }
        if not ok:
            state.stats.plan_limited += 1
            # Whole seconds, rounded up, as the real APIs send it.
            quota["Retry-After"] = str(max(1, math.ceil(reset_s)))
            return _Outcome(429, {"error": "plan rate limit"}, latency_s, headers=quota), None
        outcome, lead_id = await _answer_within_plan(state, request, key, latency_s)
        return replace(outcome, headers={**quota, **outcome.headers}), lead_id
    return await _answer_within_plan(state, request, key, latency_s)


async def _answer_within_plan(
    state: _MockState, request: web.Request, key: str | None, latency_s: float
) -> tuple[_Outcome, str | None]:
    cfg = state.config
    if cfg.api_key is not None:
        expected = (
            f"Bearer {cfg.api_key}" if cfg.auth_header.lower() == "authorization" else cfg.api_key
        )
        if request.headers.get(cfg.auth_header) != expected:
            return _Outcome(401, {"error": "invalid API key"}, delay_s=latency_s), None
    if key is None:
        return _Outcome(400, {"error": "missing Idempotency-Key"}, delay_s=latency_s), None
    try:
        lead = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        lead = None
    if not isinstance(lead, dict):
        return _Outcome(400, {"error": "body must be a JSON object"}, delay_s=latency_s), None
    lead_id = lead.get("lead_id")
    return _decide(state, lead, key, latency_s), lead_id if isinstance(lead_id, str) else None


def _decide(state: _MockState, lead: dict[str, Any], key: str, latency_s: float) -> _Outcome:
    """The answer to one lead: a key already charged (when honoured), then its scenario by
    domain, then the random rates."""
    cfg = state.config
    first_call = state.seen[key] == 0
    state.seen[key] += 1
    if cfg.honour_idempotency and key in state.answered:
        state.stats.replayed += 1
        return replace(state.answered[key], delay_s=latency_s, replay=True)
    outcome = _decide_fresh(state, lead, latency_s, first_call)
    if cfg.honour_idempotency and outcome.status == 200:
        state.answered[key] = outcome
    return outcome


def _decide_fresh(
    state: _MockState, lead: dict[str, Any], latency_s: float, first_call: bool
) -> _Outcome:
    cfg = state.config
    domain = _domain_of(lead)
    if domain is None:
        return _Outcome(422, {"error": "lead has neither domain nor email"}, delay_s=latency_s)

    def scenario(suffix: str) -> bool:
        return f".{domain}".endswith(suffix)

    if scenario(".reject.test"):
        return _Outcome(422, {"error": "lead rejected"}, delay_s=latency_s)
    if scenario(".fail.test") or (scenario(".flaky.test") and first_call):
        return _Outcome(500, {"error": "simulated failure"}, delay_s=latency_s)
    if scenario(".ratelimit.test") and first_call:
        return _Outcome(429, {"error": "rate limited"}, latency_s, headers={"Retry-After": "0"})
    if scenario(".authfail.test"):
        return _Outcome(401, {"error": "invalid API key"}, delay_s=latency_s)
    if scenario(".nocredits.test"):
        return _Outcome(402, {"error": "out of credits"}, delay_s=latency_s)
    if scenario(".slow.test"):
        latency_s *= cfg.slow_factor
    elif not any(scenario(s) for s in (".ratelimit.test", ".flaky.test")):
        draw = state.rng.random()
        if draw < cfg.error_rate:
            return _Outcome(500, {"error": "simulated failure"}, delay_s=latency_s)
        if draw < cfg.error_rate + cfg.rate_limit_rate:
            retry_after = {"Retry-After": f"{cfg.retry_after_s:g}"}
            return _Outcome(429, {"error": "rate limited"}, latency_s, headers=retry_after)
    credits: int | float = cfg.credits_per_call
    if scenario(".floatcredits.test"):
        credits = float(credits)
    return _Outcome(
        200,
        {"data": {**_enrichment(domain), **_person(lead)}, "credits": credits},
        delay_s=latency_s,
        credits=cfg.credits_per_call,
    )


async def _handle_stats(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    body = state.stats.to_json()
    body["outage"] = state.outage()
    body["uptime_s"] = round(state.uptime_s(), 3)
    return _json(200, body)


async def _handle_healthz(request: web.Request) -> web.Response:
    return _json(200, {"status": "ok"})


async def _handle_outage(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    body = await _admin_body(request)
    on = body.get("on")
    if not isinstance(on, bool):
        raise _bad_request('expected {"on": true|false}')
    state.manual_outage = on
    return _json(200, {"outage": state.outage()})


async def _handle_config(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    body = await _admin_body(request)
    unknown = sorted(set(body) - RUNTIME_FIELDS)
    if unknown:
        raise _bad_request(f"cannot change {', '.join(unknown)}: only {sorted(RUNTIME_FIELDS)}")
    try:
        state.config = replace(state.config, **body)
    except (TypeError, ValueError) as exc:
        raise _bad_request(str(exc)) from None
    return _json(200, _runtime_config(state.config))


async def _handle_reset(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    state.reset()
    return _json(200, state.stats.to_json())


# --- helpers --------------------------------------------------------------------------------


def _item_key(lead: Mapping[str, Any]) -> str:
    """A bulk item's idempotency key: its own ``idempotency_key``, else its ``lead_id``."""
    key = lead.get("idempotency_key")
    return key if isinstance(key, str) and key else str(lead["lead_id"])


def _dropped(lead: Mapping[str, Any]) -> bool:
    domain = _domain_of(lead)
    return domain is not None and f".{domain}".endswith(".dropped.test")


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(payload),
        content_type="application/json",
        headers=headers,
    )


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=orjson.dumps({"error": message}).decode(), content_type="application/json"
    )


async def _admin_body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise _bad_request("body must be a JSON object")
    return body


def _runtime_config(config: MockProviderConfig) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name in RUNTIME_FIELDS}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _domain_of(lead: Mapping[str, Any]) -> str | None:
    """The lead's ``domain``, else its e-mail's, lower-cased; None if it has neither."""
    domain = lead.get("domain")
    if not isinstance(domain, str) or not domain.strip():
        email = lead.get("email")
        if not isinstance(email, str) or "@" not in email:
            return None
        domain = email.rpartition("@")[2]
    domain = domain.strip().rstrip(".").lower()
    return domain or None


def _enrichment(domain: str) -> dict[str, Any]:
    """Made-up firmographics, the same for the same domain on every run and machine."""
    # sha256, not hash(): Python's str hash is salted per process.
    number = int.from_bytes(hashlib.sha256(domain.encode()).digest()[:8], "big")
    return {
        "company": _company_from_domain(domain),
        "domain": domain,
        "employees": 1 + number % 10_000,
        "industry": _INDUSTRIES[number % len(_INDUSTRIES)],
    }


def _person(lead: Mapping[str, Any]) -> dict[str, Any]:
    """Made-up person columns for a lead with an e-mail (none without): what makes a
    cache that serves one person's answer to another visible."""
    email = lead.get("email")
    if not isinstance(email, str) or "@" not in email:
        return {}
    address = email.strip().lower()
    number = int.from_bytes(hashlib.sha256(address.encode()).digest()[:8], "big")
    local = address.partition("@")[0]
    return {
        "full_name": local.replace(".", " ").replace("_", " ").title(),
        "title": _TITLES[number % len(_TITLES)],
        "seniority": _SENIORITIES[number % len(_SENIORITIES)],
        "phone": f"+1-555-{number % 10_000:04d}",
        "linkedin_url": f"https://www.linkedin.com/in/{local.replace('.', '-')}-{number % 997}",
    }


def _company_from_domain(domain: str) -> str:
    """``www.acme-labs.co.uk`` → ``Acme Labs``: the label left of the public suffix, guessed.

    Scenario domains (``*.test``) use their first label: ``acme.flaky.test`` → ``Acme``.
    """
    labels = [label for label in domain.split(".") if label and label != "www"]
    if not labels:
        return domain
    if labels[-1] == "test" or len(labels) == 1:
        name = labels[0]
    elif len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        name = labels[-3]
    else:
        name = labels[-2]
    return name.replace("-", " ").replace("_", " ").title()


def _url_host(host: str) -> str:
    """A host to put in a URL that reaches a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
