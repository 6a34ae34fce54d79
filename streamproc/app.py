"""The running process: wires settings, provider, guard, handler, processor and ops together."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from streamproc import __version__, tracing
from streamproc.clay import ClayService
from streamproc.clay.config import ClayConfig
from streamproc.errors import ConfigError, KafkaSetupError
from streamproc.kafka.acls import processor_acls
from streamproc.kafka.config import KafkaConnection, TopicsConfig
from streamproc.kafka.groups import group_position
from streamproc.kafka.preflight import check_kafka
from streamproc.logs import get_logger
from streamproc.ops.http import HttpServer, OpsServer
from streamproc.ops.metrics import Metrics
from streamproc.ops.readiness import ReadinessCheck
from streamproc.processing.calls import ProviderCalls
from streamproc.processing.config import (
    GuardConfig,
    HandlerConfig,
    PacingConfig,
    ProcessorConfig,
)
from streamproc.processing.guard import ResilienceGuard
from streamproc.processing.handler import LeadHandler
from streamproc.processing.pacing import provider_pacer
from streamproc.processing.processor import Processor
from streamproc.processing.spend_pacing import (
    LeadPacing,
    PacingGate,
    SpendView,
    learn_plan_shape,
)
from streamproc.processing.waterfall import Member, WaterfallEnricher
from streamproc.provider.api import Provider
from streamproc.provider.client import ProviderClient, retry_driver
from streamproc.provider.config import ProviderConfig
from streamproc.provider.registry import load_provider_factory
from streamproc.provider.stall import LoopWatch
from streamproc.redact import mask_url
from streamproc.registry.codec import RegistryCodec, codec_for
from streamproc.registry.config import CodecConfig
from streamproc.resilience.breaker import BreakerState, CircuitBreaker, Transition
from streamproc.resilience.pacing_step import STEP_KEY
from streamproc.resilience.priority import PriorityScore
from streamproc.settings import ProviderMode, Settings
from streamproc.state.config import breaker_config
from streamproc.state.store import StateListener, StateStore
from streamproc.timestamps import Clock
from streamproc.waterfall.caps import daily_cap
from streamproc.waterfall.config import WaterfallConfig

if TYPE_CHECKING:
    from streamproc.tracing import SpanExporter

__all__ = ["App"]

log = get_logger(__name__)

#: How often consumer lag is read for /metrics (one ListOffsets request per interval).
_LAG_INTERVAL_S = 5.0


class App:
    """One ``streamproc run`` process: builds the parts from the settings and runs them.

    Start order matters and is the guarantee: the ops server (so /healthz answers), the
    Kafka preflight, the provider client, the state restore (breaker, budget, cache, Clay
    submissions), Clay's services, then the processor joins the group. Stop is the
    reverse, within ``shutdown_grace_s``; a second signal aborts (:meth:`abort`).
    """

    def __init__(self, settings: Settings, *, span_exporter: SpanExporter | None = None) -> None:
        self.settings = settings
        # First: without the tracing extra, one line before anything else is built.
        # ``span_exporter`` is a test's, in place of the configured one.
        tracing.configure(tracing.TracingConfig.from_settings(settings), exporter=span_exporter)
        self.metrics = Metrics()
        #: Tells a provider timeout of ours (the process could not run) from the provider's.
        self.loop_watch = LoopWatch()
        #: The one clock the budget day is read from: the wall clock unless ``bench_clock``.
        self.clock = Clock() if settings.bench_clock is None else Clock.parse(settings.bench_clock)
        if self.clock.scaled:
            log.warning("clock.scaled", rate=self.clock.rate, note="bench and test hook only")
        self.guard = ResilienceGuard(
            GuardConfig.from_settings(settings),
            clock=self.clock,
            on_transition=self._breaker_changed,
        )
        self.state = StateStore(
            KafkaConnection.from_settings(settings), settings.topic_state, self._on_state
        )
        self.guard.attach(self.state)
        # Clay mode: leads are submitted to Clay's webhook and finished by its callback
        # (streamproc.clay); there is no synchronous provider to call.
        self.provider: ProviderCalls | WaterfallEnricher | None = None
        self.clay: ClayService | None = None
        if settings.provider_mode is ProviderMode.CLAY:
            self.clay = ClayService(
                ClayConfig.from_settings(settings),
                self.guard,
                self.state,
                self.metrics,
                processor_version=__version__,
            )
        elif settings.waterfall is not None:
            self.provider = self._waterfall(settings)
            self.provider.attach(self.state)
        else:
            self.provider = self._provider_calls(settings)
        #: The waterfall that folds ``waterfall/`` state records (None: none to fold).
        self._waterfall_state = (
            self.provider if isinstance(self.provider, WaterfallEnricher) else None
        )
        # Leads in the user's shape (lead_fields) or the registry's wire format; None for
        # plain JSON with our names (docs/schema-registry.md).
        self.codec = codec_for(CodecConfig.from_settings(settings))
        # None unless a score or pacing is configured: the handler then checks one
        # attribute per lead (docs/budget.md).
        self.pacing = self._pacing(settings)
        self.handler = LeadHandler(
            HandlerConfig.from_settings(settings),
            self.provider,
            self.guard,
            processor_version=__version__,
            deferred=self.clay,
            codec=self.codec,
            pacing=self.pacing,
        )
        self.processor = Processor(
            ProcessorConfig.from_settings(settings),
            self.handler,
            log_context=lambda: {"breaker": self.guard.breaker.state(self.clock()).value},
            release_holds=lambda tasks: (
                self.guard.release_holds(tasks)
                + self.handler.release_holds(tasks)
                + (
                    0
                    if self.pacing is None or self.pacing.gate is None
                    else self.pacing.gate.release(tasks)
                )
            ),
            # An API's rate is per key (Clay's per table): each instance paces at its share
            # of the input partitions (processing/pacing.py).
            on_assignment=self._pacer_share(),
        )
        self._stop = asyncio.Event()
        # Not the breaker, not partitions: see streamproc/ops/readiness.py for why.
        self.readiness = ReadinessCheck(
            state_restored=self.state.restored.is_set,
            in_group=self.processor.joined.is_set,
            stopping=self._stop.is_set,
            stalled=lambda: sorted(self.processor.stalled()),
        )
        self.metrics.on_scrape(lambda: self.metrics.observe_processor(self.processor.stats))
        self.metrics.on_scrape(lambda: self.metrics.observe_lanes(self.processor.lane_status()))
        self.metrics.on_scrape(lambda: self.metrics.observe_status(self.guard.status()))
        if self.pacing is not None and self.pacing.gate is not None:
            self.metrics.on_scrape(self._observe_pacing)
        self.ops = OpsServer(
            settings.http_host, settings.http_port, self.metrics, self.status, self.readiness
        )
        if self.clay is not None:
            # Clay's callbacks come to the ops server's port (before start: routes freeze).
            self.ops.app.router.add_post(settings.clay_callback_path, self.clay.receiver.handle)
        self._abort = False
        #: Further listeners of every state record (restore and tail), added before
        #: :meth:`run`: the console's breaker history and budget burn.
        self.state_listeners: list[StateListener] = []
        #: Further HTTP servers, added before :meth:`run`, started after the ops server and
        #: stopped before it: the console on a port of its own (``console_port``).
        self.http_servers: list[HttpServer] = []

    def _pacer_share(self) -> Callable[[int, int], None] | None:
        if self.clay is not None:
            return self.clay.submitter.pacer.share
        if isinstance(self.provider, WaterfallEnricher):
            # Each instance of a waterfall has its own API and plan limit, each shared.
            pacers = [m.calls.pacer for m in self.provider.members.values() if m.calls.pacer]
            if not pacers:
                return None

            def share(assigned: int, total: int) -> None:
                for pacer in pacers:
                    pacer.share(assigned, total)

            return share
        if self.provider is not None and self.provider.pacer is not None:
            return self.provider.pacer.share
        return None

    def _pacing(self, settings: Settings) -> LeadPacing | None:
        """The score (compiled now: a bad expression is one start-up line) and, with
        ``pacing_enabled``, the controller reading the group's budget and breaker."""
        if settings.priority_score is None and not settings.pacing_enabled:
            return None
        score = None
        if settings.priority_score is not None:
            score = PriorityScore.compile(
                settings.priority_score,
                floor=settings.priority_floor,
                halflife_s=settings.priority_halflife_s,
            )
        gate = None
        if settings.pacing_enabled:
            guard = self.guard
            kafka = KafkaConnection.from_settings(settings)

            def day_window(now: float) -> tuple[str, float]:
                ledger = guard.ledger
                # A day is 24 h but for DST changes; the plan is drawn on 24 h.
                return ledger.day_at(now), ledger.resets_at(now) - 86_400.0

            view = SpendView(
                day_window,
                lambda day: guard.ledger.limit(day),
                lambda day: float(guard.ledger.spent(day)),
                # Frozen while the provider is out or spending is paused: no spend to
                # dump in one burst after either.
                lambda now: guard.paused or guard.breaker.state(now) is not BreakerState.CLOSED,
                # The top layer's gate counts what granted claims hold too: a lease's
                # credits are the group's once granted.
                lambda day: float(guard.ledger.spent(day) + guard.ledger.outstanding(day)),
                # Leads in flight take their slices from this instance's leases; in Clay
                # mode each submitted lead keeps a claim of its own until its callback, so
                # no claim there covers a lead in flight.
                None
                if self.clay is not None
                else lambda day: float(
                    sum(
                        claim.amount
                        for claim in guard.ledger.outstanding_claims(guard.owner)
                        if claim.day == day
                    )
                ),
                None if self.clay is not None else lambda day: float(guard.lease_unused(day)),
                # The others' open leases they have not taken from (each publishes its
                # own with its offers) are room too, while their claims are outstanding.
                own_lease=None if self.clay is not None else guard.lease_open,
                others_claims=None
                if self.clay is not None
                else lambda day: {
                    claim.claim_id: float(claim.amount)
                    for claim in guard.ledger.outstanding_claims()
                    if claim.day == day and claim.owner != guard.owner
                },
            )
            gate = PacingGate(
                len(settings.deferral_topics),
                view,
                step_s=settings.pacing_step_s,
                clock=self.clock,
                fold=guard.pacing,
                writer=guard.owner,
                publish=self._publish_pacing,
                # The group's steps are computed by the instance that holds partition 0 of
                # the input (the group coordinator elects it; any, once the steps go stale).
                leads=lambda: any(lane.partition == 0 for lane in self.processor.lane_status()),
                learn=lambda day: learn_plan_shape(
                    kafka,
                    day,
                    guard.ledger.zone(day),
                    topic=settings.topic_raw,
                    history_days=settings.pacing_history_days,
                ),
                lead_credits=max(1, settings.credits_per_lead),
            )
        return LeadPacing(PacingConfig.from_settings(settings), score, gate, clock=self.clock)

    def _observe_pacing(self) -> None:
        assert self.pacing is not None and self.pacing.gate is not None
        gate, by_topic = self.pacing.gate, self.processor.stats.deferred_by_topic
        deferred = {
            band: by_topic.get(topic, 0) for band, topic in enumerate(self.settings.deferral_topics)
        }
        self.metrics.observe_pacing(deferred, gate.pending, gate.threshold.theta, gate.frozen)

    def _publish_pacing(self, key: str, value: dict[str, Any]) -> None:
        """Write a pacing record; a failed one is logged (the next step writes anew)."""

        def sent(future: asyncio.Future[tuple[int, int]]) -> None:
            if not future.cancelled() and future.exception() is not None:
                log.warning("pacing.publish_failed", key=key, error=str(future.exception()))

        self.state.append(key, value).add_done_callback(sent)

    def _provider_calls(
        self, settings: Settings, member: tuple[str, ProviderConfig] | None = None
    ) -> ProviderCalls:
        """The provider the ``provider`` setting names (an entry point of
        ``streamproc.providers``), or the waterfall's ``member`` (its instance name and
        configuration), behind the pipeline's batching and retry loop."""
        config = ProviderConfig.from_settings(settings) if member is None else member[1]
        name = config.name if member is None else f"{member[0]} ({config.name})"
        factory = load_provider_factory(config.name)
        if factory is ClayService:
            raise ConfigError("provider clay needs provider_mode clay")
        try:
            # Its own configuration only: never the settings, which hold every secret.
            provider = factory(config)
        except ConfigError:
            raise
        except Exception as exc:  # a third-party provider's: one line, not a traceback
            raise _failed_to_start(name, exc) from exc
        if not isinstance(provider, Provider):
            raise ConfigError(
                f"provider {name!r} is not a streamproc provider: it needs batch_size, "
                "start(), close() and call(leads) (docs/provider.md)"
            )
        if isinstance(provider, ProviderClient):
            provider.on_attempt = self.metrics.provider_attempt
        return ProviderCalls(
            provider,
            retry_driver(
                config,
                "provider" if member is None else member[0],
                stalled=self.loop_watch.stalled,
            ),
            batch_size=settings.provider_batch_size,
            linger_s=settings.provider_batch_linger_ms / 1000,
            timeout_s=settings.provider_timeout_s,
            pacer=provider_pacer(config),
        )

    def _waterfall(self, settings: Settings) -> WaterfallEnricher:
        """The ``[streamproc.waterfall]`` over the ``[streamproc.providers.<name>]``
        instances: each its own provider, retry loop and breaker (docs/waterfall.md)."""
        try:
            config = WaterfallConfig.model_validate(settings.waterfall)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"waterfall.{where}: {first['msg']}") from None
        if config.max_credits_per_lead is None:
            # The lead reserves credits_per_lead once for its whole waterfall: with no
            # ceiling of its own, that reservation is the ceiling, so no lead can spend
            # past what it reserved.
            config = config.model_copy(update={"max_credits_per_lead": settings.credits_per_lead})
        tables = settings.providers or {}
        # The verifier is a provider instance like the others, asked only to judge.
        configs = ProviderConfig.members(settings, (p.name for p in config.instances()))
        members = {
            name: Member(
                name,
                self._provider_calls(settings, (name, member)),
                CircuitBreaker(breaker_config(settings)),
                daily_cap(tables[name], name, settings.budget_daily_credits),
            )
            for name, member in configs.items()
        }
        return WaterfallEnricher(
            config,
            members,
            instance=self.guard.owner,
            on_step=self.metrics.waterfall_step,
            ttl_s=settings.receipt_ttl_s,
        )

    def _on_state(
        self, key: str, value: dict[str, Any] | None, partition: int, offset: int
    ) -> None:
        self.guard.on_state(key, value, partition, offset)
        if key == STEP_KEY and self.pacing is not None and self.pacing.gate is not None:
            self.pacing.gate.adopt()
        if self._waterfall_state is not None and key.startswith("waterfall/"):
            self._waterfall_state.on_state(key, value)
        for listener in self.state_listeners:
            listener(key, value, partition, offset)
        if self.clay is not None and key.startswith("clay/"):
            self.clay.on_state(key, value, partition, offset)

    def _breaker_changed(self, transition: Transition) -> None:
        self.metrics.breaker_transition(transition.from_state.value, transition.to_state.value)

    def status(self) -> dict[str, Any]:
        """The /status document: breaker, budget, health, cache and processing counters."""
        extra: dict[str, Any] = {} if self.clay is None else {"clay": self.clay.status()}
        if self.pacing is not None:
            extra["pacing"] = self.pacing.status()
        if isinstance(self.codec, RegistryCodec):
            # Lag growing while the provider is fine: the registry may be why.
            extra["registry"] = {
                "down": self.codec.client.down,
                "held_leads": self.handler.registry_held,
            }
        return {
            **self.guard.status().to_dict(),
            **extra,
            "processor": dataclasses.asdict(self.processor.stats),
            "lanes": [lane.to_dict() for lane in self.processor.lane_status()],
            "group_id": self.settings.group_id,
            "version": __version__,
        }

    def request_stop(self) -> None:
        self._stop.set()
        self.processor.request_stop()

    def abort(self) -> None:
        """Second signal: leave now. Uncommitted transactions are aborted by the broker."""
        self._abort = True
        self._stop.set()
        self.processor.abort()

    async def run(self, *, stop_when_idle_s: float | None = None) -> None:
        settings = self.settings
        # /healthz answers from the start; /readyz says why it is not ready yet.
        await self._start_ops()
        self.loop_watch.start()
        try:
            await check_kafka(
                KafkaConnection.from_settings(settings),
                settings.kafka_connect_timeout_s,
                topics=[
                    settings.topic_raw,
                    settings.topic_enriched,
                    settings.topic_dlq,
                    settings.topic_state,
                    *settings.deferral_topics,
                ],
                acls=processor_acls(TopicsConfig.from_settings(settings), settings.group_id),
                topic_raw=settings.topic_raw,
            )
            if self.codec is not None:
                # The output schema's compatibility, checked before any lead (one line).
                await self.codec.start()
            if self.provider is not None:
                await self._start_provider(self.provider)
            # Breaker, budget and cache are restored before the first lead is fetched. A
            # stop signal during the restore ends it: nothing is fetched, the group not joined.
            if not await self.state.start(stop=self._stop):
                return
            if self.clay is not None:
                # After the restore: pending leads, deadlines and webhook counts are complete.
                await self.clay.start()
            await self._say_plan()
            if self.pacing is not None and self.pacing.gate is not None:
                self.pacing.gate.start()
            await self.processor.start()
            log.info(
                "processor.started",
                group_id=settings.group_id,
                topic=settings.topic_raw,
                provider=settings.provider_name,
                provider_url=None
                if settings.provider_url is None
                else mask_url(str(settings.provider_url)),
                batch_size=getattr(self.provider, "batch_size", None),
                waterfall=None
                if not isinstance(self.provider, WaterfallEnricher)
                else list(self.provider.members),
                max_in_flight=settings.max_in_flight,
                http_port=self.ops.port,
            )
            watchers: list[asyncio.Future[Any]] = [
                asyncio.ensure_future(self.processor.run_until_stopped()),
                asyncio.ensure_future(self._stop.wait()),
                asyncio.ensure_future(self._report_lag()),
            ]
            if stop_when_idle_s is not None:
                watchers.append(asyncio.ensure_future(self._stop_when_idle(stop_when_idle_s)))
            try:
                done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in watchers:
                    w.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            await self.processor.stop(grace_s=0 if self._abort else None)
            if self.pacing is not None and self.pacing.gate is not None:
                await self.pacing.gate.stop()
            if self.clay is not None:
                # Callbacks arriving from now on are answered 503; Clay's retry, or the
                # next start's sweep, takes care of them.
                await self.clay.stop()
            if self.provider is not None:
                # Before the state store stops: a waterfall's last hit tallies are written
                # on close, and would be lost after it.
                await self.provider.close()
            await self.guard.flush()
            await self.state.stop()
            self.loop_watch.stop()
            if self.codec is not None:
                await self.codec.close()
            for server in self.http_servers:
                await server.stop()
            await self.ops.stop()
            if tracing.enabled:
                await asyncio.to_thread(tracing.shutdown)  # the last spans, then off

    async def _say_plan(self) -> None:
        """One line before the first lead: where the group starts, what the day's budget
        buys at the provider's price, what a provider outage does. Nothing here may cost
        money unnoticed: a new group's position and the budget in leads are the two
        numbers a bill depends on."""
        s = self.settings
        try:
            kafka = KafkaConnection.from_settings(s)
            position = (await group_position(kafka, s.group_id, s.topic_raw)).describe(
                s.start_offset
            )
        except KafkaSetupError as exc:  # the processor's own start reports Kafka problems
            position = f"unknown ({exc})"
        budget = self.guard.status().budget
        price = s.credits_per_lead
        log.info(
            "run.plan",
            group_id=s.group_id,
            position=position,
            budget_day=budget.day,
            budget_credits=budget.limit,
            budget_remaining=budget.remaining,
            credits_per_lead=price,
            budget_leads=budget.remaining // price if price > 0 else None,
            on_budget_exhausted=s.on_budget_exhausted.value,
            on_breaker_open=s.on_breaker_open.value,
        )

    async def _start_provider(self, provider: ProviderCalls | WaterfallEnricher) -> None:
        try:
            await provider.start()
        except ConfigError:
            raise
        except Exception as exc:  # a third-party provider's: one line, not a traceback
            raise _failed_to_start(self.settings.provider_name, exc) from exc

    async def _start_ops(self) -> None:
        """Bind the ops server, or one line naming the setting: a second ``run`` on the
        same host (the way to scale out on one host) finds the port taken."""
        try:
            await self.ops.start()
        except OSError as exc:
            host, port = self.settings.http_host, self.settings.http_port
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"http_port: port {port} on {host} is in use (a second streamproc run on "
                    "this host?): give each process its own STREAMPROC_HTTP_PORT / "
                    "--http-port, or 0 for any free port"
                ) from None
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConfigError(
                f"http_host/http_port: cannot listen on {host}:{port} ({reason}): check "
                "STREAMPROC_HTTP_HOST / --http-host and STREAMPROC_HTTP_PORT / --http-port"
            ) from None
        for server in self.http_servers:
            try:
                await server.start()
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise ConfigError(
                    f"{server.name}_host/{server.name}_port: cannot listen on {server.address} "
                    f"({reason}): check STREAMPROC_{server.name.upper()}_HOST and "
                    f"STREAMPROC_{server.name.upper()}_PORT"
                ) from None

    async def _report_lag(self) -> None:
        while True:
            await asyncio.sleep(_LAG_INTERVAL_S)
            try:
                self.metrics.set_lags(self.settings.topic_raw, await self.processor.lags())
            except Exception as exc:  # lag is best effort; never stop the line for it
                log.debug("lag.unavailable", error=repr(exc))

    async def _stop_when_idle(self, idle_s: float) -> None:
        stats = self.processor.stats
        await self.processor.assigned.wait()
        last, quiet_since = -1, asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(0.2)
            now = asyncio.get_running_loop().time()
            # In Clay mode a lead is only done once its callback or its deadline came.
            pending = len(self.clay.registry) if self.clay is not None else 0
            if stats.consumed != last or stats.in_flight > 0 or pending > 0:
                last, quiet_since = stats.consumed, now
            elif now - quiet_since >= idle_s:
                log.info("processor.idle", idle_s=idle_s)
                return

    def print_summary(self) -> None:
        st = self.processor.stats
        lines = [
            f"streamproc: {st.committed} leads committed in {st.transactions} transactions",
            f"  -> {self.settings.topic_enriched}: {st.enriched}  "
            + "  ".join(f"{k}={v}" for k, v in sorted(st.by_source.items())),
            f"  -> {self.settings.topic_dlq}: {st.dlq}  "
            + "  ".join(f"{k}={v}" for k, v in sorted(st.by_error_class.items())),
            f"  credits charged: {st.credits}",
        ]
        if self.clay is not None:
            counts = self.clay.counts
            lines.append(
                f"  clay: {counts['submitted']} submitted, "
                f"{counts['callback_enriched']} enriched, "
                f"{counts['callback_error_row']} error rows, {counts['timed_out']} timed out, "
                f"{counts['callback_duplicate']} duplicate callbacks, "
                f"{counts['callback_unauthorized']} refused, {len(self.clay.registry)} pending"
            )
        with contextlib.suppress(Exception):
            print("\n".join(lines), file=sys.stdout, flush=True)


def _failed_to_start(name: str, exc: Exception) -> ConfigError:
    """A provider that raised while being built or started, in one line (exit 2)."""
    message = " ".join(str(exc).split())  # one line, whatever the provider's message
    return ConfigError(f"provider {name} failed to start: {type(exc).__name__}: {message}")
