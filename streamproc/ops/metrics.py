"""Prometheus metrics of one streamproc process, in a registry of its own.

:class:`Metrics` owns a private :class:`~prometheus_client.CollectorRegistry` (never the
global one), so a test or a process can hold as many as it likes. The shell reports events
through methods named for what happened (:meth:`Metrics.provider_attempt`,
:meth:`Metrics.breaker_transition`, ...); counts and state that already live elsewhere
(the processor's counts, breaker, budget, health, lag) are copied in at scrape time by
callbacks registered with :meth:`Metrics.on_scrape`, so gauges are never stale and the hot
path pays nothing for them.

Counters count since the process started (Prometheus' ``rate()`` handles restarts). Leads
out are counted when their transaction commits, never before: an aborted batch is
processed again and must not be counted twice.

Every metric name is listed in :data:`METRIC_NAMES`; ``deploy/`` (dashboard, alert rules)
uses only these names, and a unit test checks that it does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from streamproc import __version__
from streamproc.errors import ErrorClass
from streamproc.logs import get_logger
from streamproc.records.lead import Source
from streamproc.records.outcome import OutcomeKind
from streamproc.records.status import GuardStatus, LaneStatus

__all__ = [
    "BREAKER_STATE_VALUES",
    "METRIC_NAMES",
    "Metrics",
    "ProcessorCounts",
    "ScrapeHook",
]

log = get_logger(__name__)

#: Called before every render to copy current state into gauges; must be quick and sync.
ScrapeHook = Callable[[], None]

#: ``streamproc_breaker_state``: a number so that ``max()`` over instances means "worst".
BREAKER_STATE_VALUES: Final[Mapping[str, int]] = {"closed": 0, "half_open": 1, "open": 2}

#: Provider latency buckets (seconds): 10 ms up to the 30 s a slow enrichment may take.
#: Denser below 1 s, where a healthy provider answers and SLOs are drawn.
PROVIDER_LATENCY_BUCKETS_S: Final = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
)

_OUTCOMES: Final = (OutcomeKind.ENRICHED, OutcomeKind.DLQ)
_HEALTH: Final = ("healthy", "degraded", "unhealthy")
#: Label value for a label that does not apply (no error class on an enriched lead).
_NONE: Final = "none"
#: Status label of a provider attempt that got no HTTP answer (timeout, connection error).
NO_ANSWER: Final = "no_answer"

METRIC_NAMES: Final = frozenset(
    {
        "streamproc_info",
        "streamproc_leads_in_total",
        "streamproc_leads_out_total",
        "streamproc_leads_in_flight",
        "streamproc_leads_held",
        "streamproc_transactions_total",
        "streamproc_provider_request_duration_seconds",
        "streamproc_provider_responses_total",
        "streamproc_credits_spent_total",
        "streamproc_waterfall_calls_total",
        "streamproc_waterfall_credits_total",
        "streamproc_budget_limit_credits",
        "streamproc_budget_spent_credits",
        "streamproc_budget_reserved_credits",
        "streamproc_budget_remaining_credits",
        "streamproc_breaker_state",
        "streamproc_breaker_transitions_total",
        "streamproc_health_success_ratio",
        "streamproc_health_status",
        "streamproc_consumer_lag_records",
        "streamproc_lane_failures",
        "streamproc_lane_retry_seconds",
        "streamproc_partition_stalled",
        "streamproc_replay_records_total",
        "streamproc_replay_remaining_records",
        "streamproc_clay_submissions_total",
        "streamproc_clay_callbacks_total",
        "streamproc_clay_pending_leads",
        "streamproc_clay_webhook_rows",
        "streamproc_clay_webhook_limit_rows",
        "streamproc_clay_webhook_rows_remaining",
        "streamproc_clay_webhook_current",
        "streamproc_clay_webhook_rotations_total",
        "streamproc_clay_webhook_capacity_low",
        "streamproc_pacing_deferred_total",
        "streamproc_pacing_waiting_leads",
        "streamproc_pacing_threshold",
        "streamproc_pacing_frozen",
    }
)

#: ``streamproc_clay_submissions_total`` results (one per webhook HTTP attempt).
CLAY_SUBMISSION_RESULTS: Final = ("accepted", "rate_limited", "rejected", "error")
#: ``streamproc_clay_callbacks_total`` results (one per callback request).
CLAY_CALLBACK_RESULTS: Final = (
    "enriched",
    "error_row",
    "duplicate",
    "unknown_lead",
    "correlation_mismatch",
    "unauthorized",
    "bad_request",
    "too_large",
    "unavailable",
)


class ProcessorCounts(Protocol):
    """What :meth:`Metrics.observe_processor` reads (``ProcessorStats`` fits): monotonic
    counts since the processor started, by what was committed."""

    consumed: int
    enriched: int
    dlq: int
    by_error_class: dict[str, int]
    by_source: dict[str, int]
    credits: int
    transactions: int
    aborted_transactions: int
    in_flight: int


class Metrics:
    """The metrics of one process. Not thread-safe; call it from the event loop.

    The lead counters (``leads_in``, ``leads_out``, ``credits_spent``, ``transactions``)
    are pulled: ``on_scrape(lambda: m.observe_processor(processor.stats))`` turns the
    processor's own monotonic counts into counter increments at each scrape (nothing on
    the hot path, nothing to forget in a new code path). Leads that Clay finishes outside
    a processor transaction are counted by :meth:`lead_committed` as they are.
    """

    #: The ``Content-Type`` of :meth:`render`'s output (Prometheus text format 0.0.4).
    content_type: Final = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(self, *, version: str = __version__, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._hooks: list[ScrapeHook] = []
        if process_metrics:
            # CPU, memory, open fds, Python version: what a platform team looks at first.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        Info("streamproc", "streamproc build", registry=r).info({"version": version})

        self._leads_in = Counter(
            "streamproc_leads_in", "Records consumed from the raw topic.", registry=r
        )
        self._leads_out = Counter(
            "streamproc_leads_out",
            "Leads committed to the enriched topic or the DLQ (counted at commit).",
            ["outcome", "error_class", "source"],
            registry=r,
        )
        self._in_flight = Gauge(
            "streamproc_leads_in_flight", "Leads consumed but not yet committed.", registry=r
        )
        self._held = Gauge(
            "streamproc_leads_held",
            "Leads waiting for the breaker or the budget (hold policies).",
            registry=r,
        )
        self._transactions = Counter(
            "streamproc_transactions",
            "Kafka transactions of the processor, by result (committed, aborted).",
            ["result"],
            registry=r,
        )
        self._provider_latency = Histogram(
            "streamproc_provider_request_duration_seconds",
            "Duration of each HTTP attempt to the enrichment provider (retries included).",
            buckets=PROVIDER_LATENCY_BUCKETS_S,
            registry=r,
        )
        self._provider_responses = Counter(
            "streamproc_provider_responses",
            "Provider attempts by HTTP status (no_answer: timeout or connection error).",
            ["status"],
            registry=r,
        )
        self._responses_by_status: dict[int | None, Counter] = {}
        self._credits = Counter(
            "streamproc_credits_spent",
            "Credits charged by the provider for committed leads of this process.",
            registry=r,
        )
        self._waterfall_calls = Counter(
            "streamproc_waterfall_calls",
            "A waterfall's steps by provider instance and outcome (found, missed, failed, "
            "unavailable, over_ceiling; a verifier's verified, rejected, unverified), "
            "counted when the step ends.",
            ["provider", "outcome"],
            registry=r,
        )
        self._waterfall_credits = Counter(
            "streamproc_waterfall_credits",
            "Credits each provider instance of a waterfall charged, counted when the call "
            "ends (what its bill says; a lead processed again after a crash may pay again).",
            ["provider"],
            registry=r,
        )
        self._budget_limit = Gauge(
            "streamproc_budget_limit_credits",
            "The group-wide daily credit limit.",
            registry=r,
        )
        self._budget_spent = Gauge(
            "streamproc_budget_spent_credits",
            "Credits settled today by the whole group (same value in every instance).",
            registry=r,
        )
        self._budget_reserved = Gauge(
            "streamproc_budget_reserved_credits",
            "Credits reserved by calls in flight in the whole group.",
            registry=r,
        )
        self._budget_remaining = Gauge(
            "streamproc_budget_remaining_credits",
            "Credits left today for the whole group (limit - spent - reserved).",
            registry=r,
        )
        self._breaker_state = Gauge(
            "streamproc_breaker_state",
            "Provider circuit breaker: 0 closed, 1 half-open, 2 open.",
            registry=r,
        )
        self._breaker_transitions = Counter(
            "streamproc_breaker_transitions",
            "Breaker state changes made by this process.",
            ["from_state", "to_state"],
            registry=r,
        )
        self._health_ratio = Gauge(
            "streamproc_health_success_ratio",
            "Provider success rate over the health window (NaN before any call).",
            registry=r,
        )
        self._health_status = Gauge(
            "streamproc_health_status",
            "1 for the current health status (healthy, degraded, unhealthy), else 0.",
            ["status"],
            registry=r,
        )
        self._lag = Gauge(
            "streamproc_consumer_lag_records",
            "Records of an assigned partition not yet committed by this group.",
            ["topic", "partition"],
            registry=r,
        )
        self._replay = Counter(
            "streamproc_replay_records",
            "DLQ records handled by the replayer, by action (replayed, parked).",
            ["action"],
            registry=r,
        )
        self._replay_remaining = Gauge(
            "streamproc_replay_remaining_records",
            "DLQ records the running replay has still to read.",
            registry=r,
        )
        self._clay_submissions = Counter(
            "streamproc_clay_submissions",
            "Clay webhook HTTP attempts by result (accepted, rate_limited, rejected, error).",
            ["result"],
            registry=r,
        )
        self._clay_callbacks = Counter(
            "streamproc_clay_callbacks",
            "Clay callback requests by result (unauthorized: forged or misconfigured).",
            ["result"],
            registry=r,
        )
        self._clay_pending = Gauge(
            "streamproc_clay_pending_leads",
            "Leads submitted to Clay awaiting their callback (whole group).",
            registry=r,
        )
        self._clay_rows = Gauge(
            "streamproc_clay_webhook_rows",
            "Rows counted against each Clay webhook's lifetime limit (whole group).",
            ["index", "webhook"],
            registry=r,
        )
        self._clay_limit = Gauge(
            "streamproc_clay_webhook_limit_rows",
            "Rows a Clay webhook takes in its lifetime.",
            registry=r,
        )
        self._clay_remaining = Gauge(
            "streamproc_clay_webhook_rows_remaining",
            "Rows left over all configured Clay webhooks (headroom excluded).",
            registry=r,
        )
        self._clay_current = Gauge(
            "streamproc_clay_webhook_current",
            "Index of the Clay webhook rows go to (-1: all used up).",
            registry=r,
        )
        self._clay_rotations = Counter(
            "streamproc_clay_webhook_rotations",
            "Moves of this process to the next Clay webhook.",
            registry=r,
        )
        self._clay_capacity_low = Gauge(
            "streamproc_clay_webhook_capacity_low",
            "1 when the last Clay webhook nears its lifetime limit (add webhooks), else 0.",
            registry=r,
        )
        self._pacing_deferred = Counter(
            "streamproc_pacing_deferred",
            "Leads deferred by pacing to their score band's topic (counted at commit).",
            ["band"],
            registry=r,
        )
        self._pacing_waiting = Gauge(
            "streamproc_pacing_waiting_leads",
            "Deferred leads read back and waiting (or going) in this process, by band.",
            ["band"],
            registry=r,
        )
        self._pacing_threshold = Gauge(
            "streamproc_pacing_threshold",
            "The group's pacing threshold: the density (score per credit) a lead must clear.",
            registry=r,
        )
        self._pacing_frozen = Gauge(
            "streamproc_pacing_frozen",
            "1 while the group's pacing controller is frozen (provider out), else 0.",
            registry=r,
        )
        self._lane_failures = Gauge(
            "streamproc_lane_failures",
            "Failed commits (or lane openings) in a row of an assigned partition; 0 when "
            "its last one worked.",
            ["partition"],
            registry=r,
        )
        self._lane_retry = Gauge(
            "streamproc_lane_retry_seconds",
            "Seconds until a failing partition's commit or opening is tried again (backoff).",
            ["partition"],
            registry=r,
        )
        self._stalled = Gauge(
            "streamproc_partition_stalled",
            "1 for an assigned partition with records behind, nothing in flight and no "
            "progress for stall_after_s, else 0.",
            ["partition"],
            registry=r,
        )
        self._lane_partitions: set[str] = set()
        self._lag_partitions: dict[str, set[int]] = {}
        self._observed: dict[tuple[str, ...], int] = {}
        self._prime()

    def _prime(self) -> None:
        # Series that exist from the start at 0, so rate() and alerts see the first event.
        for source in Source:
            self._leads_out.labels(OutcomeKind.ENRICHED.value, _NONE, source.value)
        for error_class in ErrorClass:
            self._leads_out.labels(OutcomeKind.DLQ.value, error_class.value, _NONE)
        for result in ("committed", "aborted"):
            self._transactions.labels(result)
        for action in ("replayed", "parked"):
            self._replay.labels(action)
        for result in CLAY_SUBMISSION_RESULTS:
            self._clay_submissions.labels(result)
        for result in CLAY_CALLBACK_RESULTS:
            self._clay_callbacks.labels(result)
        self._health_ratio.set(math.nan)
        self.set_health("healthy", None)

    # --- events from the shell ------------------------------------------------------------

    def lead_committed(
        self,
        outcome: OutcomeKind,
        error_class: ErrorClass | None,
        source: Source | None,
        credits: int,
    ) -> None:
        """One lead's output was committed: ``outcome`` is ``enriched`` or ``dlq``; the
        labels are the members' values."""
        if outcome not in _OUTCOMES:
            allowed = tuple(kind.value for kind in _OUTCOMES)
            raise ValueError(f"outcome must be one of {allowed}, not {outcome!r}")
        if outcome is OutcomeKind.ENRICHED:
            labels = (outcome.value, _NONE, (source or Source.PROVIDER).value)
        else:
            labels = (OutcomeKind.DLQ.value, (error_class or ErrorClass.INTERNAL).value, _NONE)
        self._leads_out.labels(*labels).inc()
        if credits > 0:
            self._credits.inc(credits)

    def set_in_flight(self, leads: int) -> None:
        self._in_flight.set(leads)

    def provider_attempt(self, status: int | None, seconds: float) -> None:
        """One HTTP attempt ended (``ProviderClient``'s ``on_attempt`` hook has this shape)."""
        self._provider_latency.observe(max(seconds, 0.0))
        # One child per status, looked up once: ``labels()`` takes a lock and builds a
        # tuple on every call, and this runs once per provider call.
        child = self._responses_by_status.get(status)
        if child is None:
            child = self._provider_responses.labels(NO_ANSWER if status is None else str(status))
            self._responses_by_status[status] = child
        child.inc()

    def waterfall_step(self, provider: str, outcome: str, credits: int) -> None:
        """One provider of a lead's waterfall was asked (or passed over): its outcome and
        what it charged."""
        self._waterfall_calls.labels(provider, outcome).inc()
        if credits > 0:
            self._waterfall_credits.labels(provider).inc(credits)

    def breaker_transition(self, from_state: str, to_state: str) -> None:
        """The breaker changed state in this process (``open``, ``half_open``, ``closed``)."""
        self._breaker_transitions.labels(_state(from_state), _state(to_state)).inc()
        self.set_breaker_state(to_state)

    def replay_record(self, action: str) -> None:
        """The replayer re-injected (``replayed``) or parked (``parked``) one DLQ record."""
        if action not in ("replayed", "parked"):
            raise ValueError(f"action must be replayed or parked, not {action!r}")
        self._replay.labels(action).inc()

    def set_replay_remaining(self, records: int) -> None:
        self._replay_remaining.set(max(records, 0))

    def clay_submission(self, result: str) -> None:
        """One webhook HTTP attempt ended (``ClaySubmitter``'s hook has this shape)."""
        if result not in CLAY_SUBMISSION_RESULTS:
            raise ValueError(f"result must be one of {CLAY_SUBMISSION_RESULTS}, not {result!r}")
        self._clay_submissions.labels(result).inc()

    def clay_callback(self, result: str) -> None:
        """One callback request was answered (``CallbackReceiver``'s hook has this shape)."""
        if result not in CLAY_CALLBACK_RESULTS:
            raise ValueError(f"result must be one of {CLAY_CALLBACK_RESULTS}, not {result!r}")
        self._clay_callbacks.labels(result).inc()

    def clay_rotation(self) -> None:
        self._clay_rotations.inc()

    def set_clay(
        self,
        *,
        pending: int,
        webhooks: Iterable[tuple[int, str, int]],
        limit: int,
        remaining: int,
        current: int | None,
        capacity_low: bool,
    ) -> None:
        """Copy the Clay state in: ``webhooks`` is (index, id, rows) per webhook."""
        self._clay_pending.set(pending)
        for index, wid, rows in webhooks:
            self._clay_rows.labels(str(index), wid).set(rows)
        self._clay_limit.set(limit)
        self._clay_remaining.set(remaining)
        self._clay_current.set(-1 if current is None else current)
        self._clay_capacity_low.set(1 if capacity_low else 0)

    # --- state copied in (usually from an on_scrape hook) ---------------------------------

    def observe_processor(self, stats: ProcessorCounts) -> None:
        """Advance the lead counters to ``stats`` (pull mode; see the class docstring)."""
        self._advance(self._leads_in, (), stats.consumed)
        for source, count in stats.by_source.items():
            self._advance(self._leads_out, (OutcomeKind.ENRICHED.value, _NONE, source), count)
        for error_class, count in stats.by_error_class.items():
            self._advance(self._leads_out, (OutcomeKind.DLQ.value, error_class, _NONE), count)
        self._advance(self._credits, (), stats.credits)
        self._advance(self._transactions, ("committed",), stats.transactions)
        self._advance(self._transactions, ("aborted",), stats.aborted_transactions)
        self.set_in_flight(stats.in_flight)

    def observe_pacing(
        self,
        deferred: Mapping[int, int],
        waiting: Iterable[int],
        threshold: float,
        frozen: bool,
    ) -> None:
        """Copy pacing in: leads deferred so far by band (a monotonic count), the deferred
        leads waiting per band (lowest first), the group's threshold and whether frozen."""
        for band, count in deferred.items():
            self._advance(self._pacing_deferred, (f"b{band}",), count)
        for band, count in enumerate(waiting):
            self._pacing_waiting.labels(f"b{band}").set(count)
        self._pacing_threshold.set(threshold)
        self._pacing_frozen.set(1 if frozen else 0)

    def _advance(self, counter: Counter, labels: tuple[str, ...], total: int) -> None:
        """Increment ``counter`` by how much ``total`` grew since the last observation."""
        key = (str(id(counter)), *labels)
        seen = self._observed.get(key, 0)
        # A smaller total means a new source (a restarted processor): count it from zero.
        delta = total - seen if total >= seen else total
        self._observed[key] = total
        if delta > 0:
            (counter.labels(*labels) if labels else counter).inc(delta)

    def set_breaker_state(self, state: str) -> None:
        self._breaker_state.set(BREAKER_STATE_VALUES[_state(state)])

    def set_budget(self, *, limit: int, spent: int, reserved: int, remaining: int) -> None:
        self._budget_limit.set(limit)
        self._budget_spent.set(spent)
        self._budget_reserved.set(reserved)
        self._budget_remaining.set(remaining)

    def set_health(self, status: str, success_rate: float | None) -> None:
        if status not in _HEALTH:
            raise ValueError(f"health status must be one of {_HEALTH}, not {status!r}")
        self._health_ratio.set(math.nan if success_rate is None else success_rate)
        for name in _HEALTH:
            self._health_status.labels(name).set(1 if name == status else 0)

    def set_held(self, leads: int) -> None:
        self._held.set(leads)

    def observe_status(self, status: GuardStatus) -> None:
        """Copy breaker, budget, health and held leads from ``ResilienceGuard.status()``."""
        self.set_breaker_state(status.breaker.state)
        budget = status.budget
        self.set_budget(
            limit=budget.limit,
            spent=budget.spent,
            reserved=budget.reserved,
            remaining=budget.remaining,
        )
        self.set_health(status.health.status, status.health.success_rate)
        self.set_held(status.holding)

    def observe_lanes(self, lanes: Iterable[LaneStatus]) -> None:
        """Copy the lanes' failures, backoffs and stalls in; revoked partitions are dropped."""
        seen = set()
        for lane in lanes:
            partition = str(lane.partition)
            seen.add(partition)
            self._lane_failures.labels(partition).set(lane.failures)
            self._lane_retry.labels(partition).set(lane.retry_in_s)
            self._stalled.labels(partition).set(0 if lane.stalled_s is None else 1)
        for gone in self._lane_partitions - seen:
            for gauge in (self._lane_failures, self._lane_retry, self._stalled):
                gauge.remove(gone)
        self._lane_partitions = seen

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self._lag.labels(topic, str(partition)).set(max(lag, 0))
        self._lag_partitions.setdefault(topic, set()).add(partition)

    def set_lags(self, topic: str, lags: Mapping[int, int]) -> None:
        """Replace the lag of ``topic``: partitions not in ``lags`` (revoked) are dropped."""
        for gone in self._lag_partitions.get(topic, set()) - set(lags):
            self._lag.remove(topic, str(gone))
        self._lag_partitions[topic] = set()
        for partition, lag in lags.items():
            self.set_lag(topic, partition, lag)

    # --- exposition -----------------------------------------------------------------------

    def on_scrape(self, hook: ScrapeHook) -> None:
        """Run ``hook`` before every :meth:`render` (to copy current state into gauges)."""
        self._hooks.append(hook)

    def render(self) -> bytes:
        """The registry in Prometheus text format, after running the scrape hooks.

        A failing hook is logged and skipped: a scrape must not fail because one source of
        state did, and the other metrics are still worth having.
        """
        for hook in self._hooks:
            try:
                hook()
            except Exception as exc:
                log.warning("metrics.scrape_hook_failed", hook=_name(hook), error=repr(exc))
        return generate_latest(self.registry)


def _state(state: str) -> str:
    """Breaker state names as the breaker spells them (``half-open`` is accepted too)."""
    normalized = state.lower().replace("-", "_")
    if normalized not in BREAKER_STATE_VALUES:
        raise ValueError(f"unknown breaker state {state!r}")
    return normalized


def _name(hook: ScrapeHook) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)
